#!/usr/bin/env python3
"""Server concurrency benchmark (issue 7): aggregate tok/s of `spool serve` with 1, 4
and 16 concurrent clients on a model whose weights are streamed under a memory budget.

  python3 bench/server/run.py --model bench/out/llama-3.2-1b-bf16.gguf --budget 1.2G \
      --clients 1,4,16 --max-tokens 16 [--spool build/bin/spool] [--json out.json]

One server (`--parallel` = the largest client count) serves every round. In a round, C
clients (threads) each send one POST /v1/completions at the same moment (a short distinct
prompt, greedy, ignore_eos, max_tokens fixed), non-streaming. Aggregate tok/s = completion
tokens of all C responses / wall seconds from the first send to the last answer, so it
includes queueing and prefill: what C users sharing the server get in total. The first
round is a warm-up (not reported). The machine's limit in the same run: fio O_DIRECT
sequential read of the model file (the disk), and the per-step weight bytes the server's
/metrics report, give the decode step time the disk allows.
Models come from tools/gen_synthetic_model.py (random weights: speed only).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fio_bw(path, seconds):
    """Bytes/s of an O_DIRECT sequential read of `path` (fio, io_uring, 4 MiB, depth 32)."""
    if not shutil.which("fio"):
        return None
    out = subprocess.run(["fio", "--name=seq", f"--filename={path}", "--rw=read", "--direct=1", "--bs=4M",
                          "--iodepth=32", "--ioengine=io_uring", f"--runtime={seconds}", "--time_based",
                          "--output-format=json", "--readonly"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["jobs"][0]["read"]["bw_bytes"]


class Server:
    def __init__(self, spool, model, budget, parallel, ctx, threads, home):
        cmd = [spool, "serve", model, "--port", "0", "--mem-budget", budget, "--parallel", str(parallel),
               "--ctx", str(ctx)]
        if threads:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, SPOOL_HOME=home))
        self.lines = []
        self.port = None
        while self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("spool serve exited:\n" + "".join(self.lines))
            self.lines.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        threading.Thread(target=lambda: [self.lines.append(l) for l in self.proc.stderr], daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model_id = None
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        with urllib.request.urlopen(self.url + "/v1/models", timeout=5) as m:
                            self.model_id = json.loads(m.read())["data"][0]["id"]
                        return
            except Exception:
                pass
            time.sleep(0.5)
        raise SystemExit("server not ready:\n" + "".join(self.lines))

    def complete(self, prompt, max_tokens):
        body = json.dumps({"model": self.model_id, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                           "ignore_eos": True}).encode()
        req = urllib.request.Request(self.url + "/v1/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3600) as r:
            return json.loads(r.read())

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def round_(server, clients, max_tokens, tag):
    results = [None] * clients
    start = threading.Barrier(clients + 1)

    def client(i):
        start.wait()
        t0 = time.time()
        r = server.complete(f"Client {i} of round {tag}: once upon a time", max_tokens)
        results[i] = (r["usage"]["completion_tokens"], time.time() - t0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    m0 = server.metrics()
    start.wait()
    t0 = time.time()
    for t in threads:
        t.join()
    wall = time.time() - t0
    m1 = server.metrics()
    tokens = sum(r[0] for r in results)
    delta = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
    return dict(clients=clients, wall_s=round(wall, 2), completion_tokens=tokens, aggregate_tok_s=tokens / wall,
                mean_latency_s=sum(r[1] for r in results) / clients, metrics_delta=delta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, "build", "bin", "spool"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--fio-seconds", type=int, default=10)
    ap.add_argument("--home", default="/var/tmp/spool-server-bench")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    counts = [int(x) for x in a.clients.split(",")]
    disk = fio_bw(a.model, a.fio_seconds)
    print(f"fio O_DIRECT read: {disk / 1e9:.2f} GB/s" if disk else "fio not installed", file=sys.stderr, flush=True)
    srv = Server(a.spool, a.model, a.budget, max(counts), a.ctx, a.threads, a.home)
    rows = []
    try:
        round_(srv, 1, 2, "warmup")
        for c in counts:
            row = round_(srv, c, a.max_tokens, str(c))
            print(json.dumps({k: v for k, v in row.items() if k != "metrics_delta"}), file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        srv.stop()
    base = rows[0]["aggregate_tok_s"]
    info = dict(date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), kernel=platform.release(),
                cpus=os.cpu_count(), model=a.model, model_bytes=os.path.getsize(a.model), budget=a.budget,
                fio_bytes_per_s=disk, max_tokens=a.max_tokens, load_avg=os.getloadavg())
    print(f"model {os.path.basename(a.model)} ({info['model_bytes'] / 1e9:.2f} GB), --mem-budget {a.budget}, "
          f"{info['cpus']} CPUs, {info['date']}, disk {disk / 1e9 if disk else 0:.2f} GB/s, max_tokens {a.max_tokens}\n")
    print("| clients | aggregate tok/s | × 1 client | wall s | mean latency s | completion tokens |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['aggregate_tok_s']:.2f} | {r['aggregate_tok_s'] / base:.1f}× | {r['wall_s']} | "
              f"{r['mean_latency_s']:.1f} | {r['completion_tokens']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(info=info, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
