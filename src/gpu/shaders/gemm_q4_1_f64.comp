#version 450
// Tiled GEMM with q4_1 weights (gemm.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q4_1
#define FMA_F64
#include "gemm.glsl"
