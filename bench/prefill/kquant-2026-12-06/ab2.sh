#!/bin/bash
# kquant A/B 2: main's int8 tiles (bench_prefill built with main's gemm_int8.cc) vs this branch's, alternating.
K=/work/bench-files/kquant
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2 3 4 5; do
  for v in mainkernel final1; do
    echo "## round $r $v load: $(cut -d' ' -f1-3 /proc/loadavg)"
    $K/bench_prefill-$v --seconds 0.2 --ctx "" --only-tiles 1 --types q4_k,q6_k,q8_0,q4_1,q4_0 2>&1 | grep -v "^peak bf16"
  done
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
