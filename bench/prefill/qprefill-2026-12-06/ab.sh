#!/bin/bash
# alternating A/B of bench_prefill binaries ($@: suffixes), k-quant lines only; then ggml once per round
D=/work/bench-files/qprefill
uptime
for r in 1 2 3; do
  for v in "$@"; do
    $D/bench_prefill-$v --seconds 0.3 --ctx "" --only-tiles 1 --types q4_k,q6_k | grep "k-quant" | sed "s/^/$v /"
  done
  $D/ggml_mulmat --types q4_K,q6_K --seconds 0.3
done
uptime
