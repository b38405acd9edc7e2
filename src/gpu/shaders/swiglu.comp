#version 450
// out = g / (1 + exp(-g)) · u.   gate, up, out: [n]
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
  uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (i >= p.n) return;
  float gv = g[i];
  precise float v = gv / (1.0 + exp(-gv)) * u[i];
  o[i] = v;
}
