"""Reasoning output and tool calls through a live `spool serve`, seen by the `openai`
client (reasoning_content, tool_calls), Ollama's /api/chat (thinking) and the CLI.

The test model (SmolLM2-135M) cannot write Qwen3 or gpt-oss answers, so the server runs
with --debug-forced-output FILE: each request "samples" exactly the tokens of FILE's
text (encoded with the model's tokenizer) instead of what the sampler picks. Everything
after sampling is the production path: the scheduler's streaming decoder, the reasoning
splitter (chat/reasoning.h), response shaping and SSE/NDJSON framing.
Env: SPOOL_BIN (the binary), SPOOL_TEST_MODEL (default: the SmolLM2 GGUF).
"""
import json
import os
import subprocess
import urllib.request

import pytest

from server_util import MODEL, LiveServer, binary

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.skipif(not os.path.exists(MODEL), reason="test model missing (make model)")

MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"

QWEN3_TOOL = ("<think>\nThe user wants the weather in Paris. I will call get_weather.\n</think>\n\n"
              "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"unit\": \"celsius\"}}\n"
              "</tool_call>")
HARMONY = ("<|channel|>analysis<|message|>User asks for 2+2. Simple: 4.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.")
HARMONY_TOOL = ("<|channel|>analysis<|message|>Need the weather tool.<|end|>"
                "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
                "<|message|>{\"location\":\"Tokyo\"}")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}},
                                                          "required": ["location"]}}}]


def start(tmp_path_factory, name, text, fmt):
    path = tmp_path_factory.mktemp(name) / "out.txt"
    path.write_text(text)
    s = LiveServer("--ctx", "512", "--threads", "2", "--no-disk-sessions", "--reasoning-format", fmt,
                   "--debug-forced-output", str(path))
    s.wait_ready()
    return s


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    s = start(tmp_path_factory, "qwen", QWEN3_TOOL, "think")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def harmony(tmp_path_factory):
    s = start(tmp_path_factory, "harmony", HARMONY, "harmony")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def harmony_tool(tmp_path_factory):
    s = start(tmp_path_factory, "harmony_tool", HARMONY_TOOL, "harmony")
    yield s
    s.stop()


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def ask(server, stream=False, **kw):
    return client(server).chat.completions.create(model=MODEL_ID,
                                                  messages=[{"role": "user", "content": "Weather in Paris?"}],
                                                  max_tokens=200, stream=stream, **kw)


