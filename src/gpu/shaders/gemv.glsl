// y[r, row] = Σ_j W[row, j] · x[r, j]. Float W: one workgroup of 64 per (row, r), each
// lane sums a strided slice, then a tree sum. Quantised W: the CPU's summation order
// (below), so that the result is the CPU kernel's bit for bit where fma() is fused.
// Define one of W_F32, W_F16, W_BF16, W_Q8_0, W_Q4_0, W_Q4_1 before including.
// w: [n_out, n_in] of the type   x: [m, n_in] f32, or Q8_0 (quantize_q8_0.comp's layout)
// y: [m, n_out] f32
#include "common.glsl"
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_out; uint n_in; uint m; uint xd_offset; uint xs_offset; } p;
shared float red[WG];

#if defined(W_F32) || defined(W_F16) || defined(W_BF16)
void main() {
  uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= p.n_out) return;  // uniform over the workgroup
  uint r = gl_WorkGroupID.z;
  uint tid = gl_LocalInvocationID.x;
  float sum = 0.0;
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
  red[tid] = sum;
  REDUCE(red, tid, WG, op_add)
  if (tid == 0u) y[r * p.n_out + row] = red[0];
}
#else
// Quantised weights, in the CPU's order (tensor/vec_dot.cc BlockLoop, llama.cpp's
// AVX2 order): 8 lanes per row, lane k holding elements 4k..4k+3 of every block; each
// lane folds the blocks in order, acc = fma(d_w·d_x, isum_k, acc); the 8 lanes are
// summed as simd::ReduceAdd does ((k, k+4) pairs, then (0,2)+(1,3)); Q4_1's m_w·s_x
// terms are summed apart, block by block, and added last. 8 rows per workgroup.
void main() {
  uint tid = gl_LocalInvocationID.x;
  uint lane = tid & 7u, rloc = tid >> 3;
  uint row = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 8u + rloc;
  uint r = gl_WorkGroupID.z;
  bool row_ok = row < p.n_out;
  uint nb = p.n_in / 32u;
  float acc = 0.0;
  float offsets = 0.0;
  if (row_ok) {
    for (uint b = 0u; b < nb; ++b) {
      uint wb = row * nb + b, xb = r * nb + b;
      uint xw = x[xb * 8u + lane];  // activation elements 4·lane .. 4·lane+3
      int isum = 0;
#if defined(W_Q8_0)
      uint base = wb * 34u;
      float dw = f16_bits_to_f32(HALF_AT(w, base));
      for (uint i = 0u; i < 4u; ++i)
        isum += sext8(BYTE_AT(w, base + 2u + lane * 4u + i)) * sext8((xw >> (8u * i)) & 0xffu);
#else
#if defined(W_Q4_1)
      uint base = wb * 20u;  // d, m, qs[16]; value = d·q + m
      const uint qs0 = 4u;
      const int zero = 0;
#else
      uint base = wb * 18u;  // d, qs[16]; value = d·(q - 8)
      const uint qs0 = 2u;
      const int zero = 8;
#endif
      float dw = f16_bits_to_f32(HALF_AT(w, base));
      for (uint i = 0u; i < 4u; ++i) {
        uint e = lane * 4u + i;  // element j < 16: low nibble of qs[j]; j >= 16: high nibble of qs[j-16]
        uint q = e < 16u ? (BYTE_AT(w, base + qs0 + e) & 15u) : (BYTE_AT(w, base + qs0 + e - 16u) >> 4);
        isum += (int(q) - zero) * sext8((xw >> (8u * i)) & 0xffu);
      }
#endif
      float dx = uintBitsToFloat(x[p.xd_offset + xb]);
      precise float dd = dw * dx;
#if defined(FMA_F64)
      // fma(dd, isum, acc) rounded once, as a fused fma: the product is exact in f64, the
      // sum rounds to f64 and then to f32 (a double rounding that differs from one
      // rounding only when the f64 sum lands exactly on an f32 tie).
      acc = float(double(dd) * double(isum) + double(acc));
#else
      acc = fma(dd, float(isum), acc);
#endif
#if defined(W_Q4_1)
      precise float mo = f16_bits_to_f32(HALF_AT(w, base + 2u)) * uintBitsToFloat(x[p.xs_offset + xb]);
      precise float no = offsets + mo;
      offsets = no;
#endif
    }
  }
  red[tid] = acc;
  barrier();
  if (row_ok && lane == 0u) {
    uint o = rloc * 8u;
    precise float s0 = red[o] + red[o + 4u];
    precise float s1 = red[o + 1u] + red[o + 5u];
    precise float s2 = red[o + 2u] + red[o + 6u];
    precise float s3 = red[o + 3u] + red[o + 7u];
    precise float t0 = s0 + s2;
    precise float t1 = s1 + s3;
    precise float total = t0 + t1;
#if defined(W_Q4_1)
    precise float with_offsets = total + offsets;
    total = with_offsets;
#endif
    y[r * p.n_out + row] = total;
  }
}
#endif
