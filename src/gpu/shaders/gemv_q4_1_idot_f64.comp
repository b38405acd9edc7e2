#version 450
// GEMV with q4_1 weights (gemv.glsl), integer dot product, fma emulated in f64.
#define W_Q4_1
#define INT_DOT
#define FMA_F64
#include "gemv.glsl"
