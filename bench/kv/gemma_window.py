#!/usr/bin/env python3
"""Sliding-window KV at a long context (issue 14): a Gemma-3-12B-shape model (5 sliding
layers of window 1024 : 1 global) beside the same weights with every layer global (a
dense model of the same size), at --ctx under --mem-budget: the session file, the KV
bytes on disk after decoding (measured: the engine's disk quota in use), the plan's KV
RAM and disk terms, peak RSS and decode tok/s.

  python3 bench/kv/gemma_window.py --models SLIDING_DIR,DENSE_DIR [--ctx 32768] [--budget 6G]
         [--window 2048] [--n 4] [--rounds 2] [--home /var/tmp/spool-gemma-bench]

The models come from tools/gen_synthetic_model.py --shape gemma-3-12b-l6 (6 of the 48
layers, real shapes, random bf16 weights); the dense twin shares the weights file and
sets layer_types to full_attention. The context is filled by make_session (random K/V
for ctx - 16 tokens, sliding layers holding only their window as a run would) instead
of a prefill; `spool run "" --session` restores it and decodes --n tokens. The models
run alternately, --rounds times; medians are printed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, "build/bin/spool"))
    ap.add_argument("--make-session", default=os.path.join(ROOT, "build/bench/kv/make_session"))
    ap.add_argument("--models", required=True)
    ap.add_argument("--ctx", type=int, default=32768)
    ap.add_argument("--budget", default="6G")
    ap.add_argument("--window", default="2048")
    ap.add_argument("--n", default="4")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--home", default="/var/tmp/spool-gemma-bench")
    a = ap.parse_args()
    env = dict(os.environ, SPOOL_HOME=a.home)
    models = a.models.split(",")
    res = {m: [] for m in models}
    plans, sessions = {}, {}
    for m in models:
        name = os.path.basename(m.rstrip("/"))
        if not os.path.exists(os.path.join(a.home, "sessions", name + ".session")):
            subprocess.run([a.make_session, m, name, str(a.ctx - 16)], env=env, check=True, capture_output=True)
            os.replace(os.path.join(a.home, "sessions", name + ".session"),
                       os.path.join(a.home, "sessions", name + ".orig.session"))
        sessions[m] = os.path.getsize(os.path.join(a.home, "sessions", name + ".orig.session"))
        p = subprocess.run([a.spool, "show", m, "--plan", "--json", "--ctx", str(a.ctx), "--mem-budget", a.budget,
                            "--kv-window", a.window], env=env, capture_output=True, text=True, check=True)
        plans[m] = json.loads(p.stdout)
        plans[m] = plans[m].get("plan", plans[m])
    for r in range(a.rounds):
        for m in models:
            name = os.path.basename(m.rstrip("/"))
            # The models have no tokenizer: one prompt id (fed after the pending token).
            cmd = [a.spool, "run", m, "--prompt-ids", "5", "--session", name, "--ctx", str(a.ctx), "-n", a.n, "--temp", "0",
                   "--ignore-eos", "--json", "--mem-budget", a.budget, "--kv-window", a.window]
            # Each run continues the session (and saves it): start from the original file.
            shutil.copyfile(os.path.join(a.home, "sessions", name + ".orig.session"),
                            os.path.join(a.home, "sessions", name + ".session"))
            t0 = time.time()
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.time() - t0
            if out.returncode != 0:
                print(f"{name}: failed: {out.stderr.strip()[-500:]}", flush=True)
                continue
            s = json.loads(out.stdout)["stats"]
            s["wall_s"] = wall
            res[m].append(s)
            print(f"round {r} {name}: {json.dumps({k: s[k] for k in ('peak_rss_bytes', 'kv_disk_bytes', 'decode_tokens_per_s', 'wall_s') if k in s})}", flush=True)
    print(f"\n--ctx {a.ctx}, --mem-budget {a.budget}, --kv-window {a.window}, -n {a.n}, {a.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| model | session file | KV on disk after decode (measured) | plan: KV RAM | plan: KV disk | "
          "peak RSS (median) | decode tok/s (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    G = 2 ** 30
    for m in models:
        rs = res[m]
        if not rs:
            continue
        med = lambda k: statistics.median(x[k] for x in rs)
        print(f"| {os.path.basename(m.rstrip('/'))} | {sessions[m] / G:.3f} GiB | {med('kv_disk_bytes') / G:.3f} GiB | "
              f"{plans[m].get('kv_bytes', 0) / G:.3f} GiB | {plans[m].get('kv_disk_bytes', 0) / G:.3f} GiB | "
              f"{med('peak_rss_bytes') / G:.2f} GiB | {med('decode_tokens_per_s'):.3f} |")
    shutil.rmtree(os.path.join(a.home, "kv"), ignore_errors=True)


if __name__ == "__main__":
    main()
