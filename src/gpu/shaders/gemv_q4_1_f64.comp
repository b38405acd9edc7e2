#version 450
// GEMV with q4_1 weights (gemv.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q4_1
#define FMA_F64
#include "gemv.glsl"
