#!/usr/bin/env python3
"""Whole-model GPU benchmark (issue 17), prepared for a machine with a real GPU: spool's
engine on a Vulkan device with every weight in VRAM and streamed under a VRAM budget of a
fraction of the model, beside llama.cpp on the same machine and the same GGUF.

  python3 bench/gpu/engine.py [--device vulkan:0] [--reps 3] [--prompt 512] [--gen 64]
      [--fraction 0.25] [--shapes 1b,8b] [--dir DIR] [--no-llama] [--cpu] [MODEL.gguf...]

Models: the paths given, plus for each of --shapes a random-weight bf16 GGUF of that real
shape (tools/gen_synthetic_model.py: llama-3.2-1b, llama-3.1-8b) written to --dir if it is
not there yet (needs numpy and gguf; the GPU machine has no network, so say --shapes ''
and give paths if they are missing).

Per model and repetition, each in its own process, alternating:
  spool resident:  spool run M --device D --prompt-ids (P random ids) -n G --temp 0
                   --ignore-eos --json          (--vram-budget 0: the whole model in VRAM)
  spool streamed:  the same with --vram-budget = fraction x the model file's bytes
                   (+ the fixed buffers spool reports as the minimum, if the fraction is
                   below it): layers that do not fit are copied in at every step
  llama.cpp full:  llama-cpp-python, n_gpu_layers = all, flash attention on, n_batch 512
  llama.cpp part:  n_gpu_layers = the share of layers that fits the same VRAM budget
                   (llama.cpp has no streaming: the rest of its layers run on the CPU)
  spool cpu:       with --cpu, spool on the CPU of the same machine
Reported: prefill and decode tok/s (medians), spool's device counters (host-to-device
copy bytes and GB/s, device seconds), and whether llama.cpp's build offloads to a GPU at
all (llama_supports_gpu_offload; a CPU-only llama-cpp-python is reported, not measured
as if it were the GPU). A markdown table goes to stdout, raw JSON lines to stderr.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SPOOL = os.path.join(ROOT, "build", "bin", "spool")
SHAPES = {"1b": "llama-3.2-1b", "8b": "llama-3.1-8b"}


def ensure_shape(shape, out_dir):
    path = os.path.join(out_dir, f"{SHAPES[shape]}-bf16.gguf")
    if not os.path.exists(path):
        os.makedirs(out_dir, exist_ok=True)
        print(f"writing {path} (random weights, real shape)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_synthetic_model.py"), "--shape",
                        SHAPES[shape], "--format", "gguf", "--out", path], check=True)
    return path


def spool_run(model, ids, gen, device, budget, threads=None):
    cmd = [SPOOL, "run", model, "--prompt-ids", ",".join(map(str, ids)), "-n", str(gen), "--temp", "0",
           "--ignore-eos", "--ctx", str(len(ids) + gen + 16), "--json", "--device", device]
    if device != "cpu":
        cmd += ["--vram-budget", str(budget)]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-1500:]}
    s = json.loads(out.stdout)["stats"]
    gpu = s.get("gpu", {})
    return {"prefill": s["prefill_tokens_per_s"], "decode": s["decode_tokens_per_s"], "device": s.get("device"),
            "copy_bytes": gpu.get("copy_bytes"), "copy_gbps": gpu.get("copy_gbps"),
            "upload_gbps": gpu.get("upload_gbps"), "device_seconds": gpu.get("device_seconds"),
            "resident_layers": gpu.get("resident_layers"), "streamed_layers": gpu.get("streamed_layers"),
            "vram_bytes": gpu.get("vram_bytes")}


def min_budget(model, device):
    """The smallest --vram-budget spool accepts for streaming, read from its error message."""
    out = subprocess.run([SPOOL, "run", model, "--prompt-ids", "1", "-n", "1", "--device", device,
                          "--vram-budget", "1"], capture_output=True, text=True)
    for word in out.stderr.split("needs at least ")[1:]:
        return int(word.split()[0])
    return 0


LLAMA_CHILD = r"""
import sys, time, json, numpy as np, llama_cpp
model, ngl, gen, ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
llm = llama_cpp.Llama(model_path=model, n_gpu_layers=ngl, n_ctx=len(ids) + gen + 16, n_batch=512, n_ubatch=512,
                      flash_attn=True, verbose=False)
