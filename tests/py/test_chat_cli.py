"""`spool chat` driven through a pseudo-terminal (pexpect).

The first answer is compared with `spool run --chat --temp 0` (same prompt, same
greedy decoding), so the REPL is checked against the one-shot path.
"""
import json
import os
import subprocess

import pytest

from server_util import MODEL, binary

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.skipif(not os.path.exists(MODEL), reason="test model missing (make model)")


def reference(prompt, n):
    r = subprocess.run([binary(), "run", MODEL, "--chat", prompt, "-n", str(n), "--temp", "0", "--json"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)["text"]


def start(tmp_path, *args):
    env = {**os.environ, "SPOOL_HOME": str(tmp_path / "home"), "TERM": "dumb"}
    child = pexpect.spawn(binary(), ["chat", MODEL, "--temp", "0", "--threads", "2", *args], env=env,
                          encoding="utf-8", timeout=60, dimensions=(50, 400))
    child.expect("/bye to leave")
    child.expect_exact(">>> ")
    return child


def ask(child, text):
    child.sendline(text)
    child.expect_exact(">>> ")
    out = child.before.replace("\r\n", "\n")
    # Drop the echoed input line.
    return out.split("\n", 1)[1] if "\n" in out else out


def test_chat_session(tmp_path):
    child = start(tmp_path, "-n", "12")
    answer = ask(child, "What is the capital of France?")
    assert answer.strip() == reference("What is the capital of France?", 12).strip()

    # Settings and commands.
    assert "Set temperature to 0.5." in ask(child, "/set temperature 0.5")
    assert "unknown parameter" in ask(child, "/set bogus 1")
    assert '"temperature":0.5' in ask(child, "/show")
    ask(child, "/set temperature 0")

    save = tmp_path / "conv.json"
    assert "Saved" in ask(child, f"/save {save}")
    saved = json.loads(save.read_text())
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]

    # Multi-line input.
    child.sendline('"""Say hello')
    child.expect_exact("... ")
    child.sendline('in French."""')
    child.expect_exact(">>> ")
    assert "Cleared" in ask(child, "/clear")
    assert "Loaded 2 messages" in ask(child, f"/load {save}")
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "home" / "history").exists()


def test_ctrl_c_stops_the_answer_not_the_chat(tmp_path):
    child = start(tmp_path, "-n", "2000")
    child.sendline("Write a very long story about a dragon.")
    child.expect_exact("dragon.\r\n")  # the echoed input
    child.expect(r"\w+ \w+ \w+")  # some of the answer has streamed
    child.sendintr()
    child.expect_exact(">>> ", timeout=30)
    assert child.isalive()
    answer = ask(child, "/show")
    assert "num_predict" in answer
    child.sendline("/bye")
    child.expect(pexpect.EOF)


def test_chat_session_survives_a_restart(tmp_path):
    """--session NAME: a conversation continued in a new process gives exactly the answer
    of one uninterrupted chat, from the restored KV cache (greedy)."""
    q1, q2 = "What is the capital of France?", "And of Italy?"
    child = start(tmp_path, "-n", "12")
    a1, a2 = ask(child, q1), ask(child, q2)
    child.sendline("/bye")
    child.expect(pexpect.EOF)

    child = start(tmp_path, "-n", "12", "--session", "trip")
    assert ask(child, q1) == a1
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    assert (tmp_path / "home" / "sessions" / "trip.session").exists()

    env = {**os.environ, "SPOOL_HOME": str(tmp_path / "home"), "TERM": "dumb"}
    child = pexpect.spawn(binary(), ["chat", MODEL, "--temp", "0", "--threads", "2", "-n", "12", "--session", "trip"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(50, 400))
    child.expect(r"Resumed session trip: 2 messages, (\d+) tokens cached\.")
    assert int(child.match.group(1)) > 20
    child.expect_exact(">>> ")
    assert ask(child, q2) == a2
    child.sendline("/bye")
    child.expect(pexpect.EOF)


def test_chat_refuses_a_session_made_by_run(tmp_path):
    env = {**os.environ, "SPOOL_HOME": str(tmp_path / "home")}
    r = subprocess.run([binary(), "run", MODEL, "Once upon a time", "-n", "2", "--temp", "0", "--session", "story"],
                       env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    r = subprocess.run([binary(), "chat", MODEL, "--session", "story"], env=env, capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert b"not a chat session" in r.stderr
    # A damaged session file: a clear error naming it, and the file is left alone.
    bad = tmp_path / "home" / "sessions" / "bad.session"
    bad.write_bytes(b"SPOOLSES" + b"\0" * 40)
    r = subprocess.run([binary(), "chat", MODEL, "--session", "bad"], env=env, capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert b"bad.session" in r.stderr
    assert bad.read_bytes() == b"SPOOLSES" + b"\0" * 40

