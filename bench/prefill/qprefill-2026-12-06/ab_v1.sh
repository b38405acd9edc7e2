#!/bin/bash
# alternating: spool (int8 tiles = DotRow numerics, and the new k-quant prefill GEMM) vs ggml (tiled)
D=/work/bench-files/qprefill
uptime
for r in 1 2 3; do
  $D/bench_prefill-${1:-v1} --seconds 0.3 --ctx "" --only-tiles 1 --types q4_k,q6_k | grep -v "^peak\|GFLOP/s f32\|bf16 dot"
  $D/ggml_mulmat --types q4_K,q6_K --seconds 0.3
done
uptime
