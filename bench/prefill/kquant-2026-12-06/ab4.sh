#!/bin/bash
# kquant A/B 4: final1 vs final2 (the same with a zeroing idiom per vpdpbusd instead of register copies of one zero).
K=/work/bench-files/kquant
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2 3 4 5; do
  for v in final1 final2; do
    echo "## round $r $v load: $(cut -d' ' -f1-3 /proc/loadavg)"
    $K/bench_prefill-$v --seconds 0.2 --ctx "" --only-tiles 1 --types q4_k,q6_k 2>&1 | grep -v "^peak bf16"
  done
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
