#!/usr/bin/env python3
"""MoE decode under --mem-budget vs llama.cpp in a cgroup cap (issue 13). As root:

  python3 bench/moe/run.py [--spool build/bin/spool] [--budgets 4G,8G] [--runs 3] [--tokens 8]

Models (made once into --out by tools/gen_synthetic_model.py; `--models` picks):
  qwen3-uniform, qwen3-zipf0.5   --shape qwen3-30b-a3b (Q4_0), --residual-scale 0.0015,
                                 router unskewed / --router-zipf 0.5;
  olmoe-uniform, olmoe-zipf0.5   --shape olmoe-1b-7b (bf16), --residual-scale 0.003;
  gptoss-uniform, gptoss-zipf0.5 --shape gpt-oss-20b (MXFP4 experts, bf16 rest, 13.8 GB),
                                 --residual-scale 0.002 (issue 14; --model-dir /work/bench-files);
  qwen3next-l24                  --shape qwen3next-80b-a3b --layers 24 (Q4_0, 22.7 GB), --residual-scale
                                 0.002 (issue 15).
--residual-scale keeps each position's own token in the residual stream, so that every
layer routes each token differently (without it random-weight attention makes deep layers
route every token to the same experts: docs/benchmarks.md).
  1. fio O_DIRECT read rate of the model file: sequential 4 MiB blocks and random blocks
     of one expert matrix's size (Q4_0 [768, 2048]: 864 KiB; bf16 [1024, 2048]: 4 MiB);
  2. per budget and model, alternating, page cache dropped before each run, both inside
     one cgroup v1 memory cap of the budget: spool run --mem-budget B --stats --json
     (tok/s, expert hits/misses, bytes read while decoding) and llama.cpp
     (llama-cpp-python, mmap, use_extra_bufts off so Q4_0 is not repacked into anonymous
     memory) on the same GGUF and prompt ids, fed spool's generated ids one at a time
     (the same tokens, so the same routing) for its first --llama-tokens steps;
  3. the bound: decode bytes read per token / fio random rate, as tok/s;
  4. hit rate against expert cache size (1/4, 1/2, 3/4 of all experts), replaying the
     routing trace of the first spool run at each budget through the LRU and the
     frequency-aware cache (bench/moe/eviction.py's replay), counted over the trace's
     second half (warm).
Writes --out/moe-results.json and prints a Markdown report.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
_spec = importlib.util.spec_from_file_location("streaming_run", os.path.join(ROOT, "bench", "streaming", "run.py"))
streaming = importlib.util.module_from_spec(_spec)  # machine, drop_caches, make_cgroup, in_cgroup, sh, prompt_ids
_spec.loader.exec_module(streaming)
from eviction import read_trace, replay  # noqa: E402

# name: (shape, file, router zipf, residual scale, layers, experts, expert matrix bytes
#        (fio's random block: 4 KiB-aligned for O_DIRECT), experts used per token)
MODELS = {
    "qwen3-uniform": ("qwen3-30b-a3b", "qwen3-30b-a3b-q4_0-res.gguf", 0.0, 0.0015, 48, 128, 864 << 10, 8),
    "qwen3-zipf0.5": ("qwen3-30b-a3b", "qwen3-30b-a3b-q4_0-res-zipf0.5.gguf", 0.5, 0.0015, 48, 128, 864 << 10, 8),
    "olmoe-uniform": ("olmoe-1b-7b", "olmoe-1b-7b-bf16-res.gguf", 0.0, 0.003, 16, 64, 4 << 20, 8),
    "olmoe-zipf0.5": ("olmoe-1b-7b", "olmoe-1b-7b-bf16-res-zipf0.5.gguf", 0.5, 0.003, 16, 64, 4 << 20, 8),
    # MXFP4 [2880, 2880]: 4,406,400 bytes, rounded up to 4 KiB for fio.
    "gptoss-uniform": ("gpt-oss-20b", "gpt-oss-20b-mxfp4-res.gguf", 0.0, 0.002, 24, 32, 4304 << 10, 4),
    "gptoss-zipf0.5": ("gpt-oss-20b", "gpt-oss-20b-mxfp4-res-zipf0.5.gguf", 0.5, 0.002, 24, 32, 4304 << 10, 4),
    # Qwen3-Next-80B-A3B's layers (issue 15): the first 24 of its 48 (18 Gated DeltaNet, 6
    # gated attention), 512 experts of 512 top-10 + shared expert, Q4_0 [512, 2048]: 576 KiB.
    "qwen3next-l24": ("qwen3next-80b-a3b", "qwen3next-80b-a3b-l24-q4_0-res.gguf", 0.0, 0.002, 24, 512, 576 << 10, 10,
                      "--layers 24"),
}

LLAMA_CPP = r'''
import json, sys, time
import llama_cpp
import llama_cpp.llama_cpp as llama_capi
# Weights stay in the mmap: no runtime repacking of Q4_0 into anonymous buffers
# (llama.cpp's default on AVX2 copies every Q4_0 matrix, which cannot stream under a cap).
_defaults = llama_capi.llama_model_default_params
def _no_repack():
    p = _defaults(); p.use_extra_bufts = False; return p
llama_capi.llama_model_default_params = _no_repack
# argv: model, prompt ids, ids to feed one per step (comma-separated), threads
path, ids, feed, threads = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], [int(x) for x in sys.argv[3].split(",")], int(sys.argv[4])
t_load = time.time()
m = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=threads, use_mmap=True, verbose=False, n_batch=512)
t0 = time.time(); m.eval(ids); t1 = time.time()
times = []
for tok in feed:
    t = time.time(); m.eval([tok]); times.append(time.time() - t)
print(json.dumps({"load_s": t0 - t_load, "prefill_s": t1 - t0, "decode_s": sum(times), "decode_steps": len(feed),
                  "decode_tokens_per_s": len(feed) / sum(times)}))
'''


def parse_size(s):
    return int(float(s[:-1]) * {"G": 2**30, "M": 2**20}[s[-1]]) if s[-1] in "GM" else int(s)


def fio(path, rw, bs, seconds):
    out = streaming.sh(f"fio --name=x --filename={path} --rw={rw} --direct=1 --bs={bs} --iodepth=16 "
                       f"--ioengine=io_uring --readonly --runtime={seconds} --time_based --output-format=json")
    return json.loads(out[out.index("{"):])["jobs"][0]["read"]["bw_bytes"]


def spool_run(spool, path, budget, n_prompt, n_gen, threads, trace=None):
    cmd = (f"timeout 600 {spool} run {path} --prompt-ids {streaming.prompt_ids(n_prompt)} -n {n_gen} --ignore-eos "
           f"--json --stats --ctx 512 --mem-budget {budget} -t {threads}")
    if trace:
        cmd += f" --trace-routing {trace}"
    out, dt, peak = streaming.in_cgroup(cmd)
    j = json.loads(out.strip().splitlines()[-1])
    st = j["stats"]
    st["cgroup_peak_bytes"] = peak
    st["ids"] = j["ids"]
    return st


def llama_run(script, path, n_prompt, feed, threads):
    """llama.cpp decode timed over `feed` (spool's generated ids, so both see the same tokens)."""
    try:
        out, dt, peak = streaming.in_cgroup(f"timeout 400 {sys.executable} {script} {path} "
                                            f"{streaming.prompt_ids(n_prompt)} {','.join(map(str, feed))} {threads}")
    except RuntimeError as e:
        return {"error": str(e)[-400:]}
    j = json.loads(out.strip().splitlines()[-1])
    j["cgroup_peak_bytes"] = peak
    return j


def hit_curve(trace_path, slot_bytes, n_layer, n_expert):
    """LRU and frequency-aware hit rates over the trace's second half (tokens after the
    first half warmed the cache)."""
    tr = [t for t in read_trace(trace_path)]
    positions = sorted({p for p, _, _ in tr})
    half = positions[len(positions) // 2]
    first = [t for t in tr if t[0] < half]
    out = {}
    for frac in (0.25, 0.5, 0.75):
        slots = int(frac * n_layer * n_expert)
        out[frac] = dict(slots=slots, cache_gib=slots * slot_bytes / 2**30)
        for policy in ("lru", "freq"):
            h_all, m_all = replay(tr, n_expert, slots, policy)
            h_1, m_1 = replay(first, n_expert, slots, policy)
            h, m = h_all - h_1, m_all - m_1
            out[frac][policy] = dict(hit_rate=h / max(1, h + m), hit_rate_whole_trace=h_all / max(1, h_all + m_all))
    # Share of routed selections taken by the most popular quarter of each layer's experts.
    counts = {}
    for _, layer, experts in tr:
        for e in experts:
            counts.setdefault(layer, [0] * n_expert)[e] += 1
    shares = [sum(sorted(c, reverse=True)[:n_expert // 4]) / max(1, sum(c)) for c in counts.values()]
    return dict(curve=out, top_quarter_share=statistics.mean(shares), tokens=len(positions))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=os.path.join(ROOT, "build", "bin", "spool"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--model-dir", default=None, help="where the GGUFs are (default --out)")
    ap.add_argument("--budgets", default="4G,8G")
    ap.add_argument("--models", default="qwen3-uniform,qwen3-zipf0.5")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32, help="spool decode tokens per run (after an 8-token prompt)")
    ap.add_argument("--llama-tokens", type=int, default=6, help="llama.cpp decode steps per run (spool's first ids)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--fio-seconds", type=int, default=8)
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--results", default=None, help="JSON output (default --out/moe-results.json)")
    ap.add_argument("--prefill", type=int, default=0,
                    help="instead: prefill of a prompt of N ids, streamed at each --budgets vs resident at "
                         "--resident-budget, alternating, --runs each (no cgroup: resident needs the model's size)")
    ap.add_argument("--resident-budget", default="20G")
    a = ap.parse_args()
    if a.prefill:
        return prefill_main(a)
    res = {"machine": streaming.machine(), "args": vars(a), "fio": {}, "runs": {},
           "loadavg_before": open("/proc/loadavg").read().split()[:3]}
    names = a.models.split(",")
    mdir = a.model_dir or a.out
    os.makedirs(a.out, exist_ok=True)
    for name in names:
        shape, fname, zipf, rscale = MODELS[name][:4]
        extra = MODELS[name][8] if len(MODELS[name]) > 8 else ""
        path = os.path.join(mdir, fname)
        if not os.path.exists(path):
            streaming.log(f"generating {path}")
            streaming.sh(f"{sys.executable} {ROOT}/tools/gen_synthetic_model.py --shape {shape} --router-zipf {zipf} "
                         f"--residual-scale {rscale} {extra} --out {path}.tmp")
            os.rename(path + ".tmp", path)
    for name in names:
        fname, bs = MODELS[name][1], MODELS[name][6]
        key = f"{fname}:{bs}"
        if key in res["fio"]:
            continue
        path = os.path.join(mdir, fname)
        streaming.drop_caches()
        seq = fio(path, "read", "4M", a.fio_seconds)
        streaming.drop_caches()
        rnd = fio(path, "randread", str(bs), a.fio_seconds)
        res["fio"][name] = dict(file_bytes=os.path.getsize(path), seq_4m=seq, rand_expert=rnd, rand_bs=bs)
        streaming.log(f"{name}: fio seq 4M {seq / 1e9:.2f} GB/s, rand {bs >> 10} KiB {rnd / 1e9:.2f} GB/s")
    script = os.path.join(a.out, "llama_cpp_decode.py")
    open(script, "w").write(LLAMA_CPP)
    out_json = a.results or os.path.join(a.out, "moe-results.json")
    for b in a.budgets.split(","):
        budget = parse_size(b)
        streaming.make_cgroup(budget)
        for name in names:
            fname, n_layer, n_expert, k = MODELS[name][1], MODELS[name][4], MODELS[name][5], MODELS[name][7]
            path = os.path.join(mdir, fname)
            key = f"{name}@{b}"
            r = res["runs"][key] = {"spool": [], "llama_cpp": [], "n_layer": n_layer, "experts_used": k}
            r["plan"] = streaming.sh(f"{a.spool} show {path} --plan --mem-budget {budget} --ctx 512 -t {a.threads}")
            for i in range(a.runs):
                streaming.drop_caches()
                trace = os.path.join(a.out, f"trace-{key}.jsonl") if i == 0 else None
                st = spool_run(a.spool, path, budget, 8, a.tokens, a.threads, trace)
                r["spool"].append(st)
                streaming.log(f"{key} spool {i}: {st['decode_tokens_per_s']:.3f} tok/s, hits {st['expert_cache_hits']} "
                              f"misses {st['expert_cache_misses']}, decode read {st['decode_weight_bytes'] / 1e9:.2f} GB")
                if trace:
                    # Greedy ids and routing do not depend on the budget: one curve per model.
                    curves = res.setdefault("hit_curves", {})
                    if name not in curves:
                        curves[name] = hit_curve(trace, st["plan"]["expert_slot_bytes"], n_layer, n_expert)
                    r["hits"] = curves[name]
                if not a.no_llama:
                    streaming.drop_caches()
                    lc = llama_run(script, path, 8, st["ids"][:a.llama_tokens], a.threads)
                    r["llama_cpp"].append(lc)
                    streaming.log(f"{key} llama.cpp {i}: {lc.get('decode_tokens_per_s', lc.get('error'))}")
                json.dump(res, open(out_json, "w"), indent=1)
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    json.dump(res, open(out_json, "w"), indent=1)
    print(report(res))


def prefill_main(a):
    """Prefill tok/s of an N-token prompt: streamed under each budget vs every expert resident."""
    res = {"machine": streaming.machine(), "args": vars(a), "runs": {}}
    out_json = a.results or os.path.join(a.out, "moe-prefill.json")
    for name in a.models.split(","):
        path = os.path.join(a.model_dir or a.out, MODELS[name][1])
        for i in range(a.runs):
            for b in a.budgets.split(",") + [a.resident_budget]:
                streaming.drop_caches()
                cmd = (f"timeout 1200 {a.spool} run {path} --prompt-ids {streaming.prompt_ids(a.prefill)} -n 1 "
                       f"--ignore-eos --json --stats --ctx {a.prefill + 64} --mem-budget {b} -t {a.threads}")
                st = json.loads(streaming.sh(cmd).strip().splitlines()[-1])["stats"]
                st.pop("plan", None)
                res["runs"].setdefault(f"{name}@{b}", []).append(st)
                streaming.log(f"{name}@{b} prefill {i}: {st['prefill_tokens_per_s']:.2f} tok/s, expert reads "
                              f"{st['expert_bytes_read'] / 1e9:.1f} GB, misses {st['expert_cache_misses']}, "
                              f"load {st['load_s']:.1f} s, peak RSS {st['peak_rss_bytes'] / 2**30:.2f} GiB")
                json.dump(res, open(out_json, "w"), indent=1)
    lines = ["| model | budget | prefill tok/s (runs) | ÷ resident | expert GB read | load s | peak RSS GiB |",
             "|---|---|---|---|---|---|---|"]
    for name in a.models.split(","):
        resident = med([s["prefill_tokens_per_s"] for s in res["runs"][f"{name}@{a.resident_budget}"]])
        for b in a.budgets.split(",") + [a.resident_budget]:
            rs = res["runs"][f"{name}@{b}"]
            tps = [s["prefill_tokens_per_s"] for s in rs]
            lines.append(f"| {name} | {b} | {med(tps):.2f} ({', '.join(f'{x:.2f}' for x in tps)}) | "
                         f"{med(tps) / resident:.2f} | {med([s['expert_bytes_read'] for s in rs]) / 1e9:.1f} | "
                         f"{med([s['load_s'] for s in rs]):.1f} | {med([s['peak_rss_bytes'] for s in rs]) / 2**30:.2f} |")
    print("\n".join(lines))


def med(xs):
    return statistics.median(xs) if xs else None


def report(res):
    lines = ["| model | cap = budget | spool tok/s (runs) | expert hit rate | decode GB read/token | expert read GB/s "
             "| fio rand GB/s | bound tok/s (fio ÷ GB/token) | spool ÷ bound | routed GB/token (every routed expert read) "
             "| read ÷ routed | llama.cpp tok/s (runs) | spool ÷ llama.cpp |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in res["runs"].items():
        name, budget = key.split("@")
        fio_r = res["fio"][name]["rand_expert"]
        sp = r["spool"]
        runs = [s["decode_tokens_per_s"] for s in sp]
        tps = med(runs)
        hr = med([s["expert_cache_hits"] / max(1, s["expert_cache_hits"] + s["expert_cache_misses"]) for s in sp])
        # Bytes per decode step: decode_weight_bytes / decode seconds ÷ decode steps / decode seconds.
        bpt = med([s["decode_weight_gb_per_s"] * 1e9 / s["decode_tokens_per_s"] for s in sp])
        rate = med([s["decode_weight_gb_per_s"] for s in sp])
        bound = fio_r / bpt if bpt else float("inf")
        # The routed-expert bound: every layer reads its experts_used experts (no cache hits).
        routed = r.get("n_layer", 0) * r.get("experts_used", 0) * sp[0]["plan"]["expert_slot_bytes"]
        ok = [x["decode_tokens_per_s"] for x in r["llama_cpp"] if "decode_tokens_per_s" in x]
        lc = med(ok)
        lines.append(f"| {name} | {budget} | {tps:.2f} ({', '.join(f'{x:.2f}' for x in runs)}) | {hr:.3f} | "
                     f"{bpt / 1e9:.3f} | {rate:.2f} | {fio_r / 1e9:.2f} | {bound:.2f} | {tps / bound:.2f} | "
                     f"{routed / 1e9:.3f} | {(bpt / routed) if routed else float('nan'):.2f} | "
                     + (f"{lc:.3f} ({', '.join(f'{x:.3f}' for x in ok)}) | {tps / lc:.1f}" if lc else "- | -") + " |")
    lines.append("")
    lines.append("| model | trace | top-¼ experts' share of routing | hit rate LRU, cache ¼ / ½ / ¾ of experts | "
                 "hit rate freq, ¼ / ½ / ¾ | (warm half of the trace) |")
    lines.append("|---|---|---|---|---|---|")
    for key, r in res["runs"].items():
        if "hits" in r:
            c = r["hits"]["curve"]
            lines.append(f"| {key.split('@')[0]} | {key.split('@')[1]} run, {r['hits']['tokens']} positions | "
                         f"{r['hits']['top_quarter_share']:.2f} | "
                         + " / ".join(f"{c[f]['lru']['hit_rate']:.2f}" for f in (0.25, 0.5, 0.75)) + " | "
                         + " / ".join(f"{c[f]['freq']['hit_rate']:.2f}" for f in (0.25, 0.5, 0.75)) + " | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
