#version 450
// GEMV with f16 weights (gemv.glsl).
#define W_F16
#include "gemv.glsl"
