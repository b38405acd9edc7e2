"""spool batch: OpenAI Batch JSONL in/out, batch-size independence (greedy), per-line
errors, kill -9 + resume, sharding."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import run

N_JOBS = 16
MAX_TOKENS = 8


def job_lines(n=N_JOBS):
    lines = []
    for i in range(n):
        cid = f"job-{i:03d}"
        if i % 3 == 2:
            body = {"model": "smol", "prompt": f"The {i} little pigs went to", "max_tokens": MAX_TOKENS,
                    "temperature": 0}
            lines.append({"custom_id": cid, "method": "POST", "url": "/v1/completions", "body": body})
        else:
            body = {"model": "smol", "messages": [{"role": "user", "content": f"Name {i % 5 + 1} colours."}],
                    "max_tokens": MAX_TOKENS, "temperature": 0}
            lines.append({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})
    return [json.dumps(x) for x in lines]


def write_input(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def read_records(path):
    text = open(path).read()
    assert text == "" or text.endswith("\n"), "output must end with a complete line"
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def essence(rec):
    """What must not depend on batch size/interruption: text, finish reason, token counts."""
    if rec["error"] is not None:
        return {"custom_id": rec["custom_id"], "error": rec["error"]["code"], "line": rec["error"]["line"]}
    body = rec["response"]["body"]
    ch = body["choices"][0]
    text = ch["message"]["content"] if "message" in ch else ch["text"]
    return {"custom_id": rec["custom_id"], "object": body["object"], "text": text, "finish": ch["finish_reason"],
            "usage": (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])}


def by_id(records):
    return sorted((essence(r) for r in records), key=lambda e: (str(e["custom_id"]), e.get("line", 0)))


def batch(spool_bin, model, inp, out, *extra, timeout=120):
    r = run(spool_bin, "batch", model, "--in", inp, "--out", out, "--threads", "2", *extra, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    return write_input(d / "jobs.jsonl", job_lines())


@pytest.fixture(scope="module")
def reference(spool_bin, smollm2, jobs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "ref.jsonl")
    r = batch(spool_bin, smollm2, jobs, out, "--batch", "8")
    recs = read_records(out)
    assert len(recs) == N_JOBS
    assert all(rec["error"] is None for rec in recs), recs
    assert "mean batch" in r.stderr  # the summary
    return by_id(recs)


def test_output_shape(reference, spool_bin, smollm2, tmp_path):
    inp = write_input(tmp_path / "one.jsonl", job_lines(3))
    out = str(tmp_path / "one.out.jsonl")
    batch(spool_bin, smollm2, inp, out, "--batch", "2")
    recs = read_records(out)
    assert len(recs) == 3
    for rec in recs:
        assert rec["id"].startswith("batch_req_")
        assert rec["response"]["status_code"] == 200
        body = rec["response"]["body"]
        assert body["object"] in ("chat.completion", "text_completion")
        assert body["usage"]["completion_tokens"] <= MAX_TOKENS
    assert any(e["text"] for e in reference)  # the model really generated something


def test_batch1_equals_batch8(reference, spool_bin, smollm2, jobs, tmp_path):
    out = str(tmp_path / "b1.jsonl")
    batch(spool_bin, smollm2, jobs, out, "--batch", "1")
    assert by_id(read_records(out)) == reference


def test_malformed_lines_get_their_own_errors(spool_bin, smollm2, tmp_path):
    good = job_lines(2)
    lines = [good[0], "{oops", json.dumps({"body": {"prompt": "x"}}),
             json.dumps({"custom_id": "bad-body", "body": {"prompt": "x", "max_tokens": "many"}}),
             json.dumps({"custom_id": "bad-url", "url": "/v1/embeddings", "body": {"input": "x"}}),
             json.dumps({"custom_id": "too-long", "body": {"prompt": "x", "max_tokens": 10_000_000}}),
             good[0], good[1]]
    inp = write_input(tmp_path / "mixed.jsonl", lines)
    out = str(tmp_path / "mixed.out.jsonl")
    batch(spool_bin, smollm2, inp, out, "--batch", "4")
    recs = read_records(out)
    assert len(recs) == len(lines)
    errors = {(r["custom_id"], r["error"]["code"]): r["error"] for r in recs if r["error"] is not None}
    assert set(errors) == {(None, "invalid_json"), (None, "invalid_custom_id"), ("bad-body", "invalid_request"),
                           ("bad-url", "invalid_url"), ("too-long", "context_length_exceeded"),
                           ("job-000", "duplicate_custom_id")}
    assert errors[(None, "invalid_json")]["line"] == 2
    assert "max_tokens" in errors[("bad-body", "invalid_request")]["message"]
    ok = [r for r in recs if r["error"] is None]
    assert sorted(r["custom_id"] for r in ok) == ["job-000", "job-001"]
    # A re-run has nothing left to do, loads no model and leaves the file as it was.
    before = open(out).read()
    r = batch(spool_bin, smollm2, inp, out)
    assert open(out).read() == before
    assert "8 already done, 0 written now" in r.stderr


def test_kill9_then_resume_equals_uninterrupted(reference, spool_bin, smollm2, jobs, tmp_path):
    out = str(tmp_path / "killed.jsonl")
    p = subprocess.Popen([spool_bin, "batch", smollm2, "--in", jobs, "--out", out, "--batch", "2", "--threads", "2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline:
        if os.path.exists(out) and open(out).read().count("\n") >= 2:
            p.send_signal(signal.SIGKILL)
            killed = True
            break
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.wait()
    assert killed, "the job finished (or failed) before it could be killed"
    partial = read_records(out) if open(out).read().endswith("\n") else None
    assert partial is None or 2 <= len(partial) < N_JOBS
    # Simulate the worst moment too: a kill in the middle of writing a record.
    with open(out, "a") as f:
        f.write('{"id":"batch_req_x","custom_id":"job-015","response":{"status_co')
    r = batch(spool_bin, smollm2, jobs, out, "--batch", "3")
    assert "torn record" in r.stderr
    recs = read_records(out)
    ids = [rec["custom_id"] for rec in recs]
    assert len(ids) == len(set(ids)) == N_JOBS, "complete and duplicate-free"
    assert by_id(recs) == reference


def test_shards_cover_every_line_once(reference, spool_bin, smollm2, jobs, tmp_path):
    # Add a malformed line so that lines without custom_id are sharded too.
    lines = open(jobs).read().splitlines() + ["not json"]
    inp = write_input(tmp_path / "jobs_bad.jsonl", lines)
    outs = []
    for i in range(3):
        out = str(tmp_path / f"shard{i}.jsonl")
        batch(spool_bin, smollm2, inp, out, "--shard", f"{i}/3", "--batch", "4")
        recs = read_records(out)
        assert all((r["error"]["line"] if r["error"] else int(r["custom_id"][4:]) + 1) % 3 == (i + 1) % 3 for r in recs)
        outs += recs
    assert len(outs) == len(lines)
    merged = by_id([r for r in outs if r["error"] is None])
    assert merged == reference
    assert [r["error"]["line"] for r in outs if r["error"]] == [len(lines)]


def test_bad_flags(spool_bin, smollm2, jobs, tmp_path):
    out = str(tmp_path / "x.jsonl")
    for extra, msg in [(["--shard", "3/3"], "--shard"), (["--batch", "0"], "--batch")]:
        r = run(spool_bin, "batch", smollm2, "--in", jobs, "--out", out, *extra)
        assert r.returncode != 0 and msg in r.stderr
    r = run(spool_bin, "batch", smollm2, "--in", jobs, "--out", jobs)
    assert r.returncode != 0 and "same file" in r.stderr
    r = run(spool_bin, "batch", smollm2, "--in", str(tmp_path / "missing.jsonl"), "--out", out)
    assert r.returncode != 0 and "missing.jsonl" in r.stderr
