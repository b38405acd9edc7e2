"""Starts and stops a live `spool serve` for the server tests (env SPOOL_BIN: the binary)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.environ.get("SPOOL_TEST_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))


def binary():
    return os.environ.get("SPOOL_BIN", os.path.join(ROOT, "build", "bin", "spool"))


class LiveServer:
    """`spool serve MODEL --port 0 ...`; the port is read from its startup line."""

    def __init__(self, *extra_args, model=MODEL, env=None):
        # Each server gets a SPOOL_HOME of its own (its default session folder) unless the
        # test chose one: servers of different tests never share state or a folder lock.
        chosen_home = "SPOOL_HOME" in (env or {})
        env = {**os.environ, **(env or {})}
        self.own_home = None
        if not chosen_home:
            self.own_home = tempfile.mkdtemp(prefix="spool-home-")
            env["SPOOL_HOME"] = self.own_home
        self.proc = subprocess.Popen([binary(), "serve", model, "--port", "0", *extra_args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.stderr_lines = []
        self.port = None
        deadline = time.time() + 60
        while self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("spool serve exited: " + "".join(self.stderr_lines))
            self.stderr_lines.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if time.time() > deadline:
                raise RuntimeError("spool serve did not start")
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _ = self.request("GET", "/health")
            if status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("server not ready: " + "".join(self.stderr_lines))

    def request(self, method, path, body=None, raw=None, headers=None, timeout=120):
        """Returns (status, parsed JSON or text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.own_home:
            shutil.rmtree(self.own_home, ignore_errors=True)
