#version 450
// GEMV with q4_1 weights (gemv.glsl), integer dot product (SPV_KHR_integer_dot_product).
#define W_Q4_1
#define INT_DOT
#include "gemv.glsl"
