#!/usr/bin/env python3
"""Expert cache eviction policies compared on routing traces (issue 13).

Replays routing traces (`spool run --trace-routing FILE` JSON lines: pos, layer,
experts) through a cache of S slots, token by token as decode reads them (each line's
experts pinned together, as one PrepareExperts wave), with the two policies spool
implements (runtime/streaming_weights.h ExpertEviction):

  lru   evict the least recently used unpinned expert
  freq  evict the unpinned expert with the fewest uses (counted per expert, halved
        every 8 x S lookups), ties by least recent

and reports hit rates for S from one token's experts of a layer up to half of all
experts. Traces: --trace FILE (any number), or --spool BIN to make them from the MoE
fixtures (greedy, --ignore-eos); --synthetic adds a trace with skewed (Zipf) expert
popularity that drifts over time, a stand-in for a trained router (the fixtures' random
routers route almost uniformly). With --spool it also runs `spool run --json` at a
budget with each policy and prints the engine's own hit/miss counters, which check
the replay.

  python3 bench/moe/eviction.py --spool build/bin/spool --synthetic
"""
import argparse
import collections
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = ["qwen3-moe-fused-f32", "qwen2-moe-shared-f32", "mixtral-bf16", "olmoe-f32"]


def read_trace(path):
    """[(pos, layer, [experts])] in file order."""
    with open(path) as f:
        return [(j["pos"], j["layer"], j["experts"]) for j in map(json.loads, f)]


def replay(trace, n_expert, slots, policy):
    """Hits and misses of a cache of `slots` experts over the trace."""
    slot_of = {}                    # (layer, expert) -> last use clock
    uses = collections.Counter()
    clock = hits = misses = 0
    lookups = 0
    for _, layer, experts in trace:
        wave = set()
        for e in sorted(experts):
            key = (layer, e)
            uses[key] += 1
            lookups += 1
            if lookups % (8 * slots) == 0:
                for k in uses:
                    uses[k] //= 2
            if key in slot_of:
                hits += 1
            else:
                misses += 1
                if len(slot_of) >= slots:
                    if policy == "lru":  # slot_of is in last-use order: the oldest not in this wave
                        victim = next(k for k in slot_of if k not in wave)
                    else:
                        cands = [k for k in slot_of if k not in wave]
                        victim = min(cands, key=lambda k: (uses[k], slot_of[k]))
                    del slot_of[victim]
            clock += 1
            slot_of.pop(key, None)  # re-insert: dict order = last-use order
            slot_of[key] = clock
            wave.add(key)
    return hits, misses


def synthetic_trace(n_layer=24, n_expert=64, k=8, tokens=2000, seed=1):
    """Zipf(1.1) popularity per layer over a random permutation that drifts (a few
    swaps every 100 tokens)."""
    rng = random.Random(seed)
    weights = [1 / (r + 1) ** 1.1 for r in range(n_expert)]
    perms = [rng.sample(range(n_expert), n_expert) for _ in range(n_layer)]
    out = []
    for t in range(tokens):
        if t and t % 100 == 0:
            for p in perms:
                for _ in range(4):
                    i, j = rng.randrange(n_expert), rng.randrange(n_expert)
                    p[i], p[j] = p[j], p[i]
        for l in range(n_layer):
            chosen = set()
            while len(chosen) < k:
                chosen.add(perms[l][rng.choices(range(n_expert), weights)[0]])
            out.append((t, l, sorted(chosen)))
    return out, n_expert, k


def make_trace(spool, model, tokens, tmp):
    path = os.path.join(tmp, os.path.basename(model) + ".jsonl")
    subprocess.run([spool, "run", model, "--prompt-ids", "1,2,3,4,5,6,7,8", "-n", str(tokens), "--ignore-eos",
                    "--temp", "0", "-t", "2", "-c", str(tokens + 16), "--json", "--trace-routing", path],
                   check=True, capture_output=True)
    return path


def engine_counters(spool, model, tokens, budget, policy):
    env = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=str(20 << 20))
    r = subprocess.run([spool, "run", model, "--prompt-ids", "1,2,3,4,5,6,7,8", "-n", str(tokens), "--ignore-eos",
                        "--temp", "0", "-t", "2", "-c", str(tokens + 16), "--json", "--mem-budget", budget,
                        "--expert-eviction", policy], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout)["stats"]
    return st["expert_cache_hits"], st["expert_cache_misses"], st["plan"].get("expert_cache_slots")


def report(name, trace, n_expert, k):
    layers = len({l for _, l, _ in trace})
    total = layers * n_expert
    sizes = sorted({k, 2 * k, total // 8, total // 4, total // 2} - {0})
    print(f"{name}: {len(trace)} (token, layer) lookups of {k} experts, {layers} MoE layers x {n_expert} experts")
    print(f"  {'slots':>6} {'lru hit%':>9} {'freq hit%':>10}")
    for s in sizes:
        if s < k:
            continue
        row = []
        for policy in ("lru", "freq"):
            h, m = replay(trace, n_expert, s, policy)
            row.append(100.0 * h / (h + m))
        print(f"  {s:>6} {row[0]:>9.1f} {row[1]:>10.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spool", help="spool binary: make traces from the MoE fixtures")
    ap.add_argument("--trace", action="append", default=[], help="a --trace-routing file (N experts: --experts)")
    ap.add_argument("--experts", type=int, default=8, help="experts per layer of --trace files")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; python3 bench/moe/eviction.py {' '.join(sys.argv[1:])}")
    for t in args.trace:
        tr = read_trace(t)
        report(t, tr, args.experts, len(tr[0][2]))
    if args.spool:
        with tempfile.TemporaryDirectory() as tmp:
            for f in FIXTURES:
                model = os.path.join(ROOT, "tests", "fixtures", "models", f)
                tr = read_trace(make_trace(args.spool, model, args.tokens, tmp))
                report(f + " (random router)", tr, 8, len(tr[0][2]))
            model = os.path.join(ROOT, "tests", "fixtures", "models", "qwen3-moe-fused-f32")
            for policy in ("lru", "freq"):
                c = engine_counters(args.spool, model, args.tokens, "78.2M", policy)
                if c:
                    print(f"  engine, qwen3-moe-fused-f32, --mem-budget 78.2M (baseline fixed at 20 MiB), {policy}: "
                          f"{c[0]} hits, {c[1]} misses ({100.0 * c[0] / (c[0] + c[1]):.1f}%), {c[2]} slots")
    if args.synthetic:
        tr, n, k = synthetic_trace()
        report("synthetic Zipf(1.1), drifting", tr, n, k)


if __name__ == "__main__":
    main()
