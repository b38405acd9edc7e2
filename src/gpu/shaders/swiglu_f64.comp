#version 450
// SwiGLU (swiglu.glsl) with exp from f64 (correctly rounded).
#define EXP_F64
#include "swiglu.glsl"
