"""`spool serve`'s prefix cache scope and its disk sessions, against a live server on
loopback: one user cannot see another's cached prompt; a conversation survives
`kill -TERM` and a restart (same greedy answer as an uninterrupted server, prefix not
recomputed); `kill -9` loses only what was not written yet and never a file; damaged
files are ignored; GET/DELETE /v1/sessions. Env: SPOOL_BIN, SPOOL_TEST_MODEL."""
import json
import os
import pathlib
import re
import signal
import time

import pytest

from server_util import MODEL, LiveServer

pytestmark = pytest.mark.skipif(not os.path.exists(MODEL), reason="test model missing (make model)")

# Small prefill chunks so that prompts of a few hundred tokens reuse most of their prefix
# (reuse is cut to whole chunks).
COMMON = ("--ctx", "1024", "--threads", "2", "--prefill-chunk", "16", "--parallel", "2")

SECRET = ("You are the vault assistant. The launch code is 7431-ALPHA-ZULU and must never be revealed. "
          "Background for the assistant: " + " ".join(f"Rule {i}: answer briefly and politely." for i in range(28)))


def start(tmp_path, *extra, env=None, dir_name="sessions"):
    s = LiveServer(*COMMON, "--session-dir", str(tmp_path / dir_name), *extra, env=env)
    s.wait_ready()
    return s


def auth(key):
    return {"Authorization": "Bearer " + key} if key else {}


def chat(server, messages, key=None, session=None, max_tokens=6):
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0}
    if session is not None:
        body["user"] = session
    status, r = server.request("POST", "/v1/chat/completions", body, headers=auth(key))
    assert status == 200, r
    return r["choices"][0]["message"]["content"], r["usage"]


def metric(server, name, key=None):
    _, text = server.request("GET", "/metrics", headers=auth(key))
    return float(re.search(r"^" + name + r" (\S+)$", text, re.M).group(1))


def terminate(server, sig=signal.SIGTERM):
    server.proc.send_signal(sig)
    code = server.proc.wait(timeout=60)
    time.sleep(0.2)  # let the drain thread read the last lines
    return code


def secret_messages(question="What is your job?"):
    return [{"role": "system", "content": SECRET}, {"role": "user", "content": question}]


# ---- issue 20.4: users are isolated ----

def test_other_users_do_not_see_a_cached_secret_prefix(tmp_path):
    s = start(tmp_path, "--api-key", "key-a", "--api-key", "key-b")
    try:
        first, u = chat(s, secret_messages(), key="key-a", session="alice")
        assert u["prompt_tokens"] > 300 and u["prompt_tokens_details"]["cached_tokens"] == 0
        # B guesses A's prompt exactly (even A's session name): nothing is reused, the
        # prefix is recomputed (the cached-token counter does not move).
        for key, session in [("key-b", "alice"), ("key-b", None), ("key-a", "mallory"), ("key-a", None)]:
            before = metric(s, "spool_prompt_tokens_cached_total", "key-a")
            text, u = chat(s, secret_messages(), key=key, session=session)
            assert u["prompt_tokens_details"]["cached_tokens"] == 0, (key, session)
            assert metric(s, "spool_prompt_tokens_cached_total", "key-a") == before
            assert text == first
        # The same user reuses it.
        text, u = chat(s, secret_messages(), key="key-a", session="alice")
        assert u["prompt_tokens_details"]["cached_tokens"] >= u["prompt_tokens"] - 32
        assert text == first
    finally:
        s.stop()


def test_shared_prefix_cache_is_an_explicit_opt_in(tmp_path):
    s = start(tmp_path, "--api-key", "key-a", "--api-key", "key-b", "--shared-prefix-cache")
    try:
        first, _ = chat(s, secret_messages(), key="key-a", session="alice")
        text, u = chat(s, secret_messages(), key="key-b", session="bob")
        assert u["prompt_tokens_details"]["cached_tokens"] >= u["prompt_tokens"] - 32
        assert text == first
    finally:
        s.stop()


# ---- issue 19.5: sessions that survive a restart ----

QUESTIONS = ["Hello! Who are you?", "Name three fruits.", "Which of them is red?", "Write one sentence about it."]


def converse(server, questions, session, key=None, messages=None):
    """Runs the turns; returns the messages so far and each turn's (answer, usage)."""
    messages = list(messages or [{"role": "system", "content": SECRET}])
    turns = []
    for q in questions:
        messages.append({"role": "user", "content": q})
        answer, usage = chat(server, messages, key=key, session=session, max_tokens=24)
        messages.append({"role": "assistant", "content": answer})
        turns.append((answer, usage))
    return messages, turns


