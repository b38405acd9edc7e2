#!/usr/bin/env bash
# Prepared for a machine with a real GPU (not run yet: docs/benchmarks.md). Builds and runs
# bench_gpu_kernels: per-matrix decode GEMV of Llama-3.2-1B and Llama-3.1-8B shapes on the
# Vulkan device beside spool's CPU GEMV, and host→device upload GB/s.
#   bench/gpu/run.sh [--device N] [--reps R] [--dtypes bf16,q8_0,q4_0] [--shapes 1b,8b] [--json]
# Needs: libvulkan-dev, glslc and the GPU's Vulkan driver (vulkaninfo --summary lists it).
# Whole-model decode/prefill tok/s, streaming under --vram-budget and llama.cpp beside it
# come when the engine's forward pass runs on the device (docs/parts/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
vulkaninfo --summary 2>/dev/null | sed -n '/Devices:/,$p' || echo "vulkaninfo not installed"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target bench_gpu_kernels
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -n) $(nproc) CPUs"
./build/bench/gpu/bench_gpu_kernels "$@"
