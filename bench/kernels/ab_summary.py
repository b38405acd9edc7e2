#!/usr/bin/env python3
"""Medians of an A/B file written by bench/prefill/kquant-2026-12-06/ab*.sh ("## round R NAME ..."
headers, then bench_prefill's "TYPE SHAPE [N x K] m=512  int8 tiles MS ms GFLOPS GFLOP/s"
lines): one row per (type, shape), one median GFLOP/s column per binary, and the ratio of
the last column to the first.

  python3 bench/kernels/ab_summary.py RESULTS.txt
"""
import re
import statistics
import sys
from collections import defaultdict

cur = None
vals = defaultdict(lambda: defaultdict(list))
names = []
for line in open(sys.argv[1]):
    m = re.match(r"## round \d+ (\S+)", line)
    if m:
        cur = m.group(1)
        if cur not in names:
            names.append(cur)
        continue
    m = re.match(r"(\S+)\s+(\S+)\s+\[\s*(\d+) x\s+(\d+)\] m=512\s+int8 tiles\s+([\d.]+) ms\s+([\d.]+)", line)
    if m and cur:
        vals[(m.group(1), m.group(2), m.group(3), m.group(4))][cur].append(float(m.group(6)))
print("| type | shape | " + " | ".join(f"{n} GFLOP/s (median, n)" for n in names) + f" | {names[-1]} / {names[0]} |")
print("|---|---|" + "---:|" * (len(names) + 1))
for (t, shape, n, k), d in vals.items():
    meds = [statistics.median(d[x]) if d[x] else float("nan") for x in names]
    cells = " | ".join(f"{md:.1f} ({len(d[x])})" for md, x in zip(meds, names))
    print(f"| {t} | {shape} {n}×{k} | {cells} | {meds[-1] / meds[0]:.2f} |")
