// y[r, row] = Σ_j W[row, j] · x[r, j] for K-quant weights (Q4_K, Q5_K, Q6_K: super-blocks of
// 256) times Q8_K activations, in the CPU kernel's order (tensor/vec_dot.cc DotQ45_K /
// DotQ6_K), so that the result is its bit for bit where fma() is fused (or FMA_F64
// emulates it). Define W_Q4_K, W_Q5_K or W_Q6_K before including (and INT_DOT for the
// integer-dot-product variant: each lane's 4 products by one OpSDot, same integers).
//
// 8 lanes per row: lane k holds elements 4k..4k+3 of every 32-element sub-block (as the
// CPU's 8 int32 lanes after its 512→256 fold), times the sub-block's (Q6_K: the
// 16-element group's) scale, summed exactly in int32; per super-block the lane does
// acc = fma(d_w·d_x, float(isum_k), acc), blocks in order. The 8 lanes are summed as
// simd::ReduceAdd does. Q4_K/Q5_K: the min terms (dmin·d_x)·Σ m·bsum are summed apart, block
// by block, and subtracted last. Q6_K: lane 0 carries −32·Σ scale·bsum (its q − 32).
// w: [n_out, n_in] of the type   x: Q8_K (quantize_q8_k.comp's layout: packed q words,
// then d at xd_offset, then bsums per 16 at xs_offset)   y: [m, n_out] f32
#if defined(INT_DOT)
#extension GL_EXT_spirv_intrinsics : require
#endif
#include "common.glsl"
#if defined(W_Q4_K) || defined(W_Q5_K)
#define W_Q45_K  // Q4_K and Q5_K share scales, mins and nibbles; Q5_K adds a fifth bit
#endif
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
#include "kquant.glsl"
layout(std430, binding = 1) readonly buffer X { uint x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_out; uint n_in; uint m; uint xd_offset; uint xs_offset; } p;
shared float red[WG];

void main() {
  uint tid = gl_LocalInvocationID.x;
  uint lane = tid & 7u, rloc = tid >> 3;
  uint row = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 8u + rloc;
  uint r = gl_WorkGroupID.z;
  bool row_ok = row < p.n_out;
  uint nb = p.n_in / 256u;
  float acc = 0.0;
  float mins = 0.0;
  if (row_ok) {
    for (uint b = 0u; b < nb; ++b) {
      uint wb = row * nb + b, xb = r * nb + b;
      float dx = uintBitsToFloat(x[p.xd_offset + xb]);
      uint xs = p.xs_offset + xb * 16u;
      int isum = 0;
#if defined(W_Q45_K)
#if defined(W_Q5_K)
      uint base = wb * 176u;  // d, dmin, scales[12], qh[32], qs[128]
      const uint qs0 = 48u;
#else
      uint base = wb * 144u;  // d, dmin, scales[12], qs[128]
      const uint qs0 = 16u;
#endif
      float dw = f16_bits_to_f32(HALF_AT(w, base));
      float dmin = f16_bits_to_f32(HALF_AT(w, base + 2u));
      int msum = 0;
      for (uint s = 0u; s < 8u; ++s) {
        const uvec2 scale_min = unpack_scale_min_k4(base, s);
        const uint sc = scale_min.x, mn = scale_min.y;
        // Sub-block s: qs bytes 32·(s/2) .. +31, low nibbles for even s, high for odd.
        uint xw = x[xb * 64u + s * 8u + lane];
        int sub = 0;
        uint wp = 0u;  // INT_DOT: the four q (≤ 31) as packed int8
        for (uint i = 0u; i < 4u; ++i) {
          uint byte = BYTE_AT(w, base + qs0 + 32u * (s >> 1) + lane * 4u + i);
          uint q = (s & 1u) != 0u ? (byte >> 4) : (byte & 15u);
#if defined(W_Q5_K)
          q |= ((BYTE_AT(w, base + 16u + lane * 4u + i) >> s) & 1u) << 4;  // bit s of qh[l]
#endif
#if defined(INT_DOT)
          wp |= q << (8u * i);
#else
          sub += int(q) * sext8((xw >> (8u * i)) & 0xffu);
#endif
        }
#if defined(INT_DOT)
        sub = DOT4x8(wp, xw);
#endif
        isum += int(sc) * sub;
        msum += int(mn) * (int(x[xs + 2u * s]) + int(x[xs + 2u * s + 1u]));
      }
      precise float dm = dmin * dx;
      precise float mt = dm * float(msum);
      precise float nm = mins + mt;
      mins = nm;
#else  // W_Q6_K
      uint base = wb * 210u;  // ql[128], qh[64], scales[16] (int8), d
      float dw = f16_bits_to_f32(HALF_AT(w, base + 208u));
      for (uint g = 0u; g < 8u; ++g) {  // 32-element groups: half = g/4, k = g%4
        uint half_ = g >> 2, k = g & 3u;
        uint xw = x[xb * 64u + g * 8u + lane];
        int sc = sext8(BYTE_AT(w, base + 192u + 2u * g + (lane >= 4u ? 1u : 0u)));
        int sub = 0;
        uint wp = 0u;  // INT_DOT: the four q (≤ 63) as packed int8
        for (uint i = 0u; i < 4u; ++i) {
          uint bi = lane * 4u + i;  // byte 0..31 of the group
          uint lb = BYTE_AT(w, base + 64u * half_ + 32u * (k & 1u) + bi);
          uint nib = k < 2u ? (lb & 15u) : (lb >> 4);
          uint hb = BYTE_AT(w, base + 128u + 32u * half_ + bi);
          uint q = nib | (((hb >> (2u * k)) & 3u) << 4);
#if defined(INT_DOT)
          wp |= q << (8u * i);
#else
          sub += int(q) * sext8((xw >> (8u * i)) & 0xffu);
#endif
        }
#if defined(INT_DOT)
        sub = DOT4x8(wp, xw);
#endif
        isum += sc * sub;
      }
      if (lane == 0u) {
        int corr = 0;
        for (uint g = 0u; g < 16u; ++g) corr += sext8(BYTE_AT(w, base + 192u + g)) * int(x[xs + g]);
        isum -= 32 * corr;
      }
#endif
      precise float dd = dw * dx;
      acc = ffma(dd, float(isum), acc);
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
#if defined(W_Q45_K)
    precise float with_mins = total - mins;
    total = with_mins;
#endif
    y[r * p.n_out + row] = total;
  }
}
