#version 450
// GEMV with q5_0 weights (gemv.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q5_0
#define FMA_F64
#include "gemv.glsl"
