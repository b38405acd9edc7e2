#version 450
// Tiled GEMM with f32 weights (gemm.glsl), fma emulated in f64 (devices whose fma() is not fused).
#define W_F32
#define FMA_F64
#include "gemm.glsl"
