#version 450
// Tiled GEMM with q5_1 weights (gemm.glsl).
#define W_Q5_1
#include "gemm.glsl"