t0 = time.perf_counter(); llm.eval(ids); t1 = time.perf_counter()
n_vocab = llm.n_vocab()
for i in range(gen - 1):
    if i == 0: t2 = time.perf_counter()
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,))
    llm.eval([int(logits.argmax())])
print(json.dumps({"prefill": len(ids) / (t1 - t0), "decode": (gen - 1) / (time.perf_counter() - t2)}))
"""


def llama_run(model, ngl, gen, ids):
    out = subprocess.run([sys.executable, "-c", LLAMA_CHILD, model, str(ngl), str(gen), json.dumps(ids)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-1500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def llama_info():
    try:
        import llama_cpp
    except ImportError as e:
        return None, f"llama-cpp-python not importable ({e})"
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return llama_cpp, (f"llama-cpp-python {llama_cpp.__version__}, GPU offload "
                       + ("supported" if gpu else "NOT supported (a CPU-only build): its rows are left out"))


def show_field(model, name):
    """An integer field of `spool show MODEL` (e.g. "layers", "vocabulary"), or None."""
    out = subprocess.run([SPOOL, "show", model], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        words = line.split()
        key = name.split()
        if words[:len(key)] == key and len(words) > len(key) and words[len(key)].isdigit():
            return int(words[len(key)])
    return None


def med(runs, key):
    xs = [r[key] for r in runs if key in r and r[key] is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--device", default="vulkan:0")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--shapes", default="1b,8b")
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="also spool on this machine's CPU")
    a = ap.parse_args()
    models = list(a.models) + [ensure_shape(s, a.dir) for s in a.shapes.split(",") if s]
    llama, info = (None, "llama.cpp skipped (--no-llama)") if a.no_llama else llama_info()
    llama_gpu = llama is not None and bool(llama.llama_supports_gpu_offload())
    print(f"# {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())} {os.uname().nodename}, {os.cpu_count()} CPUs; "
          f"device {a.device}; {info}", flush=True)
    print("| model | engine | VRAM | prefill tok/s | decode tok/s | host→device GB/s | runs |")
    print("|---|---|---|---:|---:|---:|---:|")
    for model in models:
        size = os.path.getsize(model)
        budget = max(int(size * a.fraction), min_budget(model, a.device))
        layers = show_field(model, "layers")
        vocab = show_field(model, "vocabulary") or 32000
        ctx = show_field(model, "context length") or (a.prompt + a.gen + 16)
        prompt = max(1, min(a.prompt, ctx - a.gen - 16))  # tiny models have short contexts
        rng = random.Random(a.prompt)
        ids = [rng.randrange(min(100, vocab // 4), vocab - min(100, vocab // 4)) for _ in range(prompt)]
        engines = {"spool resident": lambda: spool_run(model, ids, a.gen, a.device, 0),
                   f"spool streamed": lambda: spool_run(model, ids, a.gen, a.device, budget)}
        if llama_gpu:
            engines["llama.cpp all layers"] = lambda: llama_run(model, -1, a.gen, ids)
            if layers:
                part = max(0, int(layers * budget / size))
                engines[f"llama.cpp {part}/{layers} layers"] = lambda: llama_run(model, part, a.gen, ids)
        if a.cpu:
            engines["spool cpu"] = lambda: spool_run(model, ids, a.gen, "cpu", 0)
        runs = {k: [] for k in engines}
        for r in range(a.reps):
            for name, fn in engines.items():
                res = fn()
                runs[name].append(res)
                print(json.dumps({"model": model, "engine": name, "rep": r, **res}), file=sys.stderr, flush=True)
        for name, rs in runs.items():
            errors = [r["error"] for r in rs if "error" in r]
            vram = (f"{budget / 2**20:.0f} MiB budget" if "streamed" in name or "/" in name
                    else ("all" if "cpu" not in name else "-"))
            if errors:
                print(f"| {os.path.basename(model)} | {name} | {vram} | error: {errors[0][:120]} | | | |")
                continue
            gbps = med(rs, "copy_gbps") or med(rs, "upload_gbps")
            print(f"| {os.path.basename(model)} | {name} | {vram} | {med(rs, 'prefill'):.1f} | "
                  f"{med(rs, 'decode'):.2f} | {'-' if gbps is None else f'{gbps:.2f}'} | {len(rs)} |", flush=True)


if __name__ == "__main__":
    main()
