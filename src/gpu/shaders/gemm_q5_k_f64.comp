#version 450
// Tiled GEMM with q5_k weights (gemm_k.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_Q5_K
#define FMA_F64
#include "gemm_k.glsl"
