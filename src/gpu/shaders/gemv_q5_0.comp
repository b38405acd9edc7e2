#version 450
// GEMV with q5_0 weights (gemv.glsl).
#define W_Q5_0
#include "gemv.glsl"
