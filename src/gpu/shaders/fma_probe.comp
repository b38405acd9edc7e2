#version 450
// Does this device's fma() round once? out[0] = fma(in[0], in[1], in[2]); the host
// picks inputs whose fused and unfused results differ (kernels.cc FusedFma).
layout(local_size_x = 1) in;
layout(std430, binding = 0) buffer B { float v[]; };
void main() { v[3] = fma(v[0], v[1], v[2]); }
