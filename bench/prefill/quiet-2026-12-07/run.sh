#!/bin/bash
# Quiet-machine re-measure of the quantised prefill (issue 18 item 3): kernels (spool, ggml) and end to end.
cd /work/main
B=/work/bench-files/bench_prefill-span
G=/work/bench-files/qprefill/ggml_mulmat
{
echo "== kernels $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
for r in 1 2 3; do
  echo "-- round $r spool $(date -u +%H:%M:%S)"
  $B --threads 2 --seconds 0.5 --ctx 4096 --types q4_k,q6_k --int8-peak 1 --only-tiles 1
  echo "-- round $r ggml $(date -u +%H:%M:%S)"
  $G --types q4_K,q6_K --seconds 1
done
echo "== e2e q4_k_m $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
python3 bench/prefill/run.py --reps 3 --lengths 512,4096 /work/bench-files/llama-3.2-1b-q4_k_m.gguf
echo "== e2e smollm2 q4_1 $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
python3 bench/prefill/run.py --reps 3 --lengths 512,4096 models/SmolLM2-135M-Instruct.Q4_1.gguf
echo "== end $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
} 2>&1
