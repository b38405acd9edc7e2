#version 450
// GEMV with q4_1 weights (gemv.glsl); activations as Q8_1.
#define W_Q4_1
#include "gemv.glsl"
