#version 450
// GEMV with q8_0 weights (gemv.glsl).
#define W_Q8_0
#include "gemv.glsl"
