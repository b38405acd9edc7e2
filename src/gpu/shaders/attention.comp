#version 450
// Paged attention (attention.glsl) with the device fma.
#include "attention.glsl"
