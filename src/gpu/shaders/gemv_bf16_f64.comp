#version 450
// GEMV with bf16 weights (gemv.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_BF16
#define FMA_F64
#include "gemv.glsl"
