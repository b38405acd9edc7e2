#!/usr/bin/env python3
"""Second-turn latency of a chat on a hybrid (Gated DeltaNet + attention) model (issue 15):
spool serve (its prefix cache) vs llama.cpp's server (llama-cpp-python's llama_cpp.server),
the same GGUF, the same two OpenAI chat requests. Run under /work/bin/bench-run:

  python3 bench/qwen3next/chat_turn2.py --model M.gguf [--spool build/bin/spool] [--runs 3]
      [--user-tokens 4000] [--answer-tokens 16] [--threads 2] [--out DIR]

Turn 1: one user message of --user-tokens tokens (deterministic English-like words, sized
with the model's own tokenizer through llama-cpp-python's vocab-only load), max_tokens
--answer-tokens, temperature 0. Turn 2: turn 1's message, an assistant answer and a short follow-up
question. The answer is a fixed sentence (ANSWER), the same for both servers, so that both
get byte-identical requests (random weights' replies differ between the engines in how they
detokenise unused [PAD] tokens; each server's own turn-1 reply is recorded). Both streamed (SSE); time to first token (TTFT) = from sending
the request to the first chunk with non-empty delta content.

Prompt tokens recomputed in turn 2:
  spool: usage.prompt_tokens − usage.prompt_tokens_details.cached_tokens (the reply's own
    accounting, stream_options.include_usage);
  llama.cpp: its server's stderr (verbose): llama-cpp-python's "Llama.generate: N
    prefix-match ..." line and llama.cpp's "prompt eval time = ... / N tokens".

Each run starts a fresh server (page cache dropped first when root), sends turn 1 then turn 2,
and stops it; servers alternate (spool, llama.cpp, spool, ...). Writes DIR/chat-turn2.json
and the servers' logs, prints a Markdown table.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

WORDS = ("the model reads weights from the disk while the cache keeps recent experts in memory and each layer "
         "routes every token to a few of them so that most of the network stays idle for any given step of "
         "decoding which is why a small budget can still run a very large mixture of experts at useful speed "
         "provided that the reads overlap with the arithmetic and the state of the recurrent layers survives "
         "between turns of a conversation").split()
ANSWER = ("The text says that a large mixture of experts can run under a small memory budget when the "
          "reads of the experts overlap with the arithmetic and the cache keeps the recent ones.")
FOLLOW_UP = "Thank you. Now answer in one short sentence: what was the main point?"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def user_text(model, n_tokens):
    """Deterministic text of n_tokens tokens (± a word) in the model's tokenizer."""
    import llama_cpp
    vocab = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    x, words = 12345, []
    while True:
        for _ in range(64):
            x = (x * 1103515245 + 12345) % (1 << 31)
            words.append(WORDS[x % len(WORDS)])
        text = " ".join(words)
        n = len(vocab.tokenize(text.encode(), add_bos=False, special=False))
        if n >= n_tokens:
            while n > n_tokens:
                words.pop()
                text = " ".join(words)
                n = len(vocab.tokenize(text.encode(), add_bos=False, special=False))
            return text, n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port, proc, timeout=600):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return time.time() - t
        except Exception:
            time.sleep(0.5)
    raise RuntimeError("server did not come up")


def chat(port, messages, max_tokens):
    """One streamed chat request: (ttft_s, total_s, text, usage)."""
    body = json.dumps({"model": "m", "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    t0 = time.time()
    ttft, text, usage = None, "", None
    with urllib.request.urlopen(req, timeout=3600) as r:
        for raw in r:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            j = json.loads(data)
            if j.get("usage"):
                usage = j["usage"]
            for c in j.get("choices") or []:
                piece = (c.get("delta") or {}).get("content") or ""
                if piece and ttft is None:
                    ttft = time.time() - t0
                text += piece
    return ttft, time.time() - t0, text, usage


def drop_caches():
    if os.geteuid() == 0:
        subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=False)


def start(kind, a, port, logf):
    if kind == "spool":
        cmd = [a.spool, "serve", a.model, "--port", str(port), "-t", str(a.threads), "--ctx", str(a.ctx),
               "--mem-budget", a.spool_budget, "--no-disk-sessions", "--log-requests", "--alias", "m"]
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", a.model, "--port", str(port), "--host",
               "127.0.0.1", "--n_ctx", str(a.ctx), "--n_threads", str(a.threads), "--n_threads_batch",
               str(a.threads), "--n_batch", "512", "--verbose", "true", "--model_alias", "m"]
    return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True), cmd


