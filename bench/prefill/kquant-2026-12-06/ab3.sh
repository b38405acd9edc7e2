#!/bin/bash
# kquant A/B 3: K-quant chunk lane sums by vpmaddubsw+vpdpwssd per chunk (zA) vs packed vpdpbusd pairs (final1), both zmm tiles.
K=/work/bench-files/kquant
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2 3 4 5; do
  for v in zA final1; do
    echo "## round $r $v load: $(cut -d' ' -f1-3 /proc/loadavg)"
    $K/bench_prefill-$v --seconds 0.2 --ctx "" --only-tiles 1 --types q4_k,q6_k 2>&1 | grep -v "^peak bf16"
  done
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
