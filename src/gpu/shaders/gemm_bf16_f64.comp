#version 450
// Tiled GEMM with bf16 weights (gemm.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_BF16
#define FMA_F64
#include "gemm.glsl"
