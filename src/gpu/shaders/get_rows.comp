#version 450
// out[i, :] = table[ids[i], :] widened to f32 (ids checked on the host).
// table: [n_table_rows, dim] of dtype (0 f32, 1 f16, 2 bf16)   ids: [n_ids]   out: [n_ids, dim]
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer T { uint table[]; };
layout(std430, binding = 1) readonly buffer I { int ids[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n_ids; uint dim; uint dtype; } p;

void main() {
  uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (idx >= p.n_ids * p.dim) return;
  uint i = idx / p.dim, d = idx % p.dim;
  uint e = uint(ids[i]) * p.dim + d;
  float v;
  if (p.dtype == 0u) v = uintBitsToFloat(table[e]);
  else if (p.dtype == 1u) v = f16_bits_to_f32((table[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
  else v = bf16_bits_to_f32((table[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
  o[idx] = v;
}
