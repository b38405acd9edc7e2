#version 450
// Tiled GEMM with q4_1 weights (gemm.glsl).
#define W_Q4_1
#include "gemm.glsl"
