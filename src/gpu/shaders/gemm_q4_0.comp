#version 450
// Tiled GEMM with q4_0 weights (gemm.glsl).
#define W_Q4_0
#include "gemm.glsl"
