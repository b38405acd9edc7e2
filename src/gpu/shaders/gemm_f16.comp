#version 450
// Tiled GEMM with f16 weights (gemm.glsl).
#define W_F16
#include "gemm.glsl"
