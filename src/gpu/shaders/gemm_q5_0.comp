#version 450
// Tiled GEMM with q5_0 weights (gemm.glsl).
#define W_Q5_0
#include "gemm.glsl"