def llama_recomputed(log_text):
    """Prompt tokens llama.cpp evaluated for its last request, from its verbose log."""
    evals = re.findall(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", log_text)
    notes = re.findall(r"Llama\.generate: [^\n]*", log_text)
    return (int(evals[-1][1]) if evals else None), (float(evals[-1][0]) if evals else None), notes


def one_run(kind, a, text, i):
    port = free_port()
    log_path = os.path.join(a.out, f"{kind}-run{i}.log")
    drop_caches()
    with open(log_path, "w") as logf:
        proc, cmd = start(kind, a, port, logf)
        try:
            ready_s = wait_ready(port, proc)
            m1 = [{"role": "user", "content": text}]
            t1 = chat(port, m1, a.answer_tokens)
            time.sleep(0.5)
            log1 = open(log_path).read()
            m2 = m1 + [{"role": "assistant", "content": ANSWER}, {"role": "user", "content": FOLLOW_UP}]
            t2 = chat(port, m2, a.answer_tokens)
            time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    full = open(log_path).read()
    r = dict(cmd=" ".join(cmd), ready_s=ready_s,
             turn1=dict(ttft_s=t1[0], total_s=t1[1], answer=t1[2], usage=t1[3]),
             turn2=dict(ttft_s=t2[0], total_s=t2[1], answer=t2[2], usage=t2[3]))
    for turn, u in (("turn1", t1[3]), ("turn2", t2[3])):
        if kind == "spool" and u:
            cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            r[turn]["prompt_tokens"] = u.get("prompt_tokens")
            r[turn]["recomputed"] = u.get("prompt_tokens", 0) - cached
    if kind == "llama.cpp":
        n1, ms1, notes1 = llama_recomputed(log1)
        n2, ms2, notes2 = llama_recomputed(full[len(log1):])
        r["turn1"].update(recomputed=n1, prompt_eval_ms=ms1, prompt_tokens=(t1[3] or {}).get("prompt_tokens"))
        r["turn2"].update(recomputed=n2, prompt_eval_ms=ms2, notes=notes2,
                          prompt_tokens=(t2[3] or {}).get("prompt_tokens"))
    log(f"{kind} run {i}: turn 1 TTFT {t1[0]:.2f} s, turn 2 TTFT {t2[0]:.2f} s, "
        f"turn 2 recomputed {r['turn2'].get('recomputed')} of {r['turn2'].get('prompt_tokens')}")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--spool", default=os.path.join(ROOT, "build", "bin", "spool"))
    ap.add_argument("--spool-budget", default="8G", help="spool serve --mem-budget (default: the model resident)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--user-tokens", type=int, default=4000)
    ap.add_argument("--answer-tokens", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--engines", default="spool,llama.cpp")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "qwen3next-chat"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    text, n = user_text(a.model, a.user_tokens)
    log(f"user message: {n} tokens, {len(text)} characters")
    load = open("/proc/loadavg").read().split()[:3]
    res = dict(args=vars(a), user_tokens=n, answer=ANSWER, follow_up=FOLLOW_UP, loadavg_before=load,
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), runs={})
    out_json = os.path.join(a.out, "chat-turn2.json")
    for i in range(a.runs):
        for kind in a.engines.split(","):
            res["runs"].setdefault(kind, []).append(one_run(kind, a, text, i))
            json.dump(res, open(out_json, "w"), indent=1)
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    json.dump(res, open(out_json, "w"), indent=1)
    print(report(res))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def report(res):
    lines = ["| server | turn 1 prompt tokens | turn 1 TTFT s (runs) | turn 2 prompt tokens | turn 2 recomputed "
             "| turn 2 TTFT s (runs) |", "|---|---|---|---|---|---|"]
    for kind, rs in res["runs"].items():
        t1 = [r["turn1"]["ttft_s"] for r in rs]
        t2 = [r["turn2"]["ttft_s"] for r in rs]
        lines.append(f"| {kind} | {rs[0]['turn1'].get('prompt_tokens')} | {med(t1):.2f} "
                     f"({', '.join(f'{x:.2f}' for x in t1)}) | {rs[0]['turn2'].get('prompt_tokens')} | "
                     f"{', '.join(str(r['turn2'].get('recomputed')) for r in rs)} | **{med(t2):.2f}** "
                     f"({', '.join(f'{x:.2f}' for x in t2)}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
