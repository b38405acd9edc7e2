#!/usr/bin/env python3
"""Engine benchmark (issue 2): decode and prefill tok/s, spool vs llama.cpp
(llama-cpp-python) on the same GGUF files, same thread count, alternating runs, medians;
plus the machine's memory read bandwidth (bench_membw) as the decode speed of light.

  python3 bench/engine/run.py [--reps 3] [--threads 2] [--prompt 256] [--gen 32] MODEL.gguf...

Prints one markdown table row per model (and the raw JSON of every run on stderr).
Models are run with weights fully resident (they fit in RAM). Prompts are random token
ids (the same ids for both engines), generation is greedy with EOS ignored.
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPOOL = os.path.join(ROOT, "build", "bin", "spool")
MEMBW = os.path.join(ROOT, "build", "bench", "engine", "bench_membw")


def spool_run(model, ids, gen, threads):
    cmd = [SPOOL, "run", model, "--prompt-ids", ",".join(map(str, ids)), "-n", str(gen), "--temp", "0",
           "--ignore-eos", "--threads", str(threads), "--ctx", str(len(ids) + gen + 8), "--json",
           "--prefill-chunk", str(len(ids))]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    st = out["stats"]
    return st["prefill_tokens_per_s"], st["decode_tokens_per_s"]


def llama_run(llm, ids, gen):
    import llama_cpp
    llm.reset()
    llm._ctx.kv_cache_clear() if hasattr(llm, "_ctx") and hasattr(llm._ctx, "kv_cache_clear") else None
    t0 = time.perf_counter()
    llm.eval(ids)
    prefill = len(ids) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = 0
    for _ in range(gen - 1):  # the first token comes from the prefill's logits, as in spool
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),))
        llm.eval([int(logits.argmax())])
        n += 1
    decode = n / (time.perf_counter() - t0)
    return prefill, decode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=32)
    a = ap.parse_args()

    import llama_cpp
    raw = llama_cpp.llama_cpp
    orig = raw.llama_model_default_params

    def params():  # llama.cpp's AMX int8 repack path crashes on this CPU; see tools/gen_llamacpp_refs.py
        p = orig()
        p.use_extra_bufts = False
        return p

    raw.llama_model_default_params = params

    bw = json.loads(subprocess.run([MEMBW, "--threads", str(a.threads)], capture_output=True, text=True,
                                   check=True).stdout)["read_gb_per_s"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"memory read bandwidth {bw:.1f} GB/s ({a.threads} threads)", file=sys.stderr)
    print("| model | weights | spool decode tok/s | llama.cpp decode tok/s | decode ratio | spool weight GB/s (of membw) "
          "| spool prefill tok/s | llama.cpp prefill tok/s | prefill ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in a.models:
        size = os.path.getsize(model)
        rng = random.Random(0)
        llm = llama_cpp.Llama(model_path=model, n_ctx=a.prompt + a.gen + 8, n_batch=a.prompt, n_ubatch=a.prompt,
                              n_threads=a.threads, n_threads_batch=a.threads, logits_all=False, verbose=False)
        n_vocab = llm.n_vocab()
        ids = [rng.randrange(100, n_vocab - 100) for _ in range(a.prompt)]
        res = {"spool": [], "llama.cpp": []}
        for r in range(a.reps):  # alternate the two engines
            res["spool"].append(spool_run(model, ids, a.gen, a.threads))
            res["llama.cpp"].append(llama_run(llm, ids, a.gen))
            print(json.dumps({"model": model, "rep": r, **res}), file=sys.stderr)
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
        sp, sd = med["spool"]
        lp, ld = med["llama.cpp"]
        gbps = sd * size / 1e9
        print(f"| {os.path.basename(model)} | {size / 2**30:.2f} GiB | {sd:.2f} | {ld:.2f} | {sd / ld:.2f} | "
              f"{gbps:.1f} ({gbps / bw:.2f}) | {sp:.1f} | {lp:.1f} | {sp / lp:.2f} |")
        del llm


if __name__ == "__main__":
    main()
