#!/usr/bin/env python3
"""Batch decode throughput (issue 8): aggregate decode tok/s of `spool batch` at several
--batch sizes on a generated bf16 model with weights streamed under a memory budget.

  python3 bench/batch/run.py --model bench/out/llama-3.1-8b-bf16.gguf --budget 4G \
      --batches 1,4,16,64 --max-tokens 4 [--spool build/bin/spool]

For each batch size B: B completion jobs (short distinct prompts, greedy, ignore_eos so
every job makes exactly --max-tokens tokens) run with `--batch B`. The figure is the
summary's "tok/s while decoding" = tokens decoded / seconds in decode steps (prefill
excluded; the first tokens of a job come from its prefill). Also reported: mean decode
batch (below B when jobs finish at different steps or wait for a slot), the time of steps
that only prefilled (all B prompts share the first step when they fit its row budget),
wall time.
Models come from tools/gen_synthetic_model.py (random weights: speed only).
Prints a Markdown table and writes JSON next to it (--json).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUMMARY = re.compile(r"(\d+) prompt tokens \(prefill-only steps ([\d.]+) s\), (\d+) generated tokens \(decode ([\d.]+) s\): "
                     r"([\d.]+) generated tok/s overall, ([\d.]+) tok/s while decoding; (\d+) decode steps, mean batch ([\d.]+)")


def run_one(spool, model, budget, b, max_tokens, threads, ctx):
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        with open(inp, "w") as f:
            for i in range(b):
                body = {"prompt": f"Job {i}: once upon a time", "max_tokens": max_tokens, "temperature": 0,
                        "ignore_eos": True}
                f.write(json.dumps({"custom_id": f"j{i}", "body": body}) + "\n")
        cmd = [spool, "batch", model, "--in", inp, "--out", out, "--batch", str(b), "--mem-budget", budget,
               "--ctx", str(ctx), "-q"]
        if threads:
            cmd += ["--threads", str(threads)]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
        m = SUMMARY.search(r.stderr)
        if not m:
            raise SystemExit(f"no summary in:\n{r.stderr}")
        errors = sum(1 for l in open(out) if json.loads(l)["error"] is not None)
        return dict(batch=b, command=" ".join(cmd), wall_s=round(wall, 1), prompt_tokens=int(m[1]),
                    prefill_s=float(m[2]), generated=int(m[3]), decode_s=float(m[4]), overall_tok_s=float(m[5]),
                    decode_tok_s=float(m[6]), decode_steps=int(m[7]), mean_batch=float(m[8]), errors=errors,
                    stderr=r.stderr.strip().splitlines()[-2:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, "build", "bin", "spool"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    rows = []
    for b in [int(x) for x in a.batches.split(",")]:
        row = run_one(a.spool, a.model, a.budget, b, a.max_tokens, a.threads, a.ctx)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    base = rows[0]["decode_tok_s"]
    info = dict(date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), kernel=platform.release(),
                cpus=os.cpu_count(), model=a.model, model_bytes=os.path.getsize(a.model), budget=a.budget)
    print(f"model {os.path.basename(a.model)} ({info['model_bytes'] / 1e9:.2f} GB), --mem-budget {a.budget}, "
          f"{info['cpus']} CPUs, {info['date']}\n")
    print("| --batch | decode tok/s | × batch 1 | mean decode batch | decode steps | s/step | prefill s | wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['decode_tok_s']:.2f} | {r['decode_tok_s'] / base:.1f}× | {r['mean_batch']:.1f} | "
              f"{r['decode_steps']} | {r['decode_s'] / max(r['decode_steps'], 1):.2f} | {r['prefill_s']:.1f} | {r['wall_s']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(info=info, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
