"""Hostile clients against a live `spool serve` (issue 20, the transport part).

Every attack runs on loopback with bounded loops and stops by itself; each test then
checks that an honest request still succeeds, and the RSS tests read VmRSS from
/proc/PID/status before and after. Env: SPOOL_BIN (the binary), SPOOL_TEST_MODEL.
"""
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from server_util import MODEL, LiveServer, binary

pytestmark = pytest.mark.skipif(not os.path.exists(MODEL), reason="test model missing (make model)")

RSS_BOUND_KB = 64 * 1024  # an attack may not leave the server more than 64 MiB bigger


@pytest.fixture(scope="module")
def server():
    s = LiveServer("--parallel", "2", "--ctx", "512", "--threads", "2", "--max-body", "64K",
                   "--request-timeout", "3", "--max-connections", "600")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def rss_kb(server):
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def honest(server):
    """A health check and a one-token completion both succeed."""
    assert server.request("GET", "/health", timeout=10) == (200, {"status": "ok"})
    status, body = server.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1}, timeout=60)
    assert status == 200, body


class _Unclosable:
    """A file that HTTPResponse cannot close (it closes its file after the body)."""

    def __init__(self, f):
        self.f = f

    def __getattr__(self, name):
        return getattr(self.f, name)

    def close(self):
        pass


class _OneFile:
    """Lets several http.client.HTTPResponse objects read one socket's byte stream in turn."""

    def __init__(self, f):
        self.f = _Unclosable(f)

    def makefile(self, *args, **kw):
        return self.f


def read_response(f):
    r = http.client.HTTPResponse(_OneFile(f))
    r.begin()
    return r.status, dict(r.getheaders()), r.read()


def connect(server, timeout=10):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_until_answered(sock, head, piece, total, seconds=30):
    """Sends `head`, then `piece` repeatedly (at most `total` bytes, `seconds` long) until
    the server answers, closes or resets. Returns (status or None, bytes sent)."""
    sent = 0
    t0 = time.time()
    try:
        sock.sendall(head)
        while sent < total and time.time() < t0 + seconds:
            r, _, _ = select.select([sock], [], [], 0)
            if r:
                break
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(10)
    try:
        f = sock.makefile("rb")
        status, _, _ = read_response(f)
        return status, sent
    except (http.client.HTTPException, ConnectionResetError, OSError):
        return None, sent


def test_chunked_body_obeys_max_body(server):
    before = rss_kb(server)
    s = connect(server)
    chunk = b"x" * 65536
    piece = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    status, sent = send_until_answered(s, head, piece, 300 << 20)
    s.close()
    print(f"chunked: answered {status} after {sent} bytes sent")
    assert status in (400, 413), f"status {status} after {sent} bytes"
    assert sent < (16 << 20), f"the server read {sent} bytes before answering"
    honest(server)
    print(f"chunked: RSS {before} -> {rss_kb(server)} kB")
    assert rss_kb(server) - before < RSS_BOUND_KB


def test_content_length_over_max_body_answered_before_the_body(server):
    s = connect(server)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n")
    status, headers, body = read_response(s.makefile("rb"))
    s.close()
    assert status in (400, 413) and json.loads(body)["error"]["code"] == "request_too_large"
    honest(server)


def test_a_million_header_lines(server):
    before = rss_kb(server)
    s = connect(server)
    lines = b"".join(b"X-Filler-%d: y\r\n" % i for i in range(1000))
    status, sent = send_until_answered(s, b"GET /health HTTP/1.1\r\nHost: x\r\n", lines, 110 << 20)
    s.close()
    assert status == 431, f"status {status} after {sent} header bytes"
    honest(server)
    print(f"header lines: answered {status} after {sent} bytes; RSS {before} -> {rss_kb(server)} kB")
    assert rss_kb(server) - before < RSS_BOUND_KB


def test_too_many_header_fields(server):
    s = connect(server)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n"
    s.sendall(head)
    status, _, _ = read_response(s.makefile("rb"))
    s.close()
    assert status == 431
    honest(server)


def test_one_huge_header(server):
    s = connect(server)
    status, _ = send_until_answered(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * 4096, 4 << 20)
    s.close()
    assert status == 431
    honest(server)


def test_long_request_line(server):
    s = connect(server)
    status, _ = send_until_answered(s, b"GET /" , b"a" * 4096, 4 << 20)
    s.close()
    assert status == 414
    honest(server)


def test_garbage_is_a_bad_request(server):
    s = connect(server)
    s.sendall(b"\x00\x01\x02 not http at all\r\n\r\n")
    s.settimeout(10)
    try:
        status, _, _ = read_response(s.makefile("rb"))
    except (http.client.HTTPException, ConnectionResetError):
        status = None
    s.close()
    assert status == 400
    honest(server)


def test_request_deadline_is_for_the_whole_request(server):
    # One header byte every 0.2 s: every read succeeds, the request never ends.
    # --request-timeout 3 must answer 408 about 3 s after the first byte.
    s = connect(server)
    t0 = time.time()
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    status = None
    try:
        for i in range(len(head)):
            s.sendall(head[i:i + 1])
            r, _, _ = select.select([s], [], [], 0.2)
            if r or time.time() > t0 + 15:
                break
        s.settimeout(10)
        status, _, _ = read_response(s.makefile("rb"))
    except (http.client.HTTPException, ConnectionResetError, BrokenPipeError):
        pass
    elapsed = time.time() - t0
    s.close()
    assert status == 408 and elapsed < 8, f"status {status} after {elapsed:.1f} s"
    honest(server)


