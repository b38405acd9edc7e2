#version 450
// out = a + b, b repeated every b_n elements: the residual add (b_n = n) and a bias added
// to every row of a [n / b_n, b_n] matrix (b_n = the row length).
// a, out: [n]   b: [b_n] (out may be a or b)
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n; uint b_n; } p;

void main() {
  uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (i >= p.n) return;
  precise float v = a[i] + b[i % p.b_n];
  o[i] = v;
}
