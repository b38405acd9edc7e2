#version 450
// GEMV with q4_k weights (gemv_k.glsl), integer dot product, fma emulated in f64.
#define W_Q4_K
#define INT_DOT
#define FMA_F64
#include "gemv_k.glsl"
