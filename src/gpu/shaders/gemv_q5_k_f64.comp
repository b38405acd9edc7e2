#version 450
// GEMV with q5_k weights (gemv_k.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q5_K
#define FMA_F64
#include "gemv_k.glsl"