def collect(stream):
    """Joins streamed deltas as a client would: reasoning, content, tool calls, finish."""
    reasoning, content, calls, finish, chunks = "", "", {}, None, 0
    for chunk in stream:
        chunks += 1
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        reasoning += (d.model_extra or {}).get("reasoning_content") or ""
        content += d.content or ""
        for tc in d.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            c["id"] += tc.id or ""
            c["name"] += (tc.function.name or "") if tc.function else ""
            c["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    return reasoning, content, [calls[i] for i in sorted(calls)], finish, chunks


def test_openai_reasoning_and_tool_calls(qwen):
    r = ask(qwen, tools=TOOLS)
    m = r.choices[0].message
    assert m.model_extra["reasoning_content"] == "The user wants the weather in Paris. I will call get_weather."
    assert m.content is None
    assert r.choices[0].finish_reason == "tool_calls"
    assert len(m.tool_calls) == 1
    call = m.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris", "unit": "celsius"}


def test_openai_stream_matches_non_stream(qwen):
    reasoning, content, calls, finish, chunks = collect(ask(qwen, stream=True, tools=TOOLS))
    assert reasoning == "The user wants the weather in Paris. I will call get_weather."
    assert content == ""
    assert finish == "tool_calls"
    assert [c["name"] for c in calls] == ["get_weather"]
    assert json.loads(calls[0]["arguments"]) == {"location": "Paris", "unit": "celsius"}
    assert chunks > 3  # reasoning arrives in several deltas, not one at the end


def test_without_tools_the_call_stays_content(qwen):
    r = ask(qwen)
    m = r.choices[0].message
    assert m.model_extra["reasoning_content"].startswith("The user wants")
    assert m.content.startswith("<tool_call>") and m.content.endswith("</tool_call>")
    assert not m.tool_calls
    assert r.choices[0].finish_reason == "stop"


def test_per_request_reasoning_format_none(qwen):
    r = ask(qwen, extra_body={"reasoning_format": "none"})
    assert r.choices[0].message.content == QWEN3_TOOL
    assert "reasoning_content" not in (r.choices[0].message.model_extra or {})


def post(server, path, body):
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read().decode()


def test_ollama_thinking_and_tool_calls(qwen):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Weather?"}], "tools": TOOLS, "think": True}
    r = json.loads(post(qwen, "/api/chat", {**body, "stream": False}))
    assert r["message"]["thinking"] == "The user wants the weather in Paris. I will call get_weather."
    assert r["message"]["content"] == ""
    assert r["message"]["tool_calls"] == [{"function": {"name": "get_weather",
                                                        "arguments": {"location": "Paris", "unit": "celsius"}}}]
    lines = [json.loads(l) for l in post(qwen, "/api/chat", body).splitlines() if l.strip()]
    assert lines[-1]["done"] is True
    thinking = "".join(l["message"].get("thinking", "") for l in lines)
    calls = [c for l in lines for c in l["message"].get("tool_calls", [])]
    assert thinking == r["message"]["thinking"]
    assert calls == r["message"]["tool_calls"]


def test_harmony_final_answer(harmony):
    r = ask(harmony, extra_body={"reasoning_effort": "high"})
    m = r.choices[0].message
    assert m.model_extra["reasoning_content"] == "User asks for 2+2. Simple: 4."
    assert m.content == "2 + 2 = 4."
    assert r.choices[0].finish_reason == "stop"
    reasoning, content, calls, finish, _ = collect(ask(harmony, stream=True))
    assert (reasoning, content, calls, finish) == ("User asks for 2+2. Simple: 4.", "2 + 2 = 4.", [], "stop")


def test_harmony_tool_call(harmony_tool):
    r = ask(harmony_tool, tools=TOOLS)
    m = r.choices[0].message
    assert m.model_extra["reasoning_content"] == "Need the weather tool."
    assert r.choices[0].finish_reason == "tool_calls"
    assert m.tool_calls[0].function.name == "get_weather"
    assert json.loads(m.tool_calls[0].function.arguments) == {"location": "Tokyo"}
    reasoning, content, calls, finish, _ = collect(ask(harmony_tool, stream=True, tools=TOOLS))
    assert finish == "tool_calls" and calls[0]["name"] == "get_weather"


def run_cli(tmp_path, text, *args):
    path = tmp_path / "out.txt"
    path.write_text(text)
    r = subprocess.run([binary(), "run", MODEL, "--chat", "hi", "--ctx", "512", "--debug-forced-output", str(path), *args],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_cli_shows_and_hides_reasoning(tmp_path):
    text = "<think>\nPondering.\n</think>\n\nThe answer."
    out = run_cli(tmp_path, text, "--reasoning-format", "think")
    # Not a terminal: Ollama's markers instead of dimming.
    assert out == "Thinking...\nPondering.\n...done thinking.\n\nThe answer.\n"
    assert run_cli(tmp_path, text, "--reasoning-format", "think", "--hide-reasoning") == "The answer.\n"
    j = json.loads(run_cli(tmp_path, text, "--reasoning-format", "think", "--json"))
    assert (j["reasoning_content"], j["content"], j["reasoning_format"]) == ("Pondering.", "The answer.", "think")
    # SmolLM2's template has no <think>: auto decides none and prints the text as is.
    assert run_cli(tmp_path, text) == text + "\n"
    # --var reaches the template (an unused variable must not break it).
    assert run_cli(tmp_path, text, "--var", "reasoning_effort=high", "--hide-reasoning",
                   "--reasoning-format", "think") == "The answer.\n"


def test_cli_dims_reasoning_on_a_terminal(tmp_path):
    import pty
    path = tmp_path / "out.txt"
    path.write_text("<think>\nPondering.\n</think>\n\nThe answer.")
    master, slave = pty.openpty()
    p = subprocess.Popen([binary(), "run", MODEL, "--chat", "hi", "--ctx", "512", "--debug-forced-output", str(path),
                          "--reasoning-format", "think"], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    os.close(master)
    # Dimmed (SGR 2) reasoning, reset, a blank line, the answer (the pty turns \n into \r\n).
    assert out.replace(b"\r\n", b"\n") == b"\x1b[2mPondering.\x1b[0m\n\nThe answer.\n"
