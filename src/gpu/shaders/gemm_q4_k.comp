#version 450
// Tiled GEMM with q4_k weights (gemm_k.glsl).
#define W_Q4_K
#include "gemm_k.glsl"
