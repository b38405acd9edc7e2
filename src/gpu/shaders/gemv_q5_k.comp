#version 450
// GEMV with q5_k weights (gemv_k.glsl); activations as Q8_K.
#define W_Q5_K
#include "gemv_k.glsl"
