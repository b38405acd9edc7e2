#version 450
// Tiled GEMM with bf16 weights (gemm.glsl).
#define W_BF16
#include "gemm.glsl"
