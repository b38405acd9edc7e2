#version 450
// Tiled GEMM with q5_k weights (gemm_k.glsl).
#define W_Q5_K
#include "gemm_k.glsl"
