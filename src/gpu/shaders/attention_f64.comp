#version 450
// Paged attention (attention.glsl) with fma emulated in f64 (devices whose fma() is not fused).
#define FMA_F64
#include "attention.glsl"
