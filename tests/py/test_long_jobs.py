"""Long jobs (issue 18, items 4-6): prefill checkpoints into the session (`spool run
--session S --checkpoint-every N`), a run killed mid-prefill resuming from its last
checkpoint with the uninterrupted run's output, a kill during a checkpoint write, bad
flags, and the prefill progress line."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import run

# About 100 tokens on stories260K (context 128): a dozen chunks of 8.
PROMPT = "Once upon a time there was a little girl named Lily. She liked to play in the park with her dog. " * 3
CHUNK = "8"
CTX = "128"


@pytest.fixture()
def home(tmp_path):
    return dict(os.environ, SPOOL_HOME=str(tmp_path / "home"))


def args(stories, *extra):
    return ["run", stories, PROMPT, "--temp", "0", "--ctx", CTX, "--prefill-chunk", CHUNK, "-n", "8",
            "--ignore-eos", "--json", *extra]


def session_path(env, name):
    return pathlib.Path(env["SPOOL_HOME"]) / "sessions" / (name + ".session")


def reference(spool_bin, stories, env):
    r = run(spool_bin, *args(stories), env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["prompt_ids"]) > 8 * int(CHUNK)
    return out


def start_slow(spool_bin, stories, env, name, *extra):
    slow = dict(env, SPOOL_TEST_PREFILL_CHUNK_DELAY_MS="150", **dict(extra))
    return subprocess.Popen([spool_bin, *args(stories, "--session", name, "--checkpoint-every", "16")], env=slow,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(pred, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(what)


def kill(p):
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it was killed"


def test_killed_prefill_resumes_from_the_last_checkpoint(spool_bin, stories, home):
    ref = reference(spool_bin, stories, home)
    path = session_path(home, "long")
    p = start_slow(spool_bin, stories, home, "long")
    wait_for(path.exists, "no checkpoint was written")
    kill(p)
    r = run(spool_bin, *args(stories, "--session", "long", "--checkpoint-every", "16"), env=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    reused = out["stats"]["prompt_tokens_reused"]
    assert reused > 0 and reused % int(CHUNK) == 0
    assert reused < len(ref["prompt_ids"])
    assert out["ids"] == ref["ids"]
    # The finished session is an ordinary one: continuing it appends, as after any run.
    meta = run(spool_bin, "sessions", "show", "long", "--json", env=home)
    assert meta.returncode == 0, meta.stderr
    assert "prefill_checkpoint" not in meta.stdout


def test_kill_during_a_checkpoint_write_keeps_the_previous_checkpoint(spool_bin, stories, home):
    ref = reference(spool_bin, stories, home)
    path = session_path(home, "k")
    p = start_slow(spool_bin, stories, home, "k")
    wait_for(path.exists, "no checkpoint was written")
    kill(p)
    before = path.read_bytes()
    # The resumed run pauses half way through writing its next checkpoint: kill it there.
    p = start_slow(spool_bin, stories, home, "k", ("SPOOL_TEST_SESSION_SAVE_PAUSE_S", "60"))
    wait_for(lambda: [f for f in path.parent.iterdir() if ".tmp." in f.name and f.stat().st_size > 0],
             "the checkpoint write never started")
    kill(p)
    assert path.read_bytes() == before
    r = run(spool_bin, *args(stories, "--session", "k"), env=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["stats"]["prompt_tokens_reused"] > 0
    assert out["ids"] == ref["ids"]


def test_checkpoints_do_not_change_the_output(spool_bin, stories, home):
    ref = reference(spool_bin, stories, home)
    r = run(spool_bin, *args(stories, "--session", "c", "--checkpoint-every", "20"), env=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ids"] == ref["ids"]
    assert out["stats"]["checkpoints"] >= 3  # every 20 tokens, at chunk ends: after chunks 3, 6, 9, ...
    assert r.stderr.count("checkpoint: ") == out["stats"]["checkpoints"]


@pytest.mark.parametrize("value", ["0", "-3", "abc", ""])
def test_bad_checkpoint_every_is_refused(spool_bin, stories, home, value):
    r = run(spool_bin, *args(stories, "--session", "b", "--checkpoint-every", value), env=home)
    assert r.returncode != 0
    assert "--checkpoint-every must be auto, off or a positive number" in r.stderr


def test_checkpoint_every_needs_a_session(spool_bin, stories, home):
    r = run(spool_bin, *args(stories, "--checkpoint-every", "16"), env=home)
    assert r.returncode != 0
    assert "--checkpoint-every needs --session" in r.stderr


def test_unwritable_sessions_folder_fails_before_the_prefill(spool_bin, stories, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = dict(os.environ, SPOOL_HOME=str(blocker / "home"))
    r = run(spool_bin, *args(stories, "--session", "s"), env=env)
    assert r.returncode != 0
    assert "--session s: cannot create the sessions folder" in r.stderr
    assert r.stdout == ""


def test_checkpoint_off_writes_only_the_final_session(spool_bin, stories, home):
    r = run(spool_bin, *args(stories, "--session", "o", "--checkpoint-every", "off"), env=home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stats"]["checkpoints"] == 0
    assert "checkpoint: " not in r.stderr


# ---- spool serve: prompt_progress in the stream, prefill gauges in /metrics ----

def sse_events(server, body, timeout=120):
    import urllib.request
    req = urllib.request.Request(server.url + "/v1/completions", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(req, timeout=timeout) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            events.append(json.loads(line[len("data: "):]))
    return events


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name + " missing from /metrics")


@pytest.fixture()
def stories_server(stories):
    from server_util import LiveServer
    s = LiveServer("--ctx", CTX, "--threads", "2", "--prefill-chunk", CHUNK, "--no-disk-sessions", model=stories,
                   env={"SPOOL_TEST_PREFILL_CHUNK_DELAY_MS": "100"})
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_stream_reports_prompt_progress_when_asked(stories_server):
    body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "stream": True, "return_progress": True,
            "stream_options": {"include_usage": True}}
    events = sse_events(stories_server, body)
    progress = [e["prompt_progress"] for e in events if "prompt_progress" in e]
    usage = [e["usage"] for e in events if e.get("usage")][-1]
    total = usage["prompt_tokens"]
    assert len(progress) == -(-total // int(CHUNK))  # one per chunk
    assert all(p["total"] == total and p["cache"] == 0 and p["time_ms"] >= 0 for p in progress)
    done = [p["processed"] for p in progress]
    assert done == sorted(done) and done[-1] == total and done[0] == int(CHUNK)
    # Progress comes before any text, and does not change the text.
    first_text = next(i for i, e in enumerate(events) if e["choices"] and e["choices"][0]["text"])
    assert all("prompt_progress" not in e for e in events[first_text:])
    plain = sse_events(stories_server, {k: v for k, v in body.items() if k != "return_progress"})
    assert not [e for e in plain if "prompt_progress" in e]
    text = lambda evs: "".join(e["choices"][0]["text"] for e in evs if e["choices"])
    assert text(plain) == text(events)


def test_metrics_show_a_running_prefill(stories_server):
    import threading
    _, idle = stories_server.request("GET", "/metrics")
    assert metric(idle, "spool_prefill_tokens_total") == 0
    t = threading.Thread(target=sse_events, args=(stories_server, {"prompt": PROMPT, "max_tokens": 2, "stream": True}))
    t.start()
    seen = None
    deadline = time.time() + 60
    while time.time() < deadline and seen is None:
        _, text = stories_server.request("GET", "/metrics")
        done, total = metric(text, "spool_prefill_tokens_done"), metric(text, "spool_prefill_tokens_total")
        if 0 < done < total:
            seen = (done, total, metric(text, "spool_prefill_requests"))
        time.sleep(0.05)
    t.join()
    assert seen is not None, "no running prefill was seen"
    assert seen[2] == 1 and seen[1] > 8 * int(CHUNK)
    _, after = stories_server.request("GET", "/metrics")
    assert metric(after, "spool_prefill_tokens_total") == 0 and metric(after, "spool_prefill_requests") == 0


def test_return_progress_must_be_a_boolean(stories_server):
    status, body = stories_server.request("POST", "/v1/completions",
                                          {"prompt": "Once", "max_tokens": 1, "stream": True, "return_progress": "yes"})
    assert status == 400 and "return_progress" in json.dumps(body)


def test_long_prefill_shows_progress_with_rate_and_eta(spool_bin, smollm2, tmp_path):
    """A prompt of >= 1024 tokens shows `prefill  done/total tok (pct)  rate tok/s  ETA m:ss` on
    stderr; not on a terminal, a line every SPOOL_PROGRESS_INTERVAL_S seconds."""
    text = "The quick brown fox jumps over the lazy dog while the cat sleeps. " * 90
    env = dict(os.environ, SPOOL_HOME=str(tmp_path / "home"), SPOOL_PROGRESS_INTERVAL_S="0.05",
               SPOOL_TEST_PREFILL_CHUNK_DELAY_MS="100")
    r = run(spool_bin, "run", smollm2, text, "-n", "1", "--temp", "0", "--ctx", "2048", "--prefill-chunk", "128",
            "-t", "2", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    import re
    lines = re.findall(r"prefill  (\d+)/(\d+) tok \(\d+%\)  [\d.]+ tok/s  ETA \d+:\d\d", r.stderr)
    assert len(lines) >= 2, r.stderr
    total = int(lines[0][1])
    assert total >= 1024
    assert int(lines[-1][0]) == total  # the final line


# ---- --prefill-chunk auto: the planner's choice, shown in the plan ----

def plan_json(spool_bin, model, *flags):
    env = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=str(40 << 20))
    r = run(spool_bin, "show", model, "--plan", "--json", "-t", "2", *flags, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out.get("plan", out)


@pytest.mark.parametrize("budget", ["210M", "230M", "300M", "1G"])
def test_auto_prefill_chunk_never_costs_resident_weights(spool_bin, smollm2, budget):
    common = ["--ctx", "8192", "--mem-budget", budget]
    auto = plan_json(spool_bin, smollm2, *common, "--prefill-chunk", "auto")
    fixed = plan_json(spool_bin, smollm2, *common)  # the default: 512
    assert auto["prefill_chunk_auto"] is True and fixed["prefill_chunk_auto"] is False
    assert fixed["prefill_chunk"] == 512
    assert auto["prefill_chunk"] in (512, 1024, 2048, 4096) and auto["prefill_rows"] == auto["prefill_chunk"]
    assert auto["resident_groups"] == fixed["resident_groups"]
    assert auto["planned_bytes"] <= auto["budget_bytes"]
    if auto["prefill_chunk"] < 4096:  # the next candidate would not fit beside the same weights
        bigger = plan_json(spool_bin, smollm2, *common, "--prefill-chunk", str(auto["prefill_chunk"] * 2))
        assert bigger["resident_groups"] != fixed["resident_groups"] or bigger["planned_bytes"] > bigger["budget_bytes"]


def test_auto_prefill_chunk_uses_a_roomy_budget_and_the_flag_wins(spool_bin, smollm2):
    auto = plan_json(spool_bin, smollm2, "--ctx", "8192", "--mem-budget", "1G", "--prefill-chunk", "auto")
    assert auto["prefill_chunk"] == 4096
    small_ctx = plan_json(spool_bin, smollm2, "--ctx", "1024", "--mem-budget", "1G", "--prefill-chunk", "auto")
    assert small_ctx["prefill_chunk"] == 1024  # never larger than the context
    explicit = plan_json(spool_bin, smollm2, "--ctx", "8192", "--mem-budget", "1G", "--prefill-chunk", "256")
    assert explicit["prefill_chunk"] == 256 and not explicit["prefill_chunk_auto"]
    r = run(spool_bin, "show", smollm2, "--plan", "--mem-budget", "1G", "--prefill-chunk", "auto")
    assert "prefill chunk          4096 tokens (auto:" in r.stdout


@pytest.mark.parametrize("value", ["0", "-1", "big", "65537"])
def test_bad_prefill_chunk_is_refused(spool_bin, stories, value):
    r = run(spool_bin, "run", stories, "Once", "--prefill-chunk", value)
    assert r.returncode != 0 and "--prefill-chunk must be auto or in [1, 65536]" in r.stderr


def test_run_with_auto_chunk_equals_the_chosen_chunk(spool_bin, stories, home):
    auto = json.loads(run(spool_bin, *args(stories, "--prefill-chunk", "auto", "--stats"), env=home).stdout)
    chosen = auto["stats"]["plan"]["prefill_chunk"]
    assert auto["stats"]["plan"]["prefill_chunk_auto"] is True
    fixed = json.loads(run(spool_bin, *args(stories, "--prefill-chunk", str(chosen)), env=home).stdout)
    assert fixed["ids"] == auto["ids"]
