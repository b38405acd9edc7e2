#version 450
// Tiled GEMM with f32 weights (gemm.glsl).
#define W_F32
#include "gemm.glsl"
