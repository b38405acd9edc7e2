#version 450
// GEMV with q6_k weights (gemv_k.glsl).
#define W_Q6_K
#include "gemv_k.glsl"
