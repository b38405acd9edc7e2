#version 450
// GEMV with q6_k weights (gemv_k.glsl), integer dot product (SPV_KHR_integer_dot_product).
#define W_Q6_K
#define INT_DOT
#include "gemv_k.glsl"
