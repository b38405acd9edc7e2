// Tiled y[m, n_out] = x[m, n_in] · Wᵀ for K-quant weights (Q4_K, Q5_K, Q6_K) times Q8_K
// activations (prefill): tiles of 8 weight rows × 8 activation rows as gemm.glsl, staged
// one 32-element sub-block at a time (each row's unpacked q values and the activation
// rows' q values in shared memory), the per-super-block scales, mins and bsums beside.
// Each invocation computes one output with the 8 int32 lane sums and 8 f32 lane
// accumulators of gemv_k.glsl, in the same order, so the result is the GEMV's (and
// MatMulGemv's) bit for bit. Define W_Q4_K, W_Q5_K or W_Q6_K before including.
// w: [n_out, n_in] of the type   x: Q8_K (quantize_q8_k.comp)   y: [m, n_out] f32
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#if defined(W_Q4_K) || defined(W_Q5_K)
#define W_Q45_K  // Q4_K and Q5_K share scales, mins and nibbles; Q5_K adds a fifth bit
#endif
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
#include "kquant.glsl"
layout(std430, binding = 1) readonly buffer X { uint x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_out; uint n_in; uint m; uint xd_offset; uint xs_offset; } p;

shared int wq[8][33];    // this sub-block's q values of the 8 weight rows
shared int xq[8][33];    // this sub-block's q values of the 8 activation rows
shared int wsc[8][16];   // Q4_K/Q5_K: scales [0..8) and mins [8..16) per sub-block; Q6_K: the 16 scales
shared float wd[8], wdmin[8];
shared int xbs[8][16];   // activation bsums per 16
shared float xd[8];

