#version 450
// GEMV with f32 weights (gemv.glsl).
#define W_F32
#include "gemv.glsl"
