#version 450
// SwiGLU (swiglu.glsl) with the device exp.
#include "swiglu.glsl"
