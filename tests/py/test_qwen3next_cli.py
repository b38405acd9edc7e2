"""A hybrid model (Qwen3-Next: Gated DeltaNet layers with a recurrent state beside the KV
cache) through the CLI (issue 15): `spool run --session` continues without recomputing,
a process killed while saving leaves the previous session valid, and `spool batch` over
several sequences gives what each gives alone. The model is the tiny GGUF converted by
llama.cpp (tests/fixtures/qwen3next/qwen3next-h64.gguf, tools/gen_qwen3next_gguf_fixtures.py),
which carries a 200-token byte-level BPE for plain ASCII text."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import ROOT, run

MODEL = str(ROOT / "tests" / "fixtures" / "qwen3next" / "qwen3next-h64.gguf")


@pytest.fixture()
def home(tmp_path):
    return dict(os.environ, SPOOL_HOME=str(tmp_path / "home"))


def gen(spool_bin, env, prompt, *extra):
    r = run(spool_bin, "run", MODEL, prompt, "--temp", "0", "--ctx", "128", "--json", "--ignore-eos", "--threads", "2",
            *extra, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def sessions_dir(env):
    return pathlib.Path(env["SPOOL_HOME"]) / "sessions"


def test_session_continues_a_hybrid_model_without_recomputing(spool_bin, home):
    whole = gen(spool_bin, home, "Once upon a time", "-n", "16")
    a = gen(spool_bin, home, "Once upon a time", "-n", "8", "--session", "h")
    b = gen(spool_bin, home, "", "-n", "8", "--session", "h")
    assert a["ids"] + b["ids"] == whole["ids"]
    # The second run restored the recurrent state and the KV: only the pending token was fed.
    assert b["stats"]["prompt_tokens_reused"] == len(a["prompt_ids"]) + 7
    assert b["stats"]["prompt_tokens"] == 1


def test_kill_9_during_save_keeps_the_previous_hybrid_session(spool_bin, home):
    whole = gen(spool_bin, home, "Once upon a time", "-n", "24")
    first = gen(spool_bin, home, "Once upon a time", "-n", "8", "--session", "k")
    path = sessions_dir(home) / "k.session"
    before = path.read_bytes()
    # The second run pauses inside the save (after the header, before the KV records and
    # the recurrent-state block); kill it there.
    env = dict(home, SPOOL_TEST_SESSION_SAVE_PAUSE_S="60")
    p = subprocess.Popen([spool_bin, "run", MODEL, "", "--temp", "0", "--ctx", "128", "-n", "8", "--ignore-eos",
                          "--threads", "2", "--session", "k", "--json"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.time() + 60
    tmp = []
    while time.time() < deadline and not tmp:
        tmp = [f for f in sessions_dir(home).iterdir() if ".tmp." in f.name and f.stat().st_size > 0]
        time.sleep(0.05)
    assert tmp, "the save never started"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert path.read_bytes() == before  # untouched
    # Continuing from the intact session gives the uninterrupted run's tokens, without
    # recomputing its prefix.
    second = gen(spool_bin, home, "", "-n", "16", "--session", "k")
    assert first["ids"] + second["ids"] == whole["ids"]
    assert second["stats"]["prompt_tokens_reused"] == len(first["prompt_ids"]) + 7
    assert not [f for f in sessions_dir(home).iterdir() if ".tmp." in f.name]


PROMPTS = ["Once upon a time", "The little fox", "There was a", "A quick fox ran", "Once there", "time was"]


def test_batch_of_hybrid_sequences_equals_one_by_one(spool_bin, tmp_path):
    lines = [json.dumps({"custom_id": f"j{i}", "method": "POST", "url": "/v1/completions",
                         "body": {"model": "q3n", "prompt": p, "max_tokens": 10, "temperature": 0}})
             for i, p in enumerate(PROMPTS)]
    inp = tmp_path / "jobs.jsonl"
    inp.write_text("\n".join(lines) + "\n")

    def texts(batch_size):
        out = tmp_path / f"out{batch_size}.jsonl"
        r = run(spool_bin, "batch", MODEL, "--in", str(inp), "--out", str(out), "--threads", "2", "--batch",
                str(batch_size))
        assert r.returncode == 0, r.stderr
        recs = [json.loads(l) for l in out.read_text().splitlines() if l.strip()]
        assert len(recs) == len(PROMPTS)
        assert all(rec["error"] is None for rec in recs), recs
        return {rec["custom_id"]: (rec["response"]["body"]["choices"][0]["text"],
                                   rec["response"]["body"]["usage"]["completion_tokens"]) for rec in recs}

    together = texts(len(PROMPTS))  # all sequences in one scheduler: batched decode steps
    alone = texts(1)
    assert together == alone
    assert all(n == 10 for _, n in together.values())
    # And each equals `spool run` on its own.
    for i, p in enumerate(PROMPTS[:2]):
        r = run(spool_bin, "run", MODEL, p, "--temp", "0", "-n", "10", "--ignore-eos", "--json", "--threads", "2")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["text"] == together[f"j{i}"][0]


def test_second_chat_turn_does_not_recompute_the_first(spool_bin, tmp_path):
    """`spool chat --stats` on the hybrid model: the second turn's prompt (the whole
    conversation rendered again) resumes from a state checkpoint at the first turn's
    prompt end, so the first turn is not recomputed (llama.cpp's server reprocesses it)."""
    pexpect = pytest.importorskip("pexpect")
    import re
    env = {**os.environ, "SPOOL_HOME": str(tmp_path / "home"), "TERM": "dumb"}
    child = pexpect.spawn(spool_bin, ["chat", MODEL, "--temp", "0", "--threads", "2", "-n", "6", "--stats"], env=env,
                          encoding="utf-8", timeout=60, dimensions=(50, 400))
    child.expect("/bye to leave")
    child.expect_exact(">>> ")
    pattern = r"\[prompt: (\d+) tokens, (\d+) reused from the cache, (\d+) computed; (\d+) generated\]"

    def ask(text):
        child.sendline(text)
        child.expect(pattern)
        n, reused, computed, _ = map(int, child.match.groups())
        child.expect_exact(">>> ")
        return n, reused, computed

    n1, r1, c1 = ask("Once upon a time there was a little fox who lived in a quiet forest.")
    assert (r1, c1) == (0, n1)
    n2, r2, c2 = ask("What did the fox do next?")
    assert n2 > n1
    assert r2 >= n1 - 1, (n1, n2, r2)  # the first turn's prompt (but its last token) came from the cache
    assert c2 == n2 - r2
    child.sendline("/bye")
    child.expect(pexpect.EOF)


def test_run_session_restart_with_reuse_prefix_resumes_at_the_prompt_end(spool_bin, home):
    """Sessions store the recurrent state's checkpoints (format v3): `spool run --session
    --reuse-prefix` in a new process whose prompt extends the last one resumes at the last
    prompt's end (a turn checkpoint kept there), computes only the new tokens and gives
    the ids of a cold run of the whole prompt."""
    first = gen(spool_bin, home, "Once upon a time", "-n", "6", "--session", "r")
    info = json.loads(run(spool_bin, "sessions", "show", "r", "--json", env=home).stdout)
    assert any(c["turn"] and c["n_tokens"] == len(first["prompt_ids"]) for c in info.get("checkpoints", [])), info
    prompt = "Once upon a time there was a little fox"
    cold = gen(spool_bin, home, prompt, "-n", "10")
    again = gen(spool_bin, home, prompt, "-n", "10", "--session", "r", "--reuse-prefix")
    n_first = len(first["prompt_ids"])
    assert cold["prompt_ids"][:n_first] == first["prompt_ids"]
    assert again["stats"]["prompt_tokens_reused"] == n_first
    assert again["stats"]["prompt_tokens"] == len(cold["prompt_ids"]) - n_first
    assert again["ids"] == cold["ids"]
    # Without the stored checkpoints (a v2-style session holding only the current state)
    # nothing before the current length could be resumed: 0 tokens would be reused.


def test_chat_session_restart_does_not_recompute_the_first_turn(spool_bin, tmp_path):
    """A `spool chat --session` restarted after its first turn resumes the second turn
    from the first turn's prompt-end checkpoint stored in the session (not from 0), and
    answers as the uninterrupted conversation does."""
    pexpect = pytest.importorskip("pexpect")
    pattern = r"\[prompt: (\d+) tokens, (\d+) reused from the cache, (\d+) computed; (\d+) generated\]"

    def chat(env, questions, *extra):
        child = pexpect.spawn(spool_bin, ["chat", MODEL, "--temp", "0", "--threads", "2", "-n", "6", "--stats", *extra],
                              env=env, encoding="utf-8", timeout=60, dimensions=(50, 400))
        child.expect("/bye to leave")
        child.expect_exact(">>> ")
        out = []
        for q in questions:
            child.sendline(q)
            child.expect(pattern)
            answer = child.before
            n, reused, computed, _ = map(int, child.match.groups())
            child.expect_exact(">>> ")
            out.append((answer.split(q, 1)[-1].strip(), n, reused, computed))
        child.sendline("/bye")
        child.expect(pexpect.EOF)
        return out

    q1 = "Once upon a time there was a little fox who lived in a quiet forest."
    q2 = "What did the fox do next?"
    env1 = {**os.environ, "SPOOL_HOME": str(tmp_path / "one"), "TERM": "dumb"}
    whole = chat(env1, [q1, q2])
    env2 = {**os.environ, "SPOOL_HOME": str(tmp_path / "two"), "TERM": "dumb"}
    (a1, n1, r1, c1), = chat(env2, [q1], "--session", "c")
    assert (r1, c1) == (0, n1)
    (a2, n2, r2, c2), = chat(env2, [q2], "--session", "c")
    assert a1 == whole[0][0]
    assert (a2, n2, r2, c2) == whole[1], (whole, (a2, n2, r2, c2))
    assert r2 >= n1 - 1 and c2 == n2 - r2
