#version 450
// GEMV with q4_0 weights (gemv.glsl).
#define W_Q4_0
#include "gemv.glsl"