def test_conversation_survives_sigterm_and_restart(tmp_path):
    # The uninterrupted server: all four turns in one process (no disk sessions).
    ref = start(tmp_path, "--no-disk-sessions", dir_name="unused")
    try:
        _, ref_turns = converse(ref, QUESTIONS, "conv")
    finally:
        ref.stop()

    s = start(tmp_path)
    try:
        messages, turns = converse(s, QUESTIONS[:3], "conv")
        assert [t[0] for t in turns] == [t[0] for t in ref_turns[:3]]
        assert turns[-1][1]["prompt_tokens"] > 300
    finally:
        assert terminate(s) == 0
    assert any("1 session files written" in l for l in s.stderr_lines), "".join(s.stderr_lines)

    s = start(tmp_path)
    try:
        messages.append({"role": "user", "content": QUESTIONS[3]})
        answer, usage = chat(s, messages, session="conv", max_tokens=24)
        assert answer == ref_turns[3][0]
        # The prefix came from the file: everything up to the last whole chunk before
        # the new turn's text.
        assert usage["prompt_tokens_details"]["cached_tokens"] >= turns[-1][1]["prompt_tokens"] - 16
        assert usage["prompt_tokens_details"]["cached_tokens"] == ref_turns[3][1]["prompt_tokens_details"]["cached_tokens"]
        assert metric(s, "spool_session_loads_total") == 1
        assert metric(s, "spool_session_errors_total") == 0
    finally:
        s.stop()


def session_files(tmp_path, dir_name="sessions"):
    """The folder's files but its lock file."""
    return sorted(p.name for p in (tmp_path / dir_name).iterdir() if p.name != ".lock")


def test_kill_9_loses_only_unwritten_sessions_and_never_a_file(tmp_path):
    keys = ("--api-key", "k")
    # v1 of session "a" reaches the disk at a clean shutdown.
    s = start(tmp_path, *keys)
    try:
        messages, _ = converse(s, QUESTIONS[:2], "a", key="k")
    finally:
        assert terminate(s) == 0
    (v1,) = session_files(tmp_path)

    # A second server starts "b" and extends "a", then dies by kill -9 in the middle of
    # writing them at shutdown: "a" (the most recent) is written first, and the save
    # pauses half way through its records (test hook), where the kill lands.
    s = start(tmp_path, *keys, env={"SPOOL_TEST_SESSION_SAVE_PAUSE_S": "30"})
    try:
        chat(s, secret_messages("Say hi."), key="k", session="b")
        more, turns = converse(s, QUESTIONS[2:3], "a", key="k", messages=messages)
        assert turns[0][1]["prompt_tokens_details"]["cached_tokens"] > 0
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 30
        while not any(".tmp." in n for n in session_files(tmp_path)) and time.time() < deadline:
            time.sleep(0.05)
        assert any(".tmp." in n for n in session_files(tmp_path))
    finally:
        s.proc.kill()
        s.proc.wait()

    # The restarted server: the half-written temporary is gone, "a" is v1 exactly
    # (resumed from it, same answer as a server that never stopped), "b" was never written.
    s = start(tmp_path, *keys)
    try:
        assert session_files(tmp_path) == [v1]
        status, listing = s.request("GET", "/v1/sessions", headers=auth("k"))
        assert status == 200 and [e["id"] for e in listing["data"]] == ["a"]
        answer, usage = chat(s, more[:-1], key="k", session="a", max_tokens=24)
        assert answer == turns[0][0]
        assert usage["prompt_tokens_details"]["cached_tokens"] > 0
        _, usage = chat(s, secret_messages("Say hi."), key="k", session="b")
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0
        assert metric(s, "spool_session_errors_total", "k") == 0
    finally:
        s.stop()


def test_damaged_session_files_are_ignored_with_a_log_line(tmp_path):
    s = start(tmp_path)
    try:
        first, _ = chat(s, secret_messages(), session="d")
    finally:
        assert terminate(s) == 0
    (name,) = session_files(tmp_path)
    path = tmp_path / "sessions" / name
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x40  # inside the last KV record: found by its checksum at load time
    path.write_bytes(bytes(data))
    (tmp_path / "sessions" / "junk.session").write_bytes(b"SPOOLSES" + os.urandom(200))
    (tmp_path / "sessions" / "empty.session").write_bytes(b"")

    s = start(tmp_path)
    try:
        text, usage = chat(s, secret_messages(), session="d")
        assert text == first
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0  # recomputed, not a wrong prefix
        assert metric(s, "spool_session_errors_total") == 1
        assert metric(s, "spool_session_loads_total") == 0
        assert s.proc.poll() is None
    finally:
        s.stop()
    log = "".join(s.stderr_lines)
    assert "ignoring damaged session file" in log and "junk.session" in log and "empty.session" in log
    assert "checksum mismatch" in log


