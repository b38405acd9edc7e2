"""The official `openai` Python client (and plain HTTP) against a live `spool serve`.

Reference outputs come from `spool run --chat --temp 0` (the single-sequence
generate loop), so the server's batched scheduler is checked against an independent
code path. Env: SPOOL_BIN (the binary), SPOOL_TEST_MODEL (default: the SmolLM2 GGUF).
"""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from server_util import MODEL, LiveServer, binary

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.skipif(not os.path.exists(MODEL), reason="test model missing (make model)")

MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture(scope="module")
def server():
    # A small prefill chunk so that the short test prompts reuse cached prefixes
    # (reuse is cut to whole chunks); the reference runs use the same chunking.
    # No disk sessions: the `session` fields below must not leave files in $SPOOL_HOME
    # (test_server_sessions.py covers them).
    s = LiveServer("--parallel", "8", "--ctx", "1024", "--max-body", "64K", "--threads", "2", "--prefill-chunk", "16",
                   "--no-disk-sessions")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def run_reference(prompt, n):
    """Greedy text from `spool run --chat` (the single-sequence generate loop)."""
    r = subprocess.run([binary(), "run", MODEL, "--chat", prompt, "-n", str(n), "--temp", "0", "--json", "--ctx", "1024",
                        "--prefill-chunk", "16"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def chat(client, prompt, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 8)
    return client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": prompt}], **kw)


def test_health_and_models(server, client):
    assert server.request("GET", "/health") == (200, {"status": "ok"})
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_ID]
    assert client.models.retrieve(MODEL_ID).id == MODEL_ID


def test_chat_matches_run_and_reports_usage(client):
    prompt = "What is the capital of France?"
    ref = run_reference(prompt, 8)
    r = chat(client, prompt)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL_ID
    assert r.system_fingerprint and r.created > 0
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ref["text"]
    assert choice.finish_reason == ("length" if ref["stats"]["finish_reason"] == "length" else "stop")
    assert r.usage.prompt_tokens == ref["stats"]["prompt_tokens"]
    assert r.usage.completion_tokens == len(ref["ids"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_chunks_as_openai_sends_them(client):
    prompt = "Name three colours."
    whole = chat(client, prompt, max_tokens=10).choices[0].message.content
    chunks = list(chat(client, prompt, max_tokens=10, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and final[0].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_completions_stream_and_not(client):
    kw = dict(model=MODEL_ID, prompt="The quick brown fox", max_tokens=8, temperature=0)
    r = client.completions.create(**kw)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].text and r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length"
    streamed = list(client.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text
    assert streamed[-1].choices[0].finish_reason == "length"


def test_stop_sequences(client):
    prompt = "Count from one to ten in words, separated by commas."
    full = chat(client, prompt, max_tokens=24).choices[0].message.content
    assert len(full) >= 8, full
    stop = full[len(full) // 2:len(full) // 2 + 3]  # a stop string from the middle of the text
    cut = full[:full.index(stop)]
    r = chat(client, prompt, max_tokens=24, stop=[stop, "never-appears"])
    assert r.choices[0].message.content == cut
    assert r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in chat(client, prompt, max_tokens=24, stop=stop, stream=True)
                       if c.choices)
    assert streamed == cut


def test_seed_determinism(client):
    kw = dict(temperature=1.0, top_p=1.0, max_tokens=12, seed=1234)
    a = chat(client, "Write a short poem about the sea.", **kw).choices[0].message.content
    b = chat(client, "Write a short poem about the sea.", **kw).choices[0].message.content
    assert a == b


def test_error_objects(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", max_tokens=-5)
    assert e.value.param == "max_tokens" and "-5" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hello " * 1500)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", max_tokens=5000)
    assert e.value.code == "context_length_exceeded"
    # The server is still fine.
    assert chat(client, "hi", max_tokens=2).usage.completion_tokens >= 1


@pytest.mark.parametrize("raw,param", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"messages": "hi"}).encode(), "messages"),
    (json.dumps({"messages": []}).encode(), "messages"),
    (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), "messages[0].content"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}).encode(), "temperature"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}).encode(), "temperature"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5}).encode(), "max_tokens"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "stop": [1]}).encode(), "stop[0]"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 3}).encode(), "n"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}).encode(), "stream"),
])
def test_bad_requests_get_400_with_the_field(server, raw, param):
    status, body = server.request("POST", "/v1/chat/completions", raw=raw)
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
    assert body["error"]["param"] == param
    status, body = server.request("POST", "/v1/chat/completions",
                                  {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    assert status == 200, body


def test_huge_body_and_unknown_routes(server):
    status, body = server.request("POST", "/v1/chat/completions", raw=b'{"messages": "' + b"x" * 200_000 + b'"}')
    assert status == 400 and body["error"]["code"] == "request_too_large"
    status, body = server.request("POST", "/v1/completions", {"prompt": [5, 999999]})
    assert status == 400 and body["error"]["param"] == "prompt"
    status, body = server.request("GET", "/v1/nothing")
    assert status == 404 and "Unknown request URL" in body["error"]["message"]
    assert server.request("POST", "/v1/completions", {"prompt": "a", "max_tokens": 1})[0] == 200


def test_concurrent_streams_match_solo_runs(client):
    prompts = [f"Tell me one fact about the number {i}." for i in range(8)]

    def stream(p):
        return "".join(c.choices[0].delta.content or ""
                       for c in chat(client, p, max_tokens=12, stream=True, extra_body={"cache_prompt": False})
                       if c.choices)

    alone = [stream(p) for p in prompts]
    results = [None] * len(prompts)

    def worker(i):
        results[i] = stream(prompts[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == alone


def test_prefix_reuse_gives_the_same_text(server, client):
    prompt = "Explain why the sky is blue in one sentence."
    first = chat(client, prompt, max_tokens=10, extra_body={"session": "s1"})
    again = chat(client, prompt, max_tokens=10, extra_body={"session": "s1"})
    assert again.usage.prompt_tokens_details.cached_tokens > 0
    assert again.choices[0].message.content == first.choices[0].message.content


def cancelled_count(server):
    _, text = server.request("GET", "/metrics")
    line = [l for l in text.splitlines() if l.startswith("spool_generations_cancelled_total ")]
    return float(line[0].split()[1])


def open_completion(server, stream):
    """A raw socket that has sent one long completion request (900 tokens)."""
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 900, "ignore_eos": True, "stream": stream}).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return s


def wait_cancelled(server, before, seconds=20):
    """Seconds until the cancelled counter passes `before` (fails after `seconds`)."""
    t0 = time.time()
    while cancelled_count(server) == before and time.time() < t0 + seconds:
        time.sleep(0.1)
    assert cancelled_count(server) == before + 1
    return time.time() - t0


def test_disconnect_cancels(server):
    before = cancelled_count(server)
    s = open_completion(server, stream=True)
    got, t0 = b"", time.time()
    while b"data:" not in got and time.time() < t0 + 30:  # headers and chunks may come in separate reads
        got += s.recv(4096)
    assert b"data:" in got
    s.close()
    wait_cancelled(server, before)


def test_disconnect_cancels_non_streaming(server):
    # A non-streaming client gets no bytes until the end, so only the transport's
    # connection check (http::Request::is_connection_closed) can tell that it left.
    before = cancelled_count(server)
    s = open_completion(server, stream=False)
    time.sleep(1.0)
    s.close()
    # Noticed within the 250 ms polling interval, far before 900 tokens are done.
    assert wait_cancelled(server, before) < 5
    # And the server still answers.
    status, health = server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok"


def test_ollama_endpoints(server):
    status, tags = server.request("GET", "/api/tags")
    assert status == 200 and tags["models"][0]["name"] == MODEL_ID
    status, r = server.request("POST", "/api/chat", {"model": MODEL_ID, "stream": False,
                                                     "messages": [{"role": "user", "content": "What is the capital of France?"}],
                                                     "options": {"temperature": 0, "num_predict": 8, "repeat_penalty": 1}})
    assert status == 200 and r["done"] is True and r["eval_count"] == 8
    assert r["message"]["content"] == run_reference("What is the capital of France?", 8)["text"]
    status, text = server.request("POST", "/api/generate", {"model": MODEL_ID, "prompt": "What is the capital of France?",
                                                            "options": {"temperature": 0, "num_predict": 8, "repeat_penalty": 1}})
    lines = [json.loads(l) for l in text.strip().split("\n")]
    assert lines[-1]["done"] is True and all(not l["done"] for l in lines[:-1])
    assert "".join(l["response"] for l in lines) == r["message"]["content"]
    status, ps = server.request("GET", "/api/ps")
    assert status == 200 and ps["models"][0]["name"] == MODEL_ID
    status, err = server.request("POST", "/api/chat", {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert status == 404 and "nope" in err["error"]


def test_tokenize_detokenize_template_metrics(server):
    status, t = server.request("POST", "/tokenize", {"content": "Hello world"})
    assert status == 200 and len(t["tokens"]) == 2
    status, d = server.request("POST", "/detokenize", {"tokens": t["tokens"]})
    assert status == 200 and d["content"] == "Hello world"
    assert server.request("POST", "/detokenize", {"tokens": [-1]})[0] == 400
    status, p = server.request("POST", "/apply-template", {"messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200 and p["prompt"].endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    status, text = server.request("GET", "/metrics")
    assert status == 200 and "spool_generated_tokens_total" in text and 'path="/tokenize",status="200"' in text


def test_api_key():
    s = LiveServer("--api-key", "sekrit", "--threads", "2")
    try:
        s.wait_ready()
        status, body = s.request("GET", "/v1/models")
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="sekrit", max_retries=0)
        assert c.models.list().data[0].id == MODEL_ID
    finally:
        s.stop()
