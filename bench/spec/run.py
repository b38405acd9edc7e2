#!/usr/bin/env python3
"""Speculative decoding benchmarks (issue 16; docs/benchmarks.md "Speculative decoding").

  python3 bench/spec/run.py rank                      # top-W miss rates of the self-drafts
  python3 bench/spec/run.py replay --model M --budget 4G --tokens 16 --reps 2 \
      --configs 1:1:0.2,1:8:0.2,4:8:0.1,8:8:0.05     # tokens per pass and tok/s at an acceptance
  python3 bench/spec/run.py batch                     # spool batch, lookup trees vs none, real text

rank: stories260K f32 greedy-decodes 100 tokens; its Q8_0 / Q4_0 self-drafts see the
same tokens and the share of positions where the target's token is not among the
draft's top W (W = 1, 2, 4, 8) is printed (build/bench/spec/spec_bench rank).

replay: spec_bench replay — plain greedy decoding, then for each W:D:MISS a replay
drafter (bench-only: it knows the plain run's ids; a level of W candidates holds the
true token with probability 1 - MISS) under the same engine, in the same process, plain
first in every repetition. Output: one JSON line per run (tokens per pass, decode tok/s,
same_ids). MISS comes from `rank` (W = 1: the top-1 miss; W = 4, 8: the top-W miss).

batch: `spool batch` on SmolLM2-135M with extraction jobs over real text (sections of
the GPL-3.0 and Apache-2.0 texts in /usr/share/common-licenses: "quote the sentence that
..."), greedy, each job run without speculation and with prompt lookup (chain, tree of
16), alternating, --reps times; prints the batch summary's tok/s while decoding.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
STORIES = ROOT.parent / "shared" / "data" / "models" / "stories260K.gguf"
SMOL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
BENCH = ROOT / "build" / "bench" / "spec" / "spec_bench"
SPOOL = ROOT / "build" / "bin" / "spool"


def rank(a):
    env = dict(os.environ, SPOOL_HOME=tempfile.mkdtemp(prefix="spool-spec-rank-"))
    for draft in ["self", "self:q4_0"]:
        r = subprocess.run([str(BENCH), "rank", str(STORIES), draft, "Once upon a time, there was a little girl named Lily.",
                            str(a.tokens)], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(r.stderr)
        print(r.stdout.strip())


def replay(a):
    cmd = [str(BENCH), "replay", a.model, a.budget, str(a.tokens), str(a.reps), a.configs]
    print("#", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, text=True, stdout=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(r.returncode)
    print(r.stdout, end="")


SUMMARY = re.compile(r"([\d.]+) generated tok/s overall, ([\d.]+) tok/s while decoding; (\d+) decode steps")


def extraction_jobs(n):
    texts = []
    for name in ["GPL-3", "Apache-2.0"]:
        path = pathlib.Path("/usr/share/common-licenses") / name
        paras = [p.strip() for p in path.read_text().split("\n\n") if 400 < len(p.strip()) < 1500]
        texts += paras
    jobs = []
    for i in range(n):
        para = " ".join(texts[i % len(texts)].split())
        q = ("Read the text and quote, word for word, its first two sentences.\n\n" + para)
        jobs.append({"custom_id": f"j{i}", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"messages": [{"role": "user", "content": q}], "max_tokens": 64, "temperature": 0}})
    return jobs


def batch(a):
    jobs = extraction_jobs(a.jobs)
    variants = [("none", False), ("lookup chain", {"lookup": True}), ("lookup tree 16", {"lookup": True, "draft_tree": 16})]
    texts = {}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(a.reps):
            for name, spec in variants:
                inp, out = os.path.join(d, "in.jsonl"), os.path.join(d, f"out-{rep}-{len(texts)}.jsonl")
                if os.path.exists(out):
                    os.remove(out)  # spool batch resumes from an existing output file
                with open(inp, "w") as f:
                    for j in jobs:
                        f.write(json.dumps({**j, "body": {**j["body"], "speculative": spec}}) + "\n")
                cmd = [str(SPOOL), "batch", str(SMOL), "--in", inp, "--out", out, "--batch", str(a.batch),
                       "--threads", "2", "--kv-window", "0"]
                t0 = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.time() - t0
                if r.returncode != 0:
                    sys.exit(r.stderr)
                m = SUMMARY.search(r.stderr)
                spec_line = [l for l in r.stderr.splitlines() if "speculative:" in l]
                recs = sorted((json.loads(l) for l in open(out)), key=lambda x: x["custom_id"])
                t = [x["response"]["body"]["choices"][0]["message"]["content"] for x in recs]
                texts.setdefault(name, t)
                print(json.dumps({"rep": rep, "variant": name, "jobs": len(jobs), "batch": a.batch,
                                  "overall_tok_s": float(m[1]) if m else None,
                                  "decode_tok_s": float(m[2]) if m else None, "decode_steps": int(m[3]) if m else None,
                                  "wall_s": round(wall, 2), "same_text_as_none": t == texts["none"],
                                  "spec": spec_line[0].split("speculative:")[1].strip() if spec_line else ""}),
                      flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rank")
    r.add_argument("--tokens", type=int, default=100)
    p = sub.add_parser("replay")
    p.add_argument("--model", default="/work/bench-files/llama-3.1-8b-bf16.gguf")
    p.add_argument("--budget", default="4G")
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--configs", required=True)
    b = sub.add_parser("batch")
    b.add_argument("--jobs", type=int, default=8)
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    {"rank": rank, "replay": replay, "batch": batch}[a.cmd](a)


if __name__ == "__main__":
    main()
