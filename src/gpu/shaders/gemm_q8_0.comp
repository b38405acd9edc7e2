#version 450
// Tiled GEMM with q8_0 weights (gemm.glsl).
#define W_Q8_0
#include "gemm.glsl"
