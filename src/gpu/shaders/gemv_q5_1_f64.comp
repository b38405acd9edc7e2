#version 450
// GEMV with q5_1 weights (gemv.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q5_1
#define FMA_F64
#include "gemv.glsl"
