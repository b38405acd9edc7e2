#include "models/linear_attention.h"

#include <algorithm>
#include <cmath>

#include "tensor/causal_conv.h"

namespace spool::models {

namespace {

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// torch.nn.functional.softplus (beta 1, threshold 20).
float Softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// x · rsqrt(Σx² + 1e-6), transformers' l2norm (the FLA convention). x: [n] in place.
void L2Normalize(float* x, int64_t n) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss + 1e-6f);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace

kv::RecurrentLayout RecurrentLayoutOf(const ModelConfig& c) {
  kv::RecurrentLayout r;
  for (const LayerSpec& s : c.layers) r.linear.push_back(s.mixer == MixerKind::kLinearAttention);
  r.conv_elems = c.linear.conv_state_elems();
  r.delta_elems = c.linear.delta_state_elems();
  return r;
}

void GatedDeltaNet::Run(const LinearAttnWeights& w, const float* proj, const float* z_in, const float* ba,
                        const float* a_in, int64_t m, bool recurrent, kv::RecurrentState::LayerView st, float* y,
                        float* row_states, int64_t row_stride) {
  if (!recurrent) row_states = nullptr;
  const int64_t conv_elems = (s_.conv_kernel - 1) * s_.conv_dim();
  const int64_t nk = s_.n_k_heads, nv = s_.n_v_heads, dk = s_.k_head_dim, dv = s_.v_head_dim;
  const int64_t r = nv / nk, KD = s_.key_dim(), VD = s_.value_dim(), CD = s_.conv_dim();
  const int64_t QKVZ = s_.qkvz_dim(), BA = s_.ba_dim();
  mixed_.resize(m * CD);
  conv_out_.resize(m * CD);
  z_.resize(m * VD);
  beta_.resize(m * nv);
  g_.resize(m * nv);
  // Ungroup the fused projections: [q | k | v] channels for the conv, z, b, a (split
  // weights gave them ungrouped already).
  const float* conv_in = z_in ? proj : mixed_.data();
  const float* zs = z_in ? z_in : z_.data();
  for (int64_t t = 0; t < m; ++t) {
    const float* bar = ba + t * (a_in ? nv : BA);
    if (a_in) {  // ungrouped b, a (Qwen3.5): head h's are b[h], a[h]
      const float* ar = a_in + t * nv;
      for (int64_t h = 0; h < nv; ++h) {
        beta_[t * nv + h] = Sigmoid(bar[h]);
        g_[t * nv + h] = w.neg_a[h] * Softplus(ar[h] + w.dt_bias[h]);
      }
    }
    for (int64_t hk = 0; hk < nk; ++hk) {
      if (!z_in) {
        const float* grp = proj + t * QKVZ + hk * (2 * dk + 2 * r * dv);
        float* x = mixed_.data() + t * CD;
        std::copy(grp, grp + dk, x + hk * dk);                                      // q
        std::copy(grp + dk, grp + 2 * dk, x + KD + hk * dk);                        // k
        std::copy(grp + 2 * dk, grp + 2 * dk + r * dv, x + 2 * KD + hk * r * dv);   // v
        std::copy(grp + 2 * dk + r * dv, grp + 2 * dk + 2 * r * dv, z_.data() + t * VD + hk * r * dv);  // z
      }
      for (int64_t i = 0; i < r && !a_in; ++i) {
        const int64_t h = hk * r + i;
        const float b = bar[hk * 2 * r + i], a = bar[hk * 2 * r + r + i];
        beta_[t * nv + h] = Sigmoid(b);
        g_[t * nv + h] = w.neg_a[h] * Softplus(a + w.dt_bias[h]);
      }
    }
  }
  if (row_states) {  // row by row, keeping the conv tail after each
    for (int64_t t = 0; t < m; ++t) {
      CausalConv1dSilu(conv_in + t * CD, 1, CD, w.conv.data(), s_.conv_kernel, st.conv, conv_out_.data() + t * CD);
      std::copy(st.conv, st.conv + conv_elems, row_states + t * row_stride);
    }
  } else {
    CausalConv1dSilu(conv_in, m, CD, w.conv.data(), s_.conv_kernel, st.conv, conv_out_.data());
  }

  // The delta rule, one value head per task.
  heads_.resize(static_cast<size_t>(std::max(pool_.num_threads(), 1)));
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
  pool_.ParallelFor(static_cast<size_t>(nv), [&](size_t h0, size_t h1, int ti) {
    HeadScratch& sc = heads_[static_cast<size_t>(ti)];
    sc.q.resize(m * dk);
    sc.k.resize(m * dk);
    sc.v.resize(m * dv);
    sc.g.resize(m);
    sc.beta.resize(m);
    sc.o.resize(m * dv);
    for (int64_t h = static_cast<int64_t>(h0); h < static_cast<int64_t>(h1); ++h) {
      const int64_t hk = s_.key_head_of(h);  // repeat_interleave of the key heads (or tiled: GGUF qwen35)
      for (int64_t t = 0; t < m; ++t) {
        const float* x = conv_out_.data() + t * CD;
        float* q = sc.q.data() + t * dk;
        float* k = sc.k.data() + t * dk;
        std::copy(x + hk * dk, x + (hk + 1) * dk, q);
        std::copy(x + KD + hk * dk, x + KD + (hk + 1) * dk, k);
        L2Normalize(q, dk);
        L2Normalize(k, dk);
        for (int64_t i = 0; i < dk; ++i) q[i] *= q_scale;
        std::copy(x + 2 * KD + h * dv, x + 2 * KD + (h + 1) * dv, sc.v.data() + t * dv);
        sc.g[t] = g_[t * nv + h];
        sc.beta[t] = beta_[t * nv + h];
      }
      const DeltaRuleInputs in{m, dk, dv, sc.q.data(), sc.k.data(), sc.v.data(), sc.g.data(), sc.beta.data()};
      float* S = st.delta + h * dk * dv;
      if (row_states) {  // one row at a time, keeping S after each
        for (int64_t t = 0; t < m; ++t) {
          const DeltaRuleInputs row{1,  dk, dv, sc.q.data() + t * dk, sc.k.data() + t * dk, sc.v.data() + t * dv,
                                    sc.g.data() + t, sc.beta.data() + t};
          GatedDeltaRuleRecurrent(row, S, sc.o.data() + t * dv);
          std::copy(S, S + dk * dv, row_states + t * row_stride + conv_elems + h * dk * dv);
        }
      } else if (recurrent) {
        GatedDeltaRuleRecurrent(in, S, sc.o.data());
      } else {
        GatedDeltaRuleChunked(in, c_.delta_chunk, S, sc.o.data(), sc.chunk);
      }
      // Gated RMSNorm per (token, head): w · (o · rsqrt(mean(o²) + eps)) · silu(z).
      for (int64_t t = 0; t < m; ++t) {
        const float* o = sc.o.data() + t * dv;
        const float* z = zs + t * VD + h * dv;
        float* out = y + t * VD + h * dv;
        float ss = 0;
        for (int64_t i = 0; i < dv; ++i) ss += o[i] * o[i];
        const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dv) + c_.rms_eps);
        for (int64_t i = 0; i < dv; ++i) out[i] = w.norm[i] * (o[i] * inv) * (z[i] * Sigmoid(z[i]));
      }
    }
  });
}

}  // namespace spool::models