void main() {
  uint tid = gl_LocalInvocationID.x;
  uint rloc = tid & 7u, mloc = tid >> 3;
  uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 8u;
  uint r0 = gl_WorkGroupID.z * 8u;
  uint row = row0 + rloc, r = r0 + mloc;
  uint nb = p.n_in / 256u;
  float acc[8];
  [[unroll]] for (uint k = 0u; k < 8u; ++k) acc[k] = 0.0;
  float mins = 0.0;
  // Staging roles: invocation t handles weight row / activation row t/8, part t%8.
  uint tr = tid >> 3, part = tid & 7u;
  uint wrow = row0 + tr, xrow = r0 + tr;
  bool w_ok = wrow < p.n_out, x_ok = xrow < p.m;
  for (uint b = 0u; b < nb; ++b) {
    uint wb = wrow * nb + b, xb = xrow * nb + b;
    barrier();
    // Per super-block: scales (and mins), d, dmin of the weight rows; d, bsums of x.
#if defined(W_Q45_K)
#if defined(W_Q5_K)
    uint base = wb * 176u;  // d, dmin, scales[12], qh[32], qs[128]
    const uint qs0 = 48u;
#else
    uint base = wb * 144u;  // d, dmin, scales[12], qs[128]
    const uint qs0 = 16u;
#endif
    {
      const uint s = part;
      const uvec2 scale_min = w_ok ? unpack_scale_min_k4(base, s) : uvec2(0u);
      wsc[tr][s] = int(scale_min.x);
      wsc[tr][8u + s] = int(scale_min.y);
    }
    if (part == 0u) {
      wd[tr] = w_ok ? f16_bits_to_f32(HALF_AT(w, base)) : 0.0;
      wdmin[tr] = w_ok ? f16_bits_to_f32(HALF_AT(w, base + 2u)) : 0.0;
    }
#else
    uint base = wb * 210u;
    wsc[tr][2u * part] = w_ok ? sext8(BYTE_AT(w, base + 192u + 2u * part)) : 0;
    wsc[tr][2u * part + 1u] = w_ok ? sext8(BYTE_AT(w, base + 193u + 2u * part)) : 0;
    if (part == 0u) wd[tr] = w_ok ? f16_bits_to_f32(HALF_AT(w, base + 208u)) : 0.0;
#endif
    xbs[tr][2u * part] = x_ok ? int(x[p.xs_offset + xb * 16u + 2u * part]) : 0;
    xbs[tr][2u * part + 1u] = x_ok ? int(x[p.xs_offset + xb * 16u + 2u * part + 1u]) : 0;
    if (part == 0u) xd[tr] = x_ok ? uintBitsToFloat(x[p.xd_offset + xb]) : 0.0;
    int isum[8];
    [[unroll]] for (uint k = 0u; k < 8u; ++k) isum[k] = 0;
    for (uint s = 0u; s < 8u; ++s) {  // 32-element sub-blocks (Q6_K: groups g = s)
      barrier();
      // Invocation t stages elements 4·part .. +3 of sub-block s of weight row tr and
      // of activation row tr.
      uint xw = x_ok ? x[xb * 64u + s * 8u + part] : 0u;
      for (uint i = 0u; i < 4u; ++i) {
        uint e = part * 4u + i;
        xq[tr][e] = sext8((xw >> (8u * i)) & 0xffu);
#if defined(W_Q45_K)
        uint byte = w_ok ? BYTE_AT(w, base + qs0 + 32u * (s >> 1) + e) : 0u;
        uint q = (s & 1u) != 0u ? (byte >> 4) : (byte & 15u);
#if defined(W_Q5_K)
        if (w_ok) q |= ((BYTE_AT(w, base + 16u + e) >> s) & 1u) << 4;  // bit s of qh[e]
#endif
        wq[tr][e] = int(q);
#else
        uint half_ = s >> 2, k = s & 3u;
        uint q = 0u;
        if (w_ok) {
          uint lb = BYTE_AT(w, base + 64u * half_ + 32u * (k & 1u) + e);
          uint nib = k < 2u ? (lb & 15u) : (lb >> 4);
          uint hb = BYTE_AT(w, base + 128u + 32u * half_ + e);
          q = nib | (((hb >> (2u * k)) & 3u) << 4);
        }
        wq[tr][e] = int(q);
#endif
      }
      barrier();
      [[unroll]] for (uint k = 0u; k < 8u; ++k) {
        int sub = 0;
        [[unroll]] for (uint i = 0u; i < 4u; ++i) sub += wq[rloc][4u * k + i] * xq[mloc][4u * k + i];
#if defined(W_Q45_K)
        isum[k] += wsc[rloc][s] * sub;
#else
        isum[k] += wsc[rloc][2u * s + (k >= 4u ? 1u : 0u)] * sub;
#endif
      }
    }
#if defined(W_Q45_K)
    int msum = 0;
    for (uint s = 0u; s < 8u; ++s) msum += wsc[rloc][8u + s] * (xbs[mloc][2u * s] + xbs[mloc][2u * s + 1u]);
    precise float dm = wdmin[rloc] * xd[mloc];
    precise float mt = dm * float(msum);
    precise float nm = mins + mt;
    mins = nm;
#else
    int corr = 0;
    for (uint g = 0u; g < 16u; ++g) corr += wsc[rloc][g] * xbs[mloc][g];
    isum[0] -= 32 * corr;
#endif
    precise float dd = wd[rloc] * xd[mloc];
    [[unroll]] for (uint k = 0u; k < 8u; ++k) acc[k] = ffma(dd, float(isum[k]), acc[k]);
  }
  if (row >= p.n_out || r >= p.m) return;
  precise float s0 = acc[0] + acc[4];
  precise float s1 = acc[1] + acc[5];
  precise float s2 = acc[2] + acc[6];
  precise float s3 = acc[3] + acc[7];
  precise float t0 = s0 + s2;
  precise float t1 = s1 + s3;
  precise float total = t0 + t1;
#if defined(W_Q45_K)
  precise float with_mins = total - mins;
  total = with_mins;
#endif
  y[r * p.n_out + row] = total;
}
