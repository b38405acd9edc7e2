// y[r, row] = Σ_j W[row, j] · x[r, j]: one workgroup of 64 per (row, r); each lane sums
// a strided slice (elements, or 32-element blocks for quantised W), then a tree sum.
// Define one of W_F32, W_F16, W_BF16, W_Q8_0, W_Q4_0 before including.
// w: [n_out, n_in] of the type   x: [m, n_in] f32, or Q8_0 (quantize_q8_0.comp's layout)
// y: [m, n_out] f32
#include "common.glsl"
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_out; uint n_in; uint m; uint xd_offset; } p;
shared float red[WG];

void main() {
  uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= p.n_out) return;  // uniform over the workgroup
  uint r = gl_WorkGroupID.z;
  uint tid = gl_LocalInvocationID.x;
  float sum = 0.0;
#if defined(W_F32) || defined(W_F16) || defined(W_BF16)
  uint wbase = row * p.n_in, xbase = r * p.n_in;
  for (uint j = tid; j < p.n_in; j += WG) {
    uint e = wbase + j;
#if defined(W_F32)
    float wv = uintBitsToFloat(w[e]);
#elif defined(W_F16)
    float wv = f16_bits_to_f32((w[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
#else
    float wv = bf16_bits_to_f32((w[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
#endif
    precise float prod = wv * uintBitsToFloat(x[xbase + j]);
    sum += prod;
  }
#else
  uint nb = p.n_in / 32u;
  for (uint b = tid; b < nb; b += WG) {
    uint wb = row * nb + b, xb = r * nb + b;
    int isum = 0;
#if defined(W_Q8_0)
    uint base = wb * 34u;
    float dw = f16_bits_to_f32(HALF_AT(w, base));
    for (uint k = 0u; k < 8u; ++k) {
      uint xw = x[xb * 8u + k];
      for (uint i = 0u; i < 4u; ++i)
        isum += sext8(BYTE_AT(w, base + 2u + k * 4u + i)) * sext8((xw >> (8u * i)) & 0xffu);
    }
#else  // W_Q4_0: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j-16]
    uint base = wb * 18u;
    float dw = f16_bits_to_f32(HALF_AT(w, base));
    for (uint j = 0u; j < 16u; ++j) {
      uint q = BYTE_AT(w, base + 2u + j);
      uint xlo = (x[xb * 8u + (j >> 2)] >> (8u * (j & 3u))) & 0xffu;
      uint xhi = (x[xb * 8u + ((j + 16u) >> 2)] >> (8u * (j & 3u))) & 0xffu;
      isum += (int(q & 15u) - 8) * sext8(xlo) + (int(q >> 4) - 8) * sext8(xhi);
    }
#endif
    float dx = uintBitsToFloat(x[p.xd_offset + xb]);
    precise float term = (dw * dx) * float(isum);
    sum += term;
  }
#endif
  red[tid] = sum;
  REDUCE(red, tid, WG, op_add)
  if (tid == 0u) y[r * p.n_out + row] = red[0];
}
