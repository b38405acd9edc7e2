#version 450
// RMSNorm (rms_norm.glsl) in the CPU's numerics, with f64.
#define RMS_F64
#include "rms_norm.glsl"