def test_list_and_delete_sessions(tmp_path):
    s = start(tmp_path, "--api-key", "key-a", "--api-key", "key-b")
    evil = "../../../etc/passwd"
    try:
        chat(s, secret_messages("Say hi."), key="key-a", session="s1", max_tokens=4)
        chat(s, secret_messages("Say bye."), key="key-a", session=evil, max_tokens=4)
        status, listing = s.request("GET", "/v1/sessions", headers=auth("key-a"))
        assert status == 200 and listing["object"] == "list"
        by_id = {e["id"]: e for e in listing["data"]}
        assert set(by_id) == {"s1", evil}
        assert listing["data"][0]["id"] == evil  # most recently used first
        for e in by_id.values():
            assert e["object"] == "session" and e["tokens"] > 300 and e["in_memory"] and e["last_used"] > 0
        # Another key sees none of them and cannot delete them.
        assert s.request("GET", "/v1/sessions", headers=auth("key-b")) == (200, {"object": "list", "data": []})
        status, err = s.request("DELETE", "/v1/sessions/s1", headers=auth("key-b"))
        assert status == 404 and err["error"]["code"] == "session_not_found"
        assert s.request("DELETE", "/v1/sessions/s1")[0] == 401
        # The owner deletes them (the path-like id URL-encoded).
        status, r = s.request("DELETE", "/v1/sessions/s1", headers=auth("key-a"))
        assert status == 200 and r == {"id": "s1", "object": "session.deleted", "deleted": True}
        status, r = s.request("DELETE", "/v1/sessions/" + evil.replace("/", "%2F"), headers=auth("key-a"))
        assert status == 200 and r["id"] == evil
        assert s.request("GET", "/v1/sessions", headers=auth("key-a"))[1]["data"] == []
        _, usage = chat(s, secret_messages("Say hi."), key="key-a", session="s1", max_tokens=4)
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    finally:
        assert terminate(s) == 0
    # Only s1 (used again after the delete) was written, under a hashed name.
    names = session_files(tmp_path)
    assert len(names) == 1 and re.fullmatch(r"[0-9a-f]{40}\.session", names[0])
    assert not (tmp_path / "etc").exists()

    # Listing ids without API keys would show everyone's sessions: refused.
    s = start(tmp_path)
    try:
        status, err = s.request("GET", "/v1/sessions")
        assert status == 403 and "api-key" in err["error"]["message"]
        assert s.request("DELETE", "/v1/sessions/nope")[0] == 404
    finally:
        s.stop()


def test_disk_limit_evicts_least_recently_used_session_files(tmp_path):
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 dims x bf16, K and V: 23 KiB per token;
    # a ~330-token session is ~7.5 MiB, so a 20 MiB limit keeps two of them.
    s = start(tmp_path, "--api-key", "k", "--cache-entries", "1", "--session-max-disk", "20M")
    try:
        for name in ["s0", "s1", "s2", "s3"]:
            chat(s, secret_messages("Session " + name), key="k", session=name, max_tokens=4)
        status, listing = s.request("GET", "/v1/sessions", headers=auth("k"))
        assert status == 200
        state = {e["id"]: (e["in_memory"], e["on_disk"]) for e in listing["data"]}
        # s3 is in RAM; s0..s2 were evicted and written, and s0 (least recently used)
        # was then deleted to stay under 20 MiB.
        assert state == {"s3": (True, False), "s2": (False, True), "s1": (False, True)}
        total = sum(p.stat().st_size for p in (tmp_path / "sessions").iterdir())
        assert total <= 20 << 20
    finally:
        s.stop()


def test_second_server_on_the_default_folder_runs_without_disk_sessions(tmp_path):
    """Two servers of one user (the default folder, $SPOOL_HOME/server-sessions) both
    serve; the second says that its disk sessions are off. The same folder given
    explicitly to both is refused for the second."""
    env = {"SPOOL_HOME": str(tmp_path / "home")}
    first = LiveServer(*COMMON, env=env)
    try:
        first.wait_ready()
        second = LiveServer(*COMMON, env=env)
        try:
            second.wait_ready()
            chat(second, secret_messages("Say hi."), session="s", max_tokens=2)
            assert any("disk sessions are off" in line for line in second.stderr_lines)
        finally:
            assert terminate(second) == 0
        explicit = str(tmp_path / "home" / "server-sessions")
        third = LiveServer(*COMMON, "--session-dir", explicit, env=env)
        assert third.proc.wait(timeout=60) == 1
        time.sleep(0.2)
        assert any("another spool serve uses this --session-dir" in line for line in third.stderr_lines)
    finally:
        assert terminate(first) == 0
