#!/usr/bin/env python3
"""Weight-streaming benchmark (issue 4). One command, as root:

  python3 bench/streaming/run.py [--spool build/bin/spool] [--out bench/out] [--quick]

For each generated bf16 model with real shapes (Llama-3.2-1B, Llama-3.1-8B; made once
by tools/gen_synthetic_model.py into --out and reused):
  1. fio O_DIRECT sequential read bandwidth of the model file (same run);
  2. spool decoding with --mem-budget ≈ half the model: achieved weight bandwidth
     (bytes streamed while decoding / decode seconds), tok/s, peak RSS, vs fio;
  3. spool vs llama.cpp (llama-cpp-python, mmap) on the same GGUF, both inside one
     cgroup v1 memory cap of the same size, page cache dropped before each run (cold);
  4. prefill of a 2,048-token prompt on the 8B shape: streamed (half budget) vs fully
     resident (when the machine has the RAM).
Medians of --runs runs. Prints a Markdown report (also written to --out/streaming-report.md).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGROUP = "/sys/fs/cgroup/memory/spool-bench"

MODELS = {
    "llama-3.2-1b": dict(file="llama-3.2-1b-bf16.gguf", decode_tokens=6),
    "llama-3.1-8b": dict(file="llama-3.1-8b-bf16.gguf", decode_tokens=3),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True, **kw).stdout


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def machine():
    lscpu = sh("lscpu")
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    cpus = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("CPU(s)")), "?")
    mem = int(open("/proc/meminfo").read().split("MemTotal:")[1].split()[0]) * 1024
    disk = sh(f"df -h {ROOT} | tail -1").split()[0]
    return dict(cpu=model, cpus=cpus, ram_gib=round(mem / 2**30, 1), disk=disk, kernel=platform.release(),
                date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))


def drop_caches():
    try:
        sh("sync; echo 3 > /proc/sys/vm/drop_caches")
        return True
    except subprocess.CalledProcessError:
        return False


def fio_bw(path, seconds, bs="4M"):
    out = sh(f"fio --name=seq --filename={path} --rw=read --direct=1 --bs={bs} --iodepth=32 --ioengine=io_uring "
             f"--readonly --runtime={seconds} --time_based=0 --output-format=json")
    j = json.loads(out[out.index("{"):])
    return j["jobs"][0]["read"]["bw_bytes"]


def make_cgroup(limit):
    """memory (+ memsw where accounted) limit = `limit`. memsw must stay >= memory, so the
    order of the writes depends on whether the limit goes up or down: try both orders."""
    os.makedirs(CGROUP, exist_ok=True)

    def write(name):
        try:
            with open(f"{CGROUP}/{name}", "w") as f:
                f.write(str(limit))
            return True
        except OSError:
            return False
    write("memory.memsw.limit_in_bytes")  # raising: memsw first (fails harmlessly when lowering)
    if not write("memory.limit_in_bytes"):
        raise RuntimeError(f"cannot set {CGROUP}/memory.limit_in_bytes to {limit}")
    write("memory.memsw.limit_in_bytes")  # lowering: memsw after memory


def in_cgroup(cmd):
    """Runs cmd (a shell string) inside the cgroup; returns (stdout, seconds, cgroup peak bytes)."""
    with open(CGROUP + "/memory.max_usage_in_bytes", "w") as f:
        f.write("0")
    t = time.time()
    p = subprocess.run(["sh", "-c", f"echo $$ > {CGROUP}/cgroup.procs && exec {cmd}"], capture_output=True, text=True)
    dt = time.time() - t
    peak = int(open(CGROUP + "/memory.max_usage_in_bytes").read())
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}")
    return p.stdout, dt, peak


def prompt_ids(n):
    return ",".join(str(1000 + (i * 7919) % 120000) for i in range(n))


def spool_run(spool, model, budget, n_prompt, n_gen, extra="", cgroup=False):
    cmd = (f"{spool} run {model} --prompt-ids {prompt_ids(n_prompt)} -n {n_gen} --ignore-eos --json "
           f"--ctx {max(512, n_prompt + n_gen + 16)} --mem-budget {budget} {extra}")
    if cgroup:
        out, _, peak = in_cgroup(cmd)
    else:
        out, peak = sh(cmd), 0
    j = json.loads(out.strip().splitlines()[-1])
    j["stats"]["cgroup_peak_bytes"] = peak
    return j["stats"]


LLAMA_CPP = r'''
import json, sys, time
import llama_cpp
path, n_prompt, n_gen, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = [1000 + (i * 7919) % 120000 for i in range(n_prompt)]
m = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=threads, use_mmap=True, verbose=False, n_batch=512)
t0 = time.time(); m.eval(ids); t1 = time.time()
tok = ids[-1]; times = []
for _ in range(n_gen):
    t = time.time(); m.eval([tok]); times.append(time.time() - t); tok = (tok + 1) % 120000
print(json.dumps({"prefill_s": t1 - t0, "decode_s": sum(times), "decode_tokens_per_s": n_gen / sum(times)}))
'''


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, "build", "bin", "spool"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", default="llama-3.2-1b,llama-3.1-8b")
    ap.add_argument("--fio-seconds", type=int, default=10)
    ap.add_argument("--prefill-tokens", type=int, default=2048)
    ap.add_argument("--prefill-runs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    have_llama = subprocess.run([sys.executable, "-c", "import llama_cpp"], capture_output=True).returncode == 0
    m = machine()
    rep = [f"machine: {m['cpu']}, {m['cpus']} CPUs, {m['ram_gib']} GiB RAM, disk {m['disk']}, "
           f"Linux {m['kernel']}, {m['date']}", ""]
    results = {"machine": m, "models": {}}
    prev = os.path.join(a.out, "streaming-results.json")
    if os.path.exists(prev):  # keep the other models' results of an earlier run
        results["models"] = json.load(open(prev)).get("models", {})
    for name in a.models.split(","):
        cfg = MODELS[name]
        path = os.path.join(a.out, cfg["file"])
        if not os.path.exists(path):
            log(f"generating {path}")
            sh(f"{sys.executable} {ROOT}/tools/gen_synthetic_model.py --shape {name} --format gguf --out {path}.tmp")
            os.rename(path + ".tmp", path)
        size = os.path.getsize(path)
        budget = size // 2
        r = {"file_bytes": size, "budget_bytes": budget}
        log(f"{name}: {size / 1e9:.2f} GB, budget {budget / 2**30:.2f} GiB")
        plan = sh(f"{a.spool} show {path} --plan --mem-budget {budget} --ctx 512")
        r["plan"] = plan
        # 1. fio.
        drop_caches()
        r["fio_bytes_per_s"] = fio_bw(path, a.fio_seconds)
        drop_caches()
        r["fio_1m_bytes_per_s"] = fio_bw(path, a.fio_seconds, "1M")  # spool's piece size, for reference
        log(f"  fio {r['fio_bytes_per_s'] / 1e9:.2f} GB/s (bs 4M), {r['fio_1m_bytes_per_s'] / 1e9:.2f} GB/s (bs 1M)")
        # 2. spool decode under the budget (cold page cache; O_DIRECT anyway).
        runs = []
        for i in range(a.runs):
            drop_caches()
            st = spool_run(a.spool, path, budget, 8, cfg["decode_tokens"], f"-t {a.threads}")
            runs.append(st)
            log(f"  spool run {i}: {st['decode_tokens_per_s']:.3f} tok/s, {st['decode_weight_gb_per_s']:.2f} GB/s, "
                f"peak RSS {st['peak_rss_bytes'] / 2**20:.0f} MiB")
        r["spool_decode"] = runs
        r["spool_decode_tps"] = median([x["decode_tokens_per_s"] for x in runs])
        r["spool_decode_gbps"] = median([x["decode_weight_gb_per_s"] for x in runs])
        r["spool_peak_rss"] = max(x["peak_rss_bytes"] for x in runs)
        # 3. spool vs llama.cpp in one cgroup cap.
        make_cgroup(budget)
        cg = []
        for i in range(a.runs):
            drop_caches()
            st = spool_run(a.spool, path, budget, 8, cfg["decode_tokens"], f"-t {a.threads}", cgroup=True)
            cg.append(st)
        r["spool_cgroup_tps"] = median([x["decode_tokens_per_s"] for x in cg])
        r["spool_cgroup_peak"] = max(x["cgroup_peak_bytes"] for x in cg)
        if have_llama:
            script = os.path.join(a.out, "llama_cpp_decode.py")
            open(script, "w").write(LLAMA_CPP)
            lc = []
            for i in range(a.runs):
                drop_caches()
                try:
                    out, dt, peak = in_cgroup(f"{sys.executable} {script} {path} 8 {cfg['decode_tokens']} {a.threads}")
                    j = json.loads(out.strip().splitlines()[-1])
                    j["cgroup_peak_bytes"] = peak
                    lc.append(j)
                    log(f"  llama.cpp run {i}: {j['decode_tokens_per_s']:.3f} tok/s")
                except RuntimeError as e:
                    lc.append({"error": str(e)[-500:]})
                    log(f"  llama.cpp run {i} failed: {str(e)[-300:]}")
            ok = [x for x in lc if "decode_tokens_per_s" in x]
            r["llama_cpp"] = lc
            r["llama_cpp_tps"] = median([x["decode_tokens_per_s"] for x in ok]) if ok else None
        # 4. prefill streamed vs resident (8B only: the target).
        if name == "llama-3.1-8b" and a.prefill_tokens > 0:
            pre = {}
            avail = int(open("/proc/meminfo").read().split("MemAvailable:")[1].split()[0]) * 1024
            modes = [("streamed", budget)]
            if avail > size * 1.25:
                modes.append(("resident", int(size * 1.2)))
            for mode, b in modes:
                xs = []
                for i in range(a.prefill_runs):
                    drop_caches()
                    st = spool_run(a.spool, path, b, a.prefill_tokens, 1, f"-t {a.threads}")
                    xs.append(st)
                    log(f"  prefill {mode} run {i}: {st['prefill_tokens_per_s']:.2f} tok/s, "
                        f"weights read {st['prefill_weight_bytes'] / 1e9:.1f} GB")
                pre[mode] = xs
            r["prefill"] = pre
        results["models"][name] = r
        json.dump(results, open(os.path.join(a.out, "streaming-results.json"), "w"), indent=1)

    # Report.
    rep.append("| model | file | budget | fio O_DIRECT | spool decode weight BW | ratio | spool tok/s | peak RSS |")
    rep.append("|---|---|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        rep.append(f"| {name} | {r['file_bytes'] / 1e9:.2f} GB | {r['budget_bytes'] / 2**30:.2f} GiB | "
                   f"{r['fio_bytes_per_s'] / 1e9:.2f} GB/s | {r['spool_decode_gbps']:.2f} GB/s | "
                   f"{r['spool_decode_gbps'] * 1e9 / r['fio_bytes_per_s']:.2f} | {r['spool_decode_tps']:.3f} | "
                   f"{r['spool_peak_rss'] / 2**30:.2f} GiB |")
    rep.append("")
    rep.append("| model | cgroup cap | spool tok/s | spool cgroup peak | llama.cpp tok/s | ratio |")
    rep.append("|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        lc = r.get("llama_cpp_tps")
        rep.append(f"| {name} | {r['budget_bytes'] / 2**30:.2f} GiB | {r['spool_cgroup_tps']:.3f} | "
                   f"{r['spool_cgroup_peak'] / 2**30:.2f} GiB | "
                   + (f"{lc:.3f} | {r['spool_cgroup_tps'] / lc:.2f} |" if lc else "not run (llama_cpp missing or failed) | - |"))
    for name, r in results["models"].items():
        if "prefill" in r:
            rep.append("")
            rep.append(f"prefill {a.prefill_tokens} tokens, {name}:")
            for mode, xs in r["prefill"].items():
                rep.append(f"- {mode}: {median([x['prefill_tokens_per_s'] for x in xs]):.2f} tok/s "
                           f"(weights read while prefilling {median([x['prefill_weight_bytes'] for x in xs]) / 1e9:.1f} GB, "
                           f"I/O wait {median([x['io_wait_s'] for x in xs]):.1f} s, runs {len(xs)})")
    text = "\n".join(rep)
    open(os.path.join(a.out, "streaming-report.md"), "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
