#!/bin/bash
# kquant A/B 1: main's kernels vs variants of this branch, tiles only, alternating.
cd /work/wt-kquant
K=/work/bench-files/kquant
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2; do
  for v in main v1 vApin vBpin vBpin32 vBpin32z zA zB; do
    echo "## round $r $v load: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ $v = main ]; then
      $K/bench_prefill-main --seconds 0.25 --ctx "" 2>&1 | grep -E "^(q4_k|q6_k|q8_0|q4_1|q4_0)|^peak" | sed 's/| per-row.*//'
    else
      $K/bench_prefill-$v --seconds 0.25 --ctx "" --only-tiles 1 --types q4_k,q6_k,q8_0,q4_1,q4_0 2>&1 | grep -v "^peak bf16"
    fi
  done
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
