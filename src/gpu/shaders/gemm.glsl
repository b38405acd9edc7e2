// Tiled y[m, n_out] = x[m, n_in] · Wᵀ for prefill: one workgroup computes a tile of 8
// weight rows × 8 activation rows, staging each 32-element chunk of both (quantised:
// each block's integer values and scales) in shared memory, so a weight is read from
// memory once per 8 activation rows instead of once per row.
//
// Every output is summed in exactly the order of the GEMV (gemv.glsl, i.e. the CPU's
// MatMulGemv): float weights in DotFloat's 16 lanes × 2 accumulators, quantised ones in
// llama.cpp's 8 lanes of 4 elements per block; only the lanes live in one invocation's
// registers instead of in 16 (8) invocations. So the tile result is MatMulGemv's, row by
// row, bit for bit (with a fused fma or FMA_F64).
// Define one of W_F32, W_F16, W_BF16, W_Q8_0, W_Q4_0, W_Q4_1, W_Q5_0, W_Q5_1 before including.
// w: [n_out, n_in] of the type   x: [m, n_in] f32, or Q8_0/Q8_1 (quantize_q8_0.comp)
// y: [m, n_out] f32
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#if defined(W_Q4_1) || defined(W_Q5_1)
#define W_OFFSETS  // value = d·q + m: the m_w·s_x terms are summed apart
#endif
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_out; uint n_in; uint m; uint xd_offset; uint xs_offset; } p;

