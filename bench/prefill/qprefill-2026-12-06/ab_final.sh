#!/bin/bash
# 5 alternating rounds: spool's bench_prefill (k-quant prefill GEMM and the DotRow int8 tiles, one process)
# and ggml's tiled matmul (llama-cpp-python 0.3.36's libggml), m = 512, 2 threads
D=/work/bench-files/qprefill
uptime
for r in 1 2 3 4 5; do
  echo "## round $r spool"
  $D/bench_prefill-v2 --seconds 0.3 --ctx "" --only-tiles 1 --types q4_k,q5_k,q6_k | grep "m=512"
  echo "## round $r ggml"
  $D/ggml_mulmat --types q4_K,q5_K,q6_K --seconds 0.3
done
uptime
