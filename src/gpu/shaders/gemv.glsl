// y[r, row] = Σ_j W[row, j] · x[r, j], in the CPU kernel's summation order (below), so
// that the result is its bit for bit where fma() is fused (or FMA_F64 emulates it).
// Define one of W_F32, W_F16, W_BF16, W_Q8_0, W_Q4_0, W_Q4_1, W_Q5_0, W_Q5_1 before including
// (quantised: and INT_DOT for the integer-dot-product variant, each lane's 4 products of a
// block by one OpSDot: the same integers, so the same result bit for bit).
// w: [n_out, n_in] of the type   x: [m, n_in] f32, or Q8_0 (quantize_q8_0.comp's layout)
// y: [m, n_out] f32
#if defined(INT_DOT)
#extension GL_EXT_spirv_intrinsics : require
#endif
#include "common.glsl"
#if defined(W_Q4_1) || defined(W_Q5_1)
#define W_OFFSETS  // value = d·q + m: the m_w·s_x terms are summed apart
#endif
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_out; uint n_in; uint m; uint xd_offset; uint xs_offset; } p;
shared float red[WG];

#if defined(W_F32) || defined(W_F16) || defined(W_BF16)
float wload(uint e) {
#if defined(W_F32)
  return uintBitsToFloat(w[e]);
#elif defined(W_F16)
  return f16_bits_to_f32((w[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
#else
  return bf16_bits_to_f32((w[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
#endif
}
// Float weights, in the CPU's order (tensor/vec_dot.cc DotFloat): 16 lanes per row and two
// accumulators per lane, acc0 for elements 32c + l, acc1 for 32c + 16 + l, fma in c order;
// the tail (n mod 32) in steps of 16 into acc0; then acc0 + acc1 per lane and
// simd::ReduceAdd's order ((l, l+8), (i, i+4), (0,2) + (1,3)). 4 rows per workgroup.
void main() {
  uint tid = gl_LocalInvocationID.x;
  uint lane = tid & 15u, rloc = tid >> 4;
  uint row = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 4u + rloc;
  uint r = gl_WorkGroupID.z;
  bool row_ok = row < p.n_out;
  float acc0 = 0.0, acc1 = 0.0;
  if (row_ok) {
    uint wbase = row * p.n_in, xbase = r * p.n_in;
    uint j = 0u;
    for (; j + 32u <= p.n_in; j += 32u) {
      acc0 = ffma(wload(wbase + j + lane), uintBitsToFloat(x[xbase + j + lane]), acc0);
      acc1 = ffma(wload(wbase + j + 16u + lane), uintBitsToFloat(x[xbase + j + 16u + lane]), acc1);
    }
    for (; j < p.n_in; j += 16u)
      if (j + lane < p.n_in) acc0 = ffma(wload(wbase + j + lane), uintBitsToFloat(x[xbase + j + lane]), acc0);
  }
  precise float v = acc0 + acc1;
  red[tid] = v;
  barrier();
  if (row_ok && lane == 0u) {
    uint o = rloc * 16u;
    precise float u0 = red[o] + red[o + 8u], u1 = red[o + 1u] + red[o + 9u], u2 = red[o + 2u] + red[o + 10u],
                  u3 = red[o + 3u] + red[o + 11u], u4 = red[o + 4u] + red[o + 12u], u5 = red[o + 5u] + red[o + 13u],
                  u6 = red[o + 6u] + red[o + 14u], u7 = red[o + 7u] + red[o + 15u];
    precise float s0 = u0 + u4, s1 = u1 + u5, s2 = u2 + u6, s3 = u3 + u7;
    precise float t0 = s0 + s2, t1 = s1 + s3;
    precise float total = t0 + t1;
    y[r * p.n_out + row] = total;
  }
}
#else
// Quantised weights, in the CPU's order (tensor/vec_dot.cc BlockLoop, llama.cpp's
// AVX2 order): 8 lanes per row, lane k holding elements 4k..4k+3 of every block; each
// lane folds the blocks in order, acc = fma(d_w·d_x, isum_k, acc); the 8 lanes are
// summed as simd::ReduceAdd does ((k, k+4) pairs, then (0,2)+(1,3)); Q4_1's/Q5_1's m_w·s_x
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
#if defined(INT_DOT)
      uint off = base + 2u + lane * 4u;  // even: the 4 bytes are one word or two half words
      uint wp = (off & 2u) == 0u ? w[off >> 2] : ((w[off >> 2] >> 16) | (w[(off >> 2) + 1u] << 16));
      isum = DOT4x8(wp, xw);
#else
      for (uint i = 0u; i < 4u; ++i)
        isum += sext8(BYTE_AT(w, base + 2u + lane * 4u + i)) * sext8((xw >> (8u * i)) & 0xffu);
#endif
#else
#if defined(W_Q4_1)
      uint base = wb * 20u;  // d, m, qs[16]; value = d·q + m
      const uint qs0 = 4u;
      const int zero = 0;
#elif defined(W_Q5_0)
      uint base = wb * 22u;  // d, qh[4], qs[16]; value = d·(q - 16)
      const uint qs0 = 6u, qh0 = 2u;
      const int zero = 16;
#elif defined(W_Q5_1)
      uint base = wb * 24u;  // d, m, qh[4], qs[16]; value = d·q + m
      const uint qs0 = 8u, qh0 = 4u;
      const int zero = 0;
#else
      uint base = wb * 18u;  // d, qs[16]; value = d·(q - 8)
      const uint qs0 = 2u;
      const int zero = 8;
#endif
      float dw = f16_bits_to_f32(HALF_AT(w, base));
      uint wp = 0u;  // INT_DOT: the four values q - zero as packed int8
      for (uint i = 0u; i < 4u; ++i) {
        uint e = lane * 4u + i;  // element j < 16: low nibble of qs[j]; j >= 16: high nibble of qs[j-16]
        uint q = e < 16u ? (BYTE_AT(w, base + qs0 + e) & 15u) : (BYTE_AT(w, base + qs0 + e - 16u) >> 4);
#if defined(W_Q5_0) || defined(W_Q5_1)
        q |= ((BYTE_AT(w, base + qh0 + (e >> 3u)) >> (e & 7u)) & 1u) << 4;  // Q5: bit e of qh
#endif
#if defined(INT_DOT)
        wp |= (uint(int(q) - zero) & 0xffu) << (8u * i);
#else
        isum += (int(q) - zero) * sext8((xw >> (8u * i)) & 0xffu);
#endif
      }
#if defined(INT_DOT)
      isum = DOT4x8(wp, xw);
#endif
#endif
      float dx = uintBitsToFloat(x[p.xd_offset + xb]);
      precise float dd = dw * dx;
      acc = ffma(dd, float(isum), acc);
#if defined(W_OFFSETS)
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
#if defined(W_OFFSETS)
    precise float with_offsets = total + offsets;
    total = with_offsets;
#endif
    y[r * p.n_out + row] = total;
  }
}
#endif
