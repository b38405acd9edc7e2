#version 450
// Tiled GEMM with q5_1 weights (gemm.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q5_1
#define FMA_F64
#include "gemm.glsl"
