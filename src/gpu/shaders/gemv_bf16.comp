#version 450
// GEMV with bf16 weights (gemv.glsl).
#define W_BF16
#include "gemv.glsl"
