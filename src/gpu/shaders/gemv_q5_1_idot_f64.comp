#version 450
// GEMV with q5_1 weights (gemv.glsl), integer dot product, fma emulated in f64.
#define W_Q5_1
#define INT_DOT
#define FMA_F64
#include "gemv.glsl"
