#!/usr/bin/env python3
"""Per-layer routing locality of a `spool run --trace-routing` trace: distinct experts each
layer used over the trace's positions, and how many of a position's top-k experts the layer
had not used at the previous position (k = every expert new: no temporal locality).

  python3 bench/qwen3next/trace_stats.py TRACE.jsonl
"""
import json
import statistics
import sys

by_layer = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    by_layer.setdefault(j["layer"], []).append((j["pos"], j["experts"]))
distinct, new = [], []
for layer, rows in sorted(by_layer.items()):
    rows.sort()
    distinct.append(len({e for _, ex in rows for e in ex}))
    new += [len(set(b) - set(a)) for (_, a), (_, b) in zip(rows, rows[1:])]
k = len(next(iter(by_layer.values()))[0][1])
print(json.dumps(dict(layers=len(by_layer), positions=len(next(iter(by_layer.values()))), top_k=k,
                      distinct_min=min(distinct), distinct_max=max(distinct),
                      new_per_position_mean=statistics.mean(new), new_min=min(new))))
