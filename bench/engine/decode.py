#!/usr/bin/env python3
"""Decode at the bandwidth limit (issue 18): decode tok/s in RAM, spool vs llama.cpp
(llama-cpp-python), and the weight GB/s each moves against bench_gemv_bw, the probe
that reads memory the way a GEMV does.

  PYTHONPATH=... LLAMA_CPP_LIB_PATH=... python3 bench/engine/decode.py [--reps 5] [--gen 32]
      [--threads 2] [--spool-base OTHER_SPOOL_BINARY] MODEL.gguf...

Every engine runs in its own process per repetition, engines alternating (spool,
llama.cpp[, the other spool]), so that noise on the shared VM hits all of them and an
8B model never sits in RAM twice (llama.cpp's mmap would be evicted by spool's copy).
Weights are fully resident (spool --mem-budget large; llama.cpp mmap, warmed by its
prompt). A 16-token prompt of fixed ids, then `gen` greedy tokens with EOS ignored;
decode tok/s = (gen - 1) / time of the tokens after the first, as spool reports it.
The probe runs before and after the models (huge pages, best cell of its sweep).

Prints a markdown table (medians of the repetitions, ratios) and every raw run as JSON
on stderr.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPOOL = os.path.join(ROOT, "build", "bin", "spool")
PROBE = os.path.join(ROOT, "build", "bench", "engine", "bench_gemv_bw")
PROMPT = list(range(1000, 1016))

LLAMA_CHILD = r"""
import sys, time, json, numpy as np, llama_cpp
raw = llama_cpp.llama_cpp
orig = raw.llama_model_default_params
def params():  # llama.cpp's AMX int8 repack path crashes on this CPU; see tools/gen_llamacpp_refs.py
    p = orig(); p.use_extra_bufts = False; return p
raw.llama_model_default_params = params
model, gen, threads, prompt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
llm = llama_cpp.Llama(model_path=model, n_ctx=len(prompt) + gen + 8, n_batch=len(prompt), n_threads=threads,
                      n_threads_batch=threads, verbose=False)
llm.eval(prompt)
n_vocab = llm.n_vocab()
t0 = None
for i in range(gen - 1):  # the first token comes from the prompt's logits, as in spool
    if i == 0: t0 = time.perf_counter()
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,))
    llm.eval([int(logits.argmax())])
print(json.dumps({"decode_tokens_per_s": (gen - 1) / (time.perf_counter() - t0)}))
"""


def spool_run(binary, model, gen, threads, budget):
    cmd = [binary, "run", model, "--prompt-ids", ",".join(map(str, PROMPT)), "-n", str(gen), "--temp", "0",
           "--ignore-eos", "--threads", str(threads), "--ctx", str(len(PROMPT) + gen + 8), "--json",
           "--mem-budget", budget]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr[-2000:]}")
    st = json.loads(out.stdout)["stats"]
    if st["plan"]["streamed_groups"]:
        raise RuntimeError(f"{model}: not fully resident under --mem-budget {budget}: {st['plan']['streamed_groups']}")
    return st["decode_tokens_per_s"]


def llama_run(model, gen, threads):
    out = subprocess.run([sys.executable, "-c", LLAMA_CHILD, model, str(gen), str(threads), json.dumps(PROMPT)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"llama.cpp on {model}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["decode_tokens_per_s"]


def busy_fraction(seconds=2.0):
    """Fraction of all CPUs' time spent non-idle over `seconds` (/proc/stat)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_wait, threshold=0.3):
    """On a shared machine: waits (up to max_wait s) until other work uses < threshold of
    the CPUs, so that a repetition is not run under a burst of someone else's build.
    Returns the busy fraction measured just before the repetition (recorded)."""
    t0 = time.time()
    while True:
        b = busy_fraction()
        if b < threshold or time.time() - t0 > max_wait:
            return b


def probe(threads):
    out = subprocess.run([PROBE, "--threads", str(threads), "--huge", "1", "--mib", "1024", "--rows", "1,4,8", "--dist", "0,1024"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        print(line, file=sys.stderr)
    return json.loads(out.strip().splitlines()[-1])["best_read_gb_per_s"]


def weight_bytes(model):
    """Bytes of the tensors a decode step reads (every tensor; the file minus its header)."""
    import gguf  # gguf-py (PyPI)
    r = gguf.GGUFReader(model)
    return sum(int(t.n_bytes) for t in r.tensors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mem-budget", default="20G")
    ap.add_argument("--spool-base", help="a second spool binary (e.g. main before a change), run alternating too")
    ap.add_argument("--max-wait", type=float, default=0,
                    help="before each repetition wait up to this many seconds for the CPUs to be < 30%% busy")
    a = ap.parse_args()

    bw0 = probe(a.threads)
    rows = []
    for model in a.models:
        size = weight_bytes(model)
        res = {"spool": [], "llama.cpp": []}
        if a.spool_base:
            res["spool-base"] = []
        busy = []
        for r in range(a.reps):
            busy.append(round(wait_quiet(a.max_wait), 2) if a.max_wait > 0 else None)
            res["spool"].append(spool_run(SPOOL, model, a.gen, a.threads, a.mem_budget))
            res["llama.cpp"].append(llama_run(model, a.gen, a.threads))
            if a.spool_base:
                res["spool-base"].append(spool_run(a.spool_base, model, a.gen, a.threads, a.mem_budget))
            print(json.dumps({"model": model, "rep": r, "busy_before": busy, **res}), file=sys.stderr)
        rows.append((model, size, {k: statistics.median(v) for k, v in res.items()}))
    bw1 = probe(a.threads)
    bw = max(bw0, bw1)
    print(f"probe (bench_gemv_bw --huge 1, best cell): {bw0:.1f} GB/s before, {bw1:.1f} GB/s after; "
          f"limit used: {bw:.1f} GB/s ({a.threads} threads)")
    base = " | spool before (tok/s) |" if a.spool_base else " |"
    print("| model | weights GB | spool tok/s | llama.cpp tok/s | spool / llama.cpp | spool GB/s (of limit) "
          "| llama.cpp GB/s (of limit)" + base)
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if a.spool_base else ""))
    for model, size, med in rows:
        sd, ld = med["spool"], med["llama.cpp"]
        extra = f" {med['spool-base']:.2f} |" if a.spool_base else ""
        print(f"| {os.path.basename(model)} | {size / 1e9:.2f} | {sd:.2f} | {ld:.2f} | {sd / ld:.2f} | "
              f"{sd * size / 1e9:.1f} ({sd * size / 1e9 / bw:.2f}) | {ld * size / 1e9:.1f} ({ld * size / 1e9 / bw:.2f}) |"
              + extra)


if __name__ == "__main__":
    main()
