#version 450
// Causal attention of one (query, head) per workgroup over KV pages with an online
// softmax (tensor/attention.h's GPU twin): keys are taken 64 at a time (one lane per
// key computes its score), the chunk's max and sum fold into the running (m, l), and
// each lane accumulates Σ p·v for its dims d = lane + 64k (head_dim <= 256).
// q: [n_q, n_head, head_dim]   pages: [n_pages] × (k_elem, v_elem, n_tokens, first_pos)
// k, v: f32 or bf16 elements   pos_q: [n_q] (after the pages)   out: [n_q, n_head·head_dim]
#include "common.glsl"
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint kbuf[]; };
layout(std430, binding = 2) readonly buffer V { uint vbuf[]; };
layout(std430, binding = 3) readonly buffer Pg { uint pages[]; };  // page table, then pos_q at pos_offset
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(push_constant) uniform P {
  uint n_q; uint n_head; uint n_kv_head; uint head_dim; uint n_pages; uint pos_offset; uint kv_bf16;
  float scale; int window; float softcap;
} p;
shared float qv[256];
shared float pr[WG];
shared float red[WG];

float load_k(uint e) {
  return p.kv_bf16 != 0u ? bf16_bits_to_f32((kbuf[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu) : uintBitsToFloat(kbuf[e]);
}
float load_v(uint e) {
  return p.kv_bf16 != 0u ? bf16_bits_to_f32((vbuf[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu) : uintBitsToFloat(vbuf[e]);
}

void main() {
  uint h = gl_WorkGroupID.x, qi = gl_WorkGroupID.y;
  uint tid = gl_LocalInvocationID.x;
  uint g = h / (p.n_head / p.n_kv_head);
  uint hd = p.head_dim;
  for (uint d = tid; d < hd; d += WG) qv[d] = q[(qi * p.n_head + h) * hd + d];
  int pq = int(pages[p.pos_offset + qi]);
  bool any = false;       // some key seen (m is valid)
  float m = 0.0, l = 0.0;
  float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
  barrier();
  for (uint pg = 0u; pg < p.n_pages; ++pg) {
    uint koff = pages[pg * 4u], voff = pages[pg * 4u + 1u], nt = pages[pg * 4u + 2u];
    int fp = int(pages[pg * 4u + 3u]);
    for (uint t0 = 0u; t0 < nt; t0 += WG) {
      uint t = t0 + tid;
      bool visible = false;
      float s = 0.0;
      if (t < nt) {
        int kp = fp + int(t);
        visible = kp <= pq && (p.window == 0 || kp > pq - p.window);
        if (visible) {
          uint kb = koff + (t * p.n_kv_head + g) * hd;
          float dot = 0.0;
          for (uint d = 0u; d < hd; ++d) dot += qv[d] * load_k(kb + d);
          s = dot * p.scale;
          if (p.softcap > 0.0) s = p.softcap * tanh(s / p.softcap);
        }
      }
      // The chunk's largest score (-3e38 where no key is visible).
      red[tid] = visible ? s : -3.0e38;
      REDUCE(red, tid, WG, op_max)
      float cmax = red[0];
      bool chunk_any = cmax > -3.0e38;
      float nm = any ? max(m, cmax) : cmax;
      float pv = visible ? exp(s - nm) : 0.0;
      barrier();
      pr[tid] = pv;
      red[tid] = pv;
      REDUCE(red, tid, WG, op_add)
      if (chunk_any) {  // uniform: from shared memory
        float f = any ? exp(m - nm) : 0.0;
        l = l * f + red[0];
        uint cnt = min(WG, nt - t0);
        for (uint k = 0u; k < 4u; ++k) {
          uint d = tid + k * WG;
          if (d >= hd) break;
          float a = acc[k] * f;
          for (uint u = 0u; u < cnt; ++u) {
            float pu = pr[u];
            if (pu != 0.0) a += pu * load_v(voff + ((t0 + u) * p.n_kv_head + g) * hd + d);
          }
          acc[k] = a;
        }
        m = nm;
        any = true;
      }
      barrier();  // pr and red are rewritten by the next chunk
    }
  }
  for (uint k = 0u; k < 4u; ++k) {
    uint d = tid + k * WG;
    if (d < hd) o[(qi * p.n_head + h) * hd + d] = l > 0.0 ? acc[k] / l : 0.0;
  }
}
