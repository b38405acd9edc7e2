#version 450
// GEMV with q5_k weights (gemv_k.glsl), integer dot product (SPV_KHR_integer_dot_product).
#define W_Q5_K
#define INT_DOT
#include "gemv_k.glsl"
