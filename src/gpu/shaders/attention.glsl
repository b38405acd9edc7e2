// Causal attention of one (query, head) per workgroup over KV pages with an online
// softmax, in the CPU kernel's order (tensor/attention.cc FoldItem, one row): per page,
// scores s_t = (Σ_j fma(q_j, k_tj)) · scale in j order; masked keys -inf; the page's
// max; p_t = Exp(s_t - new max) with simd::Exp's polynomial; Σp in 16 lanes (lane
// t mod 16, in t order) reduced as simd::ReduceAdd; sum = sum·c + Σp with c =
// Exp(old max - new max); acc_d = fma(p_t, v_td, acc_d·c) in t order; out = acc · (1/sum).
// With a fused fma (or FMA_F64) a decode row is the CPU's bit for bit, except with
// score soft-capping (GPU tanh).
// q: [n_q, n_head, head_dim]   pages: [n_pages] × (k_elem, v_elem, n_tokens, first_pos),
// then pos_q [n_q] at pos_offset   k, v: f32 or bf16 elements   out: [n_q, n_head·head_dim]
// state: [n_q, n_head, head_dim + 2] (max, sum, acc[head_dim]) of the online softmax, so
// that one query's pages can be folded in several dispatches (pages in host RAM staged in
// groups): state_mode bit 0 starts from the stored state instead of (-inf, 0, 0), bit 1
// stores the state instead of writing out. The state passes through f32 memory unchanged,
// so folding in groups is bit-identical to one dispatch over all pages.
#include "common.glsl"
#define WG 64u
#define MAX_PAGE 1024u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint kbuf[]; };
layout(std430, binding = 2) readonly buffer V { uint vbuf[]; };
layout(std430, binding = 3) readonly buffer Pg { uint pages[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) buffer St { float st[]; };
layout(push_constant) uniform P {
  uint n_q; uint n_head; uint n_kv_head; uint head_dim; uint n_pages; uint pos_offset; uint kv_bf16;
  float scale; int window; float softcap; uint state_mode;
} p;
shared float qv[256];
shared float pr[MAX_PAGE];
shared float red[WG];
shared float lanes[16];

float load_k(uint e) {
  return p.kv_bf16 != 0u ? bf16_bits_to_f32((kbuf[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu) : uintBitsToFloat(kbuf[e]);
}
float load_v(uint e) {
  return p.kv_bf16 != 0u ? bf16_bits_to_f32((vbuf[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu) : uintBitsToFloat(vbuf[e]);
}

// simd::Exp (tensor/simd_exp.h) operation for operation.
float exp_cpu(float x) {
  if (isnan(x)) return x;
  float xc = min(max(x, -104.0), 89.0);
  precise float t = xc * uintBitsToFloat(0x3fb8aa3bu);  // log2(e)
  float n = roundEven(t);
  float r = ffma(-n, uintBitsToFloat(0x3f318000u), xc);  // ln2, high part
  r = ffma(-n, uintBitsToFloat(0xb95e8083u), r);         // ln2, the rest
  float e = uintBitsToFloat(0x39500d01u);                // 1/5040
  e = ffma(e, r, uintBitsToFloat(0x3ab60b61u));          // 1/720
  e = ffma(e, r, uintBitsToFloat(0x3c088889u));          // 1/120
  e = ffma(e, r, uintBitsToFloat(0x3d2aaaabu));          // 1/24
  e = ffma(e, r, uintBitsToFloat(0x3e2aaaabu));          // 1/6
  e = ffma(e, r, 0.5);
  e = ffma(e, r, 1.0);
  e = ffma(e, r, 1.0);
  return ldexp(e, int(n));
}

void main() {
  const float NEG_INF = uintBitsToFloat(0xff800000u);
  uint h = gl_WorkGroupID.x, qi = gl_WorkGroupID.y;
  uint tid = gl_LocalInvocationID.x;
  uint g = h / (p.n_head / p.n_kv_head);
  uint hd = p.head_dim;
  for (uint d = tid; d < hd; d += WG) qv[d] = q[(qi * p.n_head + h) * hd + d];
  int pq = int(pages[p.pos_offset + qi]);
  float mx = NEG_INF, sum = 0.0;
  float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
  uint sb = (qi * p.n_head + h) * (hd + 2u);
  if ((p.state_mode & 1u) != 0u) {
    mx = st[sb];
    sum = st[sb + 1u];
    for (uint k = 0u; k < 4u; ++k)
      if (tid + k * WG < hd) acc[k] = st[sb + 2u + tid + k * WG];
  }
  barrier();
  for (uint pg = 0u; pg < p.n_pages; ++pg) {
    uint koff = pages[pg * 4u], voff = pages[pg * 4u + 1u], nt = pages[pg * 4u + 2u];
    int fp = int(pages[pg * 4u + 3u]);
    int nv = clamp(pq - fp + 1, 0, int(nt));
    int lo = p.window > 0 ? clamp(pq - p.window + 1 - fp, 0, int(nt)) : 0;
    if (lo >= nv) continue;  // uniform: the query sees nothing of this page
    // Scores (masked: -inf) and this lane's max.
    float lmax = NEG_INF;
    for (uint t = tid; t < uint(nv); t += WG) {
      uint kb = koff + (t * p.n_kv_head + g) * hd;
      float dot = 0.0;
      for (uint d = 0u; d < hd; ++d) dot = ffma(qv[d], load_k(kb + d), dot);
      precise float s = dot * p.scale;
      if (p.softcap > 0.0) s = p.softcap * tanh(s / p.softcap);
      if (int(t) < lo) s = NEG_INF;
      pr[t] = s;
      lmax = max(lmax, s);
    }
    red[tid] = lmax;
    REDUCE(red, tid, WG, op_max)
    float new_max = max(mx, red[0]);
    barrier();
    for (uint t = tid; t < uint(nv); t += WG) pr[t] = exp_cpu(pr[t] - new_max);
    barrier();
    if (tid < 16u) {
      float ls = 0.0;
      for (uint t = tid; t < uint(nv); t += 16u) {
        precise float a = ls + pr[t];
        ls = a;
      }
      lanes[tid] = ls;
    }
    barrier();
    // simd::ReduceAdd of 16 lanes: (l, l+8), then (i, i+4), then (0, 2) + (1, 3).
    precise float w0 = lanes[0] + lanes[8], w1 = lanes[1] + lanes[9], w2 = lanes[2] + lanes[10],
                  w3 = lanes[3] + lanes[11], w4 = lanes[4] + lanes[12], w5 = lanes[5] + lanes[13],
                  w6 = lanes[6] + lanes[14], w7 = lanes[7] + lanes[15];
    precise float s0 = w0 + w4, s1 = w1 + w5, s2 = w2 + w6, s3 = w3 + w7;
    precise float u0 = s0 + s2, u1 = s1 + s3;
    precise float psum = u0 + u1;
    float c = exp_cpu(mx - new_max);
    precise float scaled = sum * c;
    precise float nsum = scaled + psum;
    sum = nsum;
    mx = new_max;
    for (uint k = 0u; k < 4u; ++k) {
      uint d = tid + k * WG;
      if (d >= hd) break;
      precise float a = acc[k] * c;
      float av = a;
      for (uint t = 0u; t < uint(nv); ++t) av = ffma(pr[t], load_v(voff + (t * p.n_kv_head + g) * hd + d), av);
      acc[k] = av;
    }
    barrier();  // pr, red and lanes are rewritten by the next page
  }
  if ((p.state_mode & 2u) != 0u) {
    barrier();  // every invocation has read the stored state (uniform: a push constant)
    if (tid == 0u) {
      st[sb] = mx;
      st[sb + 1u] = sum;
    }
    for (uint k = 0u; k < 4u; ++k)
      if (tid + k * WG < hd) st[sb + 2u + tid + k * WG] = acc[k];
    return;
  }
  float inv = sum > 0.0 ? 1.0 / sum : 0.0;
  for (uint k = 0u; k < 4u; ++k) {
    uint d = tid + k * WG;
    if (d < hd) {
      precise float v = acc[k] * inv;
      o[(qi * p.n_head + h) * hd + d] = v;
    }
  }
}
