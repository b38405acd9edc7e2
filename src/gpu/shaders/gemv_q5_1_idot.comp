#version 450
// GEMV with q5_1 weights (gemv.glsl), integer dot product (SPV_KHR_integer_dot_product).
#define W_Q5_1
#define INT_DOT
#include "gemv.glsl"
