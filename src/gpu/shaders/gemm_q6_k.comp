#version 450
// Tiled GEMM with q6_k weights (gemm_k.glsl).
#define W_Q6_K
#include "gemm_k.glsl"
