"""A local mock of the Hugging Face hub protocol for `spool pull` tests (127.0.0.1 only).

Routes (what huggingface_hub and spool use):
  GET  /api/models/{org}/{name}/revision/{rev}   {"sha": commit, "siblings": [{"rfilename": ...}]}
  HEAD/GET /{org}/{name}/resolve/{rev}/{file}    small files: 200 with ETag = git blob sha1;
       LFS files (*.safetensors, *.gguf): 302 to /blobs/{sha256} with X-Linked-Etag (sha256) and
       X-Linked-Size, like the hub's CDN redirect. Always X-Repo-Commit.
  GET  /blobs/{sha256}?repo=..&file=..           the content, with Range support.
Repos can be gated (401 without "Authorization: Bearer <token>"), carry a wrong
X-Linked-Etag (bad checksum) or ignore Range requests. `cut_after[(repo, file)] = N` makes the next GET of that
file's content send N bytes and drop the connection. Every request's Range header is
recorded in `requests`.
"""
import hashlib
import http.server
import json
import re
import threading
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".gguf")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, files, commit=None, gated_token=None, bad_checksum=False, ignore_range=False):
        self.files = dict(files)  # name -> bytes
        self.commit = commit or hashlib.sha1(repr(sorted(self.files)).encode()).hexdigest()
        self.gated_token = gated_token
        self.bad_checksum = bad_checksum
        self.ignore_range = ignore_range  # answer Range requests with the whole file (200)


class MockHub:
    def __init__(self):
        self.repos = {}
        self.cut_after = {}
        self.requests = []  # (method, path, range header or None)
        self.lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo_id, files, **kw):
        self.repos[repo_id] = Repo(files, **kw)
        return self.repos[repo_id]

    # --- request handling -------------------------------------------------
    def _send(self, h, status, headers=None, body=b"", head=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    def _error(self, h, status, code, head):
        self._send(h, status, {"X-Error-Code": code, "X-Error-Message": code}, f"{code}\n".encode(), head)

    def _handle(self, h, head):
        parsed = urllib.parse.urlparse(h.path)
        path = urllib.parse.unquote(parsed.path)
        with self.lock:
            self.requests.append(("HEAD" if head else "GET", path, h.headers.get("Range")))
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", path)
        if m:
            return self._listing(h, m.group(1), m.group(2), head)
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self._resolve(h, m.group(1), m.group(2), m.group(3), head)
        m = re.fullmatch(r"/blobs/([0-9a-f]{64})", path)
        if m:
            q = urllib.parse.parse_qs(parsed.query)
            repo = self.repos.get(q.get("repo", [""])[0])
            name = q.get("file", [""])[0]
            if repo is None or name not in repo.files:
                return self._error(h, 404, "EntryNotFound", head)
            return self._content(h, q["repo"][0], repo, name, {}, head)
        self._error(h, 404, "RepoNotFound", head)

    def _repo_rev(self, h, repo_id, rev, head):
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 404, "RepoNotFound", head)
            return None
        if rev not in ("main", repo.commit):
            self._error(h, 404, "RevisionNotFound", head)
            return None
        return repo

    def _listing(self, h, repo_id, rev, head):
        repo = self._repo_rev(h, repo_id, rev, head)
        if repo is None:
            return
        body = json.dumps({"id": repo_id, "sha": repo.commit,
                           "siblings": [{"rfilename": n} for n in sorted(repo.files)]}).encode()
        self._send(h, 200, {"Content-Type": "application/json"}, body, head)

    def _resolve(self, h, repo_id, rev, name, head):
        repo = self._repo_rev(h, repo_id, rev, head)
        if repo is None:
            return
        if repo.gated_token and h.headers.get("Authorization") != f"Bearer {repo.gated_token}":
            return self._error(h, 401, "GatedRepo", head)
        if name not in repo.files:
            return self._error(h, 404, "EntryNotFound", head)
        data = repo.files[name]
        common = {"X-Repo-Commit": repo.commit}
        if name.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            linked = hashlib.sha256(data + b"tampered").hexdigest() if repo.bad_checksum else sha
            q = urllib.parse.urlencode({"repo": repo_id, "file": name})
            common.update({"X-Linked-Etag": f'"{linked}"', "X-Linked-Size": str(len(data)),
                           "ETag": f'"{git_sha1(b"pointer " + data[:16])}"',
                           "Location": f"{self.url}/blobs/{sha}?{q}"})
            return self._send(h, 302, common, b"", head)
        common["ETag"] = f'"{git_sha1(data)}"'
        self._content(h, repo_id, repo, name, common, head)

    def _content(self, h, repo_id, repo, name, headers, head):
        data = repo.files[name]
        start = 0
        rng = None if repo.ignore_range else h.headers.get("Range")
        status = 200
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            if not m or int(m.group(1)) >= len(data):
                return self._send(h, 416, {"Content-Range": f"bytes */{len(data)}"}, b"", head)
            start = int(m.group(1))
            status = 206
            headers = dict(headers, **{"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        body = data[start:]
        headers = dict(headers, **{"Content-Length": str(len(body)), "Accept-Ranges": "bytes"})
        cut = None
        if not head:
            with self.lock:
                cut = self.cut_after.pop((repo_id, name), None)
        if cut is None:
            return self._send(h, status, headers, body, head)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body[:cut])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(2)  # drop the connection mid-body