def test_pipelined_requests_answered_in_order(server):
    s = connect(server)
    body = json.dumps({"content": "Hello world"}).encode()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body +
              b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    f = s.makefile("rb")
    answers = []
    try:
        for _ in range(3):
            answers.append(read_response(f))
    except (http.client.HTTPException, ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert [a[0] for a in answers] == [200, 200, 200], answers
    assert json.loads(answers[0][2]) == {"status": "ok"}
    assert len(json.loads(answers[1][2])["tokens"]) == 2
    assert json.loads(answers[2][2])["object"] == "list"


class SlowLoris:
    """`n` connections, each sending one header byte about every `period` seconds from
    one driver thread, until stop() (or `seconds`)."""

    def __init__(self, port, n, period=1.0, seconds=60):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            s.send(b"POST /v1/chat/completions HTTP/1.1\r\n")
            self.socks.append(s)
        self.period, self.seconds = period, seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._drive, daemon=True)
        self.thread.start()

    def _drive(self):
        t0 = time.time()
        while not self.stopped.is_set() and time.time() < t0 + self.seconds:
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            self.stopped.wait(self.period)

    def stop(self):
        self.stopped.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def test_slow_loris_does_not_stall_health():
    # Default limits (--request-timeout 30): the slow connections stay open throughout.
    server = LiveServer("--threads", "2", "--ctx", "512")
    loris = None
    try:
        server.wait_ready()
        before = rss_kb(server)
        loris = SlowLoris(server.port, 256)
        time.sleep(0.5)
        latencies = []
        for _ in range(40):
            t = time.time()
            try:
                status, _ = server.request("GET", "/health", timeout=5)
            except OSError:
                status = None
            latencies.append(time.time() - t if status == 200 else 99.0)
            time.sleep(0.02)
        latencies.sort()
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(f"/health p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms with 256 slow connections")
        assert p99 < 1.0, f"/health p99 {p99:.2f} s with 256 slow connections open"
        t = time.time()
        status, body = server.request("POST", "/v1/chat/completions",
                                      {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}, timeout=30)
        assert status == 200 and time.time() - t < 10, body
        loris.stop()
        loris = None
        honest(server)
        print(f"slow-loris: RSS {before} -> {rss_kb(server)} kB")
        assert rss_kb(server) - before < RSS_BOUND_KB
    finally:
        if loris:
            loris.stop()
        server.stop()


def test_connection_cap_answers_503_with_retry_after():
    s = LiveServer("--threads", "2", "--ctx", "256", "--max-connections", "16")
    idle = []
    try:
        s.wait_ready()
        for _ in range(16):
            idle.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            status, headers, _ = read_response(extra.makefile("rb"))
        except (http.client.HTTPException, ConnectionResetError, socket.timeout):
            status, headers = None, {}
        extra.close()
        assert status == 503 and "Retry-After" in headers, status
        for c in idle:
            c.close()
        idle = []
        time.sleep(0.3)
        assert s.request("GET", "/health", timeout=10)[0] == 200
    finally:
        for c in idle:
            c.close()
        s.stop()


def test_queue_cap_answers_503_with_retry_after():
    # One handler thread and a queue of one: the third concurrent generation is refused.
    s = LiveServer("--threads", "2", "--ctx", "512", "--http-threads", "1", "--max-queue", "1")
    try:
        s.wait_ready()
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": True}).encode()
        socks = []
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
                      b"\r\n\r\n" + body)
            socks.append(c)
            time.sleep(0.3)
        status, headers, _ = read_response(socks[2].makefile("rb"))
        assert status == 503 and "Retry-After" in headers
        for c in socks:
            c.close()
        time.sleep(1.0)
        assert s.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1}, timeout=60)[0] == 200
    finally:
        s.stop()


def test_api_key_from_file_and_env(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    for args, env in ((["--api-key-file", str(key_file)], {}), ([], {"SPOOL_API_KEY": "from-file"})):
        s = LiveServer("--threads", "2", "--ctx", "256", *args, env=env)
        try:
            s.wait_ready()
            assert s.request("GET", "/v1/models")[0] == 401
            assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer from-fil"})[0] == 401
            assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer from-file"})[0] == 200
            assert s.request("GET", "/health")[0] == 200
        finally:
            s.stop()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "garbage"])
def test_serve_exits_when_the_model_cannot_load(tmp_path, kind):
    if kind == "dev-zero":
        path = "/dev/zero"
    elif kind == "fifo":
        path = str(tmp_path / "model.gguf")
        os.mkfifo(path)
    elif kind == "directory":
        path = str(tmp_path)
    else:
        path = str(tmp_path / "garbage.gguf")
        with open(path, "wb") as f:
            f.write(b"GGUF" + os.urandom(4096))
    t0 = time.time()
    try:
        r = subprocess.run([binary(), "serve", path, "--port", "0"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"spool serve {kind} did not exit within 30 s")
    assert r.returncode != 0 and time.time() - t0 < 15
    assert path in r.stderr or "model" in r.stderr, r.stderr


def test_sigterm_stops_with_a_stream_in_flight():
    s = LiveServer("--threads", "2", "--ctx", "512")
    try:
        s.wait_ready()
        c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": True, "stream": True}).encode()
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
                  b"\r\n\r\n" + body)
        got = b""
        t0 = time.time()
        while b"data:" not in got and time.time() < t0 + 30:
            got += c.recv(4096)
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(timeout=15)
        assert rc == 0 and time.time() - t0 < 5
        c.close()
    finally:
        if s.proc.poll() is None:
            s.stop()
