#version 450
// Activations → Q8_0/Q8_1 blocks, as tensor/quantize_act.cc's QuantBlock32Ref:
// d = amax/127 (stored rounded to f16), q = roundEven(x · 127/amax), and Q8_1's
// s = f16(d · Σq) with the unrounded d.
// x: [n_blocks·32] f32   xq: [n_blocks·8] words of packed int8, then [n_blocks] f32 d,
// then [n_blocks] f32 s
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ { uint xq[]; };
layout(push_constant) uniform P { uint n_blocks; uint d_offset; uint s_offset; } p;

void main() {
  uint b = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (b >= p.n_blocks) return;
  float amax = 0.0;
  for (uint j = 0u; j < 32u; ++j) amax = max(amax, abs(x[b * 32u + j]));
  float d = amax / 127.0;
  float id = amax != 0.0 ? 127.0 / amax : 0.0;
  int qsum = 0;
  for (uint w = 0u; w < 8u; ++w) {
    uint word = 0u;
    for (uint k = 0u; k < 4u; ++k) {
      precise float v = x[b * 32u + w * 4u + k] * id;
      int q = int(roundEven(v));
      qsum += q;
      word |= (uint(q) & 0xffu) << (8u * k);
    }
    xq[b * 8u + w] = word;
  }
  xq[p.d_offset + b] = floatBitsToUint(f16_round(d));
  precise float sd = d * float(qsum);
  xq[p.s_offset + b] = floatBitsToUint(f16_round(sd));
}
