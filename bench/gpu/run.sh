#!/usr/bin/env bash
# Prepared for a machine with a real GPU (not run on one yet: docs/benchmarks.md). Builds
# and runs, on Vulkan device N:
#   1. bench_gpu_kernels: per-matrix decode GEMV and prefill GEMM (--rows M) of
#      Llama-3.2-1B and Llama-3.1-8B shapes for bf16/q8_0/q4_0/q4_k/q6_k beside spool's CPU
#      kernels; host→device upload and pinned async-copy GB/s.
#   2. bench_gpu_decode on each model given (default: the SmolLM2 Q4_1 of `make model` and
#      stories260K, whatever is present): prefill and decode tok/s with every weight in
#      VRAM, then streamed under a VRAM budget of 1/4 of the model, with the device
#      counters (device time, streamed bytes, copy GB/s) and whether the streamed logits
#      equal the resident ones bit for bit.
#   3. bench/gpu/engine.py: the whole engine (`spool run --device vulkan:N`) on the
#      Llama-3.2-1B and 8B shapes (random bf16 weights written by tools/gen_synthetic_model.py
#      into bench/out/ unless --shapes '' ) and the models given, resident in VRAM and
#      streamed under a VRAM budget of 1/4 of the model, beside llama.cpp (llama-cpp-python,
#      all layers offloaded, and the layers that fit the same budget) when its build offloads.
#   bench/gpu/run.sh [--device N] [--model PATH]... [--shapes 1b,8b] [--kernels-only] [--json]
# Needs: libvulkan-dev, glslc and the GPU's Vulkan driver (vulkaninfo --summary lists it);
# for step 3's shapes numpy and gguf (pip), for llama.cpp a GPU build of llama-cpp-python.
set -euo pipefail
cd "$(dirname "$0")/../.."
device=0; json=(); kernels_only=0; models=(); shapes=1b,8b
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --model) models+=("$2"); shift 2 ;;
    --kernels-only) kernels_only=1; shift ;;
    --shapes) shapes="$2"; shift 2 ;;
    --json) json=(--json); shift ;;
    *) echo "usage: bench/gpu/run.sh [--device N] [--model PATH]... [--shapes 1b,8b] [--kernels-only] [--json]" >&2; exit 2 ;;
  esac
done
if ! command -v vulkaninfo >/dev/null; then
  echo "vulkaninfo not installed (apt-get install vulkan-tools); going on"
elif ! vulkaninfo --summary 2>/dev/null | sed -n '/Devices:/,$p' | grep -q deviceName; then
  echo "no Vulkan device found by the driver: nothing to measure" >&2; exit 1
else
  vulkaninfo --summary 2>/dev/null | sed -n '/Devices:/,$p'
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target bench_gpu_kernels bench_gpu_decode spool
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -n) $(nproc) CPUs; commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
./build/bench/gpu/bench_gpu_kernels --device "$device" --rows 64 "${json[@]}"
[ "$kernels_only" = 1 ] && exit 0
if [ ${#models[@]} -eq 0 ]; then
  for m in models/SmolLM2-135M-Instruct.Q4_1.gguf ../shared/data/models/stories260K.gguf; do
    [ -f "$m" ] && models+=("$m")
  done
fi
for m in "${models[@]}"; do
  ctx=512; case "$m" in *stories260K*) ctx=128 ;; esac
  ./build/bench/gpu/bench_gpu_decode "$m" --device "$device" --ctx "$ctx" --prompt-tokens 64 -n 32 --rows 64 \
    --vram-budget 0.25 "${json[@]}"
done
python3 bench/gpu/engine.py --device "vulkan:$device" --shapes "$shapes" --cpu "${models[@]}"
