#!/bin/bash
# 3 rounds: ggml's default path (tiled for K-quants) and the vec_dot path (GGML_CPU_TILED_MM=0)
B=/work/bench-files/qprefill/ggml_mulmat
uptime
for r in 1 2 3; do
  $B --types q4_K,q6_K,q4_1,q4_0,q8_0 --seconds 1
  GGML_CPU_TILED_MM=0 $B --types q4_K,q6_K --seconds 1
done
uptime
