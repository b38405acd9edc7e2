#version 450
// GEMV with q5_1 weights (gemv.glsl); activations as Q8_1.
#define W_Q5_1
#include "gemv.glsl"
