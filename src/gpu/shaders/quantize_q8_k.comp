#version 450
// Activations → Q8_K blocks of 256, as tensor/quantize_act.cc's QuantizeRowQ8_KRef:
// max = the x with the largest |x| (the first on ties), iscale = -127/max,
// q = min(127, roundEven(iscale·x)), d = 1/iscale (f32), bsums per 16 elements; an
// all-zero block is all zeros.
// x: [n_blocks·256] f32   xq: [n_blocks·64] words of packed int8, then [n_blocks] f32 d,
// then [n_blocks·16] int32 bsums
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ { uint xq[]; };
layout(push_constant) uniform P { uint n_blocks; uint d_offset; uint s_offset; } p;

void main() {
  uint b = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (b >= p.n_blocks) return;
  uint base = b * 256u;
  float amax = 0.0, mx = 0.0;
  for (uint j = 0u; j < 256u; ++j) {
    float ax = abs(x[base + j]);
    if (ax > amax) {
      amax = ax;
      mx = x[base + j];
    }
  }
  if (amax == 0.0) {
    for (uint w = 0u; w < 64u; ++w) xq[b * 64u + w] = 0u;
    xq[p.d_offset + b] = 0u;
    for (uint g = 0u; g < 16u; ++g) xq[p.s_offset + b * 16u + g] = 0u;
    return;
  }
  precise float iscale = -127.0 / mx;
  for (uint g = 0u; g < 16u; ++g) {
    int sum = 0;
    for (uint w = 0u; w < 4u; ++w) {
      uint word = 0u;
      for (uint k = 0u; k < 4u; ++k) {
        precise float v = iscale * x[base + g * 16u + w * 4u + k];
        int q = min(int(roundEven(v)), 127);
        sum += q;
        word |= (uint(q) & 0xffu) << (8u * k);
      }
      xq[b * 64u + g * 4u + w] = word;
    }
    xq[p.s_offset + b * 16u + g] = uint(sum);
  }
  precise float d = 1.0 / iscale;
  xq[p.d_offset + b] = floatBitsToUint(d);
}
