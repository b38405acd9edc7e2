#!/usr/bin/env python3
"""Prefill benchmark (issue 18): prompt tok/s of spool vs llama.cpp (llama-cpp-python,
flash attention on) on the same GGUF, same thread count, same random prompt ids, the two
engines alternating, medians.

  python3 bench/prefill/run.py [--reps 3] [--threads 2] [--chunk 512] [--spool-base BIN] --lengths 512,4096 MODEL.gguf...

--spool-base BIN adds another spool binary (e.g. main's build) to the alternation, so that a
change is measured against its baseline in the same run.

spool: `spool run --prompt-ids ... -n 1 --prefill-chunk CHUNK --json` (its prefill_tokens_per_s,
weights resident). llama.cpp: Llama(n_batch = n_ubatch = CHUNK, flash_attn=True,
use_extra_bufts=False — its AMX int8 repack path crashes on some CPUs, see
tools/gen_llamacpp_refs.py), the time of one eval() of the prompt.
Prints one markdown row per (model, length); raw runs go to stderr.
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPOOL = os.path.join(ROOT, "build", "bin", "spool")


def spool_prefill(model, ids, threads, chunk, spool=SPOOL):
    with tempfile.NamedTemporaryFile("w", suffix=".ids") as f:  # 32K ids exceed one argument's 128 KiB
        f.write(",".join(map(str, ids)))
        f.flush()
        cmd = [spool, "run", model, "--prompt-ids", "@" + f.name, "-n", "1", "--temp", "0", "--ignore-eos",
               "--threads", str(threads), "--ctx", str(len(ids) + 16), "--json", "--prefill-chunk", str(chunk)]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return out["stats"]["prefill_tokens_per_s"]


def llama_prefill(llm, ids):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    return len(ids) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--lengths", default="512,4096")
    ap.add_argument("--spool-base", default=None, help="a second spool binary, alternated with the others")
    ap.add_argument("--only", choices=["spool", "llama.cpp"], default=None,
                    help="run one engine only (long prompts: each engine in its own bench-run call, so that a "
                         "shared benchmark lock is not held for the pair); the other's columns print '-'")
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]

    import llama_cpp
    raw = llama_cpp.llama_cpp
    orig = raw.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    raw.llama_model_default_params = params
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, {a.threads} threads",
          file=sys.stderr)
    base = a.spool_base
    print("| model | prompt tokens | spool tok/s | llama.cpp (FA on) tok/s | ratio | runs |"
          + (" spool-base tok/s | spool / spool-base |" if base else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if base else ""))
    for model in a.models:
        for n in lengths:
            run_spool, run_llama = a.only in (None, "spool"), a.only in (None, "llama.cpp")
            llm = llama_cpp.Llama(model_path=model, n_ctx=n + 16, n_batch=a.chunk, n_ubatch=a.chunk,
                                  n_threads=a.threads, n_threads_batch=a.threads, flash_attn=True, verbose=False,
                                  vocab_only=not run_llama)
            rng = random.Random(n)  # the same ids whichever engines run
            ids = [rng.randrange(100, llm.n_vocab() - 100) for _ in range(n)]
            res = {"spool": [], "llama.cpp": []}
            if base:
                res["spool-base"] = []
            for r in range(a.reps):  # alternate the engines
                if run_spool:
                    res["spool"].append(spool_prefill(model, ids, a.threads, a.chunk))
                if base:
                    res["spool-base"].append(spool_prefill(model, ids, a.threads, a.chunk, base))
                if run_llama:
                    res["llama.cpp"].append(llama_prefill(llm, ids))
                print(json.dumps({"model": model, "n": n, "rep": r, **res}), file=sys.stderr, flush=True)
            med = lambda xs: statistics.median(xs) if xs else None
            fmt = lambda x: f"{x:.1f}" if x is not None else "-"
            sp, lp = med(res["spool"]), med(res["llama.cpp"])
            ratio = f"{sp / lp:.2f}" if sp and lp else "-"
            row = f"| {os.path.basename(model)} | {n} | {fmt(sp)} | {fmt(lp)} | {ratio} | {a.reps} |"
            if base:
                bp = statistics.median(res["spool-base"])
                row += f" {bp:.1f} | {sp / bp:.2f} |" if sp else f" {bp:.1f} | - |"
            print(row, flush=True)
            del llm


if __name__ == "__main__":
    main()
