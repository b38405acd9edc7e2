#!/usr/bin/env python3
"""Long-context KV benchmark (issue 5): peak RSS and decode tok/s at several contexts
with a fixed --mem-budget, KV beyond the hot window on disk.

  python3 bench/kv/run.py [--spool build/bin/spool] [--make-session build/bench/kv/make_session]
                          [--model bench/out/llama-3.2-1b-bf16.gguf] [--contexts 1024,8192,32768,102400]
                          [--budget 2G] [--n 4] [--home /var/tmp/spool-kv-bench]

The context is filled by a synthetic session (make_session: random K/V for ctx - 16
tokens, the model's fingerprint) instead of a prefill, so that decode at 100K can be
measured on small machines; `spool run "" --session` then restores it (through the disk
KV path) and decodes --n tokens. Prints a Markdown table.

With --llamacpp, the same contexts are also opened in llama.cpp (llama-cpp-python, one
child process per context, f16 KV as llama.cpp defaults, weights mmap'ed): it allocates
and clears the whole KV buffer for n_ctx at load, so its peak RSS after evaluating a
short prompt and decoding --n tokens is what holding that context costs it. (Its decode
speed there is at a short filled context, so only RSS is compared.)
"""
import argparse
import json
import sys
import os
import shutil
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


LLAMACPP_CHILD = r"""
import json, resource, sys, time
import llama_cpp
raw = llama_cpp.llama_cpp
orig = raw.llama_model_default_params
def params():  # llama.cpp's AMX int8 repack path crashes on this CPU (tools/gen_llamacpp_refs.py)
    p = orig()
    p.use_extra_bufts = False
    return p
raw.llama_model_default_params = params
model, ctx, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_batch=64, n_threads=2, verbose=False)
llm.eval(list(range(100, 116)))
t0 = time.time()
for _ in range(n):
    llm.eval([int(llm.sample(temp=0))])
dt = time.time() - t0
print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "decode_tokens_per_s_short_ctx": n / dt}))
"""


def llamacpp_rss(model, ctx, n):
    r = subprocess.run([sys.executable, "-c", LLAMACPP_CHILD, model, str(ctx), str(n)], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1:] or [f"exit {r.returncode}"]
    return json.loads(r.stdout.strip().splitlines()[-1]), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, "build/bin/spool"))
    ap.add_argument("--make-session", default=os.path.join(ROOT, "build/bench/kv/make_session"))
    ap.add_argument("--model", default=os.path.join(ROOT, "bench/out/llama-3.2-1b-bf16.gguf"))
    ap.add_argument("--contexts", default="1024,8192,32768,102400")
    ap.add_argument("--budget", default="2G")
    ap.add_argument("--window", default="2048")
    ap.add_argument("--n", default="4")
    ap.add_argument("--home", default="/var/tmp/spool-kv-bench")
    ap.add_argument("--llamacpp", action="store_true", help="also measure llama.cpp's peak RSS at each context")
    a = ap.parse_args()
    env = dict(os.environ, SPOOL_HOME=a.home)
    rows = []
    for ctx in [int(c) for c in a.contexts.split(",")]:
        name = f"ctx{ctx}"
        t0 = time.time()
        subprocess.run([a.make_session, a.model, name, str(ctx - 16)], env=env, check=True, capture_output=True)
        made = time.time() - t0
        cmd = [a.spool, "run", a.model, "", "--session", name, "--ctx", str(ctx), "-n", a.n, "--temp", "0",
               "--ignore-eos", "--json", "--mem-budget", a.budget, "--kv-window", a.window]
        t0 = time.time()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode != 0:
            print(f"ctx {ctx}: failed: {r.stderr.strip()}")
            continue
        s = json.loads(r.stdout)["stats"]
        peer = None
        if a.llamacpp:
            peer, err = llamacpp_rss(a.model, ctx, int(a.n))
            print(f"ctx {ctx}: llama.cpp: {json.dumps(peer) if peer else err}", flush=True)
        rows.append((ctx, s, wall, made, peer))
        os.remove(os.path.join(a.home, "sessions", name + ".session"))
        print(f"ctx {ctx}: {json.dumps(s)}", flush=True)
    print(f"\nmodel {a.model}, --mem-budget {a.budget}, --kv-window {a.window}, -n {a.n}, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| context | peak RSS | llama.cpp peak RSS | decode tok/s | KV on disk | first token after restore | "
          "wall (load, restore, decode) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for ctx, s, wall, made, peer in rows:
        peer_rss = f"{peer['peak_rss_bytes'] / 2**30:.2f} GiB" if peer else "—"
        print(f"| {ctx} | {s['peak_rss_bytes'] / 2**30:.2f} GiB | {peer_rss} | {s['decode_tokens_per_s']:.3f} | "
              f"{s['kv_disk_bytes'] / 2**30:.2f} GiB | {s['time_to_first_token_s']:.1f} s | {wall:.0f} s |")
    shutil.rmtree(os.path.join(a.home, "kv"), ignore_errors=True)


if __name__ == "__main__":
    main()