#if defined(W_F32) || defined(W_F16) || defined(W_BF16)
shared float ws[8][33];
shared float xs[8][33];
float wload(uint e) {
#if defined(W_F32)
  return uintBitsToFloat(w[e]);
#elif defined(W_F16)
  return f16_bits_to_f32((w[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
#else
  return bf16_bits_to_f32((w[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu);
#endif
}
void main() {
  uint tid = gl_LocalInvocationID.x;
  uint rloc = tid & 7u, mloc = tid >> 3;
  uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 8u;
  uint r0 = gl_WorkGroupID.z * 8u;
  uint row = row0 + rloc, r = r0 + mloc;
  float acc0[16], acc1[16];
  [[unroll]] for (uint l = 0u; l < 16u; ++l) { acc0[l] = 0.0; acc1[l] = 0.0; }
  for (uint j = 0u; j < p.n_in; j += 32u) {
    // Stage the chunk: 8 rows × 32 of W and of x, 4 elements each per invocation.
    barrier();
    for (uint i = 0u; i < 4u; ++i) {
      uint e = tid * 4u + i, tr = e >> 5, c = e & 31u;
      bool in_k = j + c < p.n_in;
      ws[tr][c] = (in_k && row0 + tr < p.n_out) ? wload((row0 + tr) * p.n_in + j + c) : 0.0;
      xs[tr][c] = (in_k && r0 + tr < p.m) ? uintBitsToFloat(x[(r0 + tr) * p.n_in + j + c]) : 0.0;
    }
    barrier();
    if (j + 32u <= p.n_in) {
      [[unroll]] for (uint l = 0u; l < 16u; ++l) {
        acc0[l] = ffma(ws[rloc][l], xs[mloc][l], acc0[l]);
        acc1[l] = ffma(ws[rloc][16u + l], xs[mloc][16u + l], acc1[l]);
      }
    } else {  // the tail, in steps of 16 into acc0 (DotFloat's masked loop)
      uint left = p.n_in - j;
      [[unroll]] for (uint l = 0u; l < 16u; ++l)
        if (l < left) acc0[l] = ffma(ws[rloc][l], xs[mloc][l], acc0[l]);
      [[unroll]] for (uint l = 0u; l < 16u; ++l)
        if (16u + l < left) acc0[l] = ffma(ws[rloc][16u + l], xs[mloc][16u + l], acc0[l]);
    }
  }
  if (row >= p.n_out || r >= p.m) return;
  precise float v[16];
  [[unroll]] for (uint l = 0u; l < 16u; ++l) v[l] = acc0[l] + acc1[l];
  precise float u[8];
  [[unroll]] for (uint l = 0u; l < 8u; ++l) u[l] = v[l] + v[l + 8u];
  precise float s0 = u[0] + u[4], s1 = u[1] + u[5], s2 = u[2] + u[6], s3 = u[3] + u[7];
  precise float t0 = s0 + s2, t1 = s1 + s3;
  precise float total = t0 + t1;
  y[r * p.n_out + row] = total;
}
#else
// Quantised: per 32-element block, the 8 weight rows' integer values (q − 8 for Q4_0, q − 16 for Q5_0,
// q for Q4_1 and Q8_0) and scales, and the 8 activation rows' q and d (and Q8_1's s).
shared int wq[8][33];
shared float wd[8];
shared float wm[8];
shared int xq[8][33];
shared float xd[8];
shared float xsum[8];
void main() {
  uint tid = gl_LocalInvocationID.x;
  uint rloc = tid & 7u, mloc = tid >> 3;
  uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 8u;
  uint r0 = gl_WorkGroupID.z * 8u;
  uint row = row0 + rloc, r = r0 + mloc;
  uint nb = p.n_in / 32u;
  float acc[8];
  [[unroll]] for (uint k = 0u; k < 8u; ++k) acc[k] = 0.0;
  float offsets = 0.0;
  for (uint b = 0u; b < nb; ++b) {
    barrier();
    // Invocation t stages elements 4·(t%8) .. +3 of weight row t/8 and of activation row t/8.
    uint tr = tid >> 3, c0 = (tid & 7u) * 4u;
    uint wrow = row0 + tr;
    bool w_ok = wrow < p.n_out;
    uint wb = wrow * nb + b;
#if defined(W_Q8_0)
    uint base = wb * 34u;
    for (uint i = 0u; i < 4u; ++i) wq[tr][c0 + i] = w_ok ? sext8(BYTE_AT(w, base + 2u + c0 + i)) : 0;
    if ((tid & 7u) == 0u) wd[tr] = w_ok ? f16_bits_to_f32(HALF_AT(w, base)) : 0.0;
#else
#if defined(W_Q4_1)
    uint base = wb * 20u;
    const uint qs0 = 4u;
    const int zero = 0;
#elif defined(W_Q5_0)
    uint base = wb * 22u;
    const uint qs0 = 6u, qh0 = 2u;
    const int zero = 16;
#elif defined(W_Q5_1)
    uint base = wb * 24u;
    const uint qs0 = 8u, qh0 = 4u;
    const int zero = 0;
#else
    uint base = wb * 18u;
    const uint qs0 = 2u;
    const int zero = 8;
#endif
    for (uint i = 0u; i < 4u; ++i) {
      uint e = c0 + i;
      uint q = 0u;
      if (w_ok) {
        q = e < 16u ? (BYTE_AT(w, base + qs0 + e) & 15u) : (BYTE_AT(w, base + qs0 + e - 16u) >> 4);
#if defined(W_Q5_0) || defined(W_Q5_1)
        q |= ((BYTE_AT(w, base + qh0 + (e >> 3u)) >> (e & 7u)) & 1u) << 4;  // Q5: bit e of qh
#endif
      }
      wq[tr][e] = w_ok ? int(q) - zero : 0;
    }
    if ((tid & 7u) == 0u) {
      wd[tr] = w_ok ? f16_bits_to_f32(HALF_AT(w, base)) : 0.0;
#if defined(W_OFFSETS)
      wm[tr] = w_ok ? f16_bits_to_f32(HALF_AT(w, base + 2u)) : 0.0;
#endif
    }
#endif
    uint xrow = r0 + tr;
    bool x_ok = xrow < p.m;
    uint xb = xrow * nb + b;
    uint xw = x_ok ? x[xb * 8u + (tid & 7u)] : 0u;
    for (uint i = 0u; i < 4u; ++i) xq[tr][c0 + i] = sext8((xw >> (8u * i)) & 0xffu);
    if ((tid & 7u) == 0u) {
      xd[tr] = x_ok ? uintBitsToFloat(x[p.xd_offset + xb]) : 0.0;
#if defined(W_OFFSETS)
      xsum[tr] = x_ok ? uintBitsToFloat(x[p.xs_offset + xb]) : 0.0;
#endif
    }
    barrier();
    precise float dd = wd[rloc] * xd[mloc];
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
      int isum = 0;
      [[unroll]] for (uint i = 0u; i < 4u; ++i) isum += wq[rloc][4u * k + i] * xq[mloc][4u * k + i];
      acc[k] = ffma(dd, float(isum), acc[k]);
    }
#if defined(W_OFFSETS)
    precise float mo = wm[rloc] * xsum[mloc];
    precise float no = offsets + mo;
    offsets = no;
#endif
  }
  if (row >= p.n_out || r >= p.m) return;
  precise float s0 = acc[0] + acc[4];
  precise float s1 = acc[1] + acc[5];
  precise float s2 = acc[2] + acc[6];
  precise float s3 = acc[3] + acc[7];
  precise float t0 = s0 + s2;
  precise float t1 = s1 + s3;
  precise float total = t0 + t1;
#if defined(W_OFFSETS)
  precise float with_offsets = total + offsets;
  total = with_offsets;
#endif
  y[r * p.n_out + row] = total;
}
#endif
