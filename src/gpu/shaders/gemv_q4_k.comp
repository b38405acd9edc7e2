#version 450
// GEMV with q4_k weights (gemv_k.glsl).
#define W_Q4_K
#include "gemv_k.glsl"
