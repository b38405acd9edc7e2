#version 450
// GEMV with q8_0 weights (gemv.glsl), integer dot product, fma emulated in f64.
#define W_Q8_0
#define INT_DOT
#define FMA_F64
#include "gemv.glsl"
