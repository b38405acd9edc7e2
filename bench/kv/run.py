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
"""
import argparse
import json
import os
import shutil
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
        rows.append((ctx, s, wall, made))
        os.remove(os.path.join(a.home, "sessions", name + ".session"))
        print(f"ctx {ctx}: {json.dumps(s)}", flush=True)
    print(f"\nmodel {a.model}, --mem-budget {a.budget}, --kv-window {a.window}, -n {a.n}\n")
    print("| context | peak RSS | decode tok/s | KV on disk | first token after restore | wall (load, restore, decode) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for ctx, s, wall, made in rows:
        print(f"| {ctx} | {s['peak_rss_bytes'] / 2**30:.2f} GiB | {s['decode_tokens_per_s']:.3f} | "
              f"{s['kv_disk_bytes'] / 2**30:.2f} GiB | {s['time_to_first_token_s']:.1f} s | {wall:.0f} s |")
    shutil.rmtree(os.path.join(a.home, "kv"), ignore_errors=True)


if __name__ == "__main__":
    main()
