#version 450
// GEMV with f16 weights (gemv.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_F16
#define FMA_F64
#include "gemv.glsl"
