#version 450
// RMSNorm (rms_norm.glsl), f32 tree sum: any device.
#include "rms_norm.glsl"
