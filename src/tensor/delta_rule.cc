#include "tensor/delta_rule.h"

#include <algorithm>
#include <cmath>

namespace spool {

void GatedDeltaRuleRecurrent(const DeltaRuleInputs& in, float* S, float* out) {
  const int64_t dk = in.dk, dv = in.dv;
  std::vector<float> kv_mem(static_cast<size_t>(dv));
  for (int64_t t = 0; t < in.n; ++t) {
    const float* q = in.q + t * dk;
    const float* k = in.k + t * dk;
    const float* v = in.v + t * dv;
    const float decay = std::exp(in.g[t]);
    for (int64_t i = 0; i < dk * dv; ++i) S[i] *= decay;
    // kv_mem = Sᵀ k  [dv]
    std::fill(kv_mem.begin(), kv_mem.end(), 0.0f);
    for (int64_t i = 0; i < dk; ++i)
      for (int64_t j = 0; j < dv; ++j) kv_mem[j] += S[i * dv + j] * k[i];
    // delta = (v − kv_mem)·β ; S += k ⊗ delta
    for (int64_t j = 0; j < dv; ++j) kv_mem[j] = (v[j] - kv_mem[j]) * in.beta[t];
    for (int64_t i = 0; i < dk; ++i)
      for (int64_t j = 0; j < dv; ++j) S[i * dv + j] += k[i] * kv_mem[j];
    // o = Sᵀ q
    float* o = out + t * dv;
    std::fill(o, o + dv, 0.0f);
    for (int64_t i = 0; i < dk; ++i)
      for (int64_t j = 0; j < dv; ++j) o[j] += S[i * dv + j] * q[i];
  }
}

namespace {

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

// One chunk of m tokens (transformers' torch_chunk_gated_delta_rule, per head):
//   G_i = Σ_{t<=i} g_t (within the chunk); kβ_i = β_i k_i, vβ_i = β_i v_i
//   A_ij = (kβ_i · k_j) e^{G_i − G_j} for j < i; T = I + A (unit lower triangular)
//   U = T⁻¹ vβ [m, dv];  W = T⁻¹ (kβ e^{G}) [m, dk]              (forward substitution)
//   v_new = U − W S;  o_i = e^{G_i} q_i S + Σ_{j<=i} (q_i · k_j) e^{G_i − G_j} v_new_j
//   S ← e^{G_last} S + Σ_j e^{G_last − G_j} k_j ⊗ v_new_j
void GatedDeltaRuleChunked(const DeltaRuleInputs& in, int64_t chunk, float* S, float* out,
                           DeltaRuleScratch& scratch) {
  const int64_t dk = in.dk, dv = in.dv, C = std::max<int64_t>(chunk, 1);
  const int64_t cm = std::min(C, in.n);
  // Scratch: G [C], A [C, C], U [C, dv], W [C, dk], vnew [C, dv].
  const size_t need = static_cast<size_t>(cm + cm * cm + cm * dv + cm * dk + cm * dv);
  if (scratch.buf.size() < need) scratch.buf.resize(need);
  float* G = scratch.buf.data();
  float* A = G + cm;
  float* U = A + cm * cm;
  float* W = U + cm * dv;
  float* vnew = W + cm * dk;
  for (int64_t t0 = 0; t0 < in.n; t0 += C) {
    const int64_t m = std::min(C, in.n - t0);
    const float* q = in.q + t0 * dk;
    const float* k = in.k + t0 * dk;
    const float* v = in.v + t0 * dv;
    const float* beta = in.beta + t0;
    float acc = 0;
    for (int64_t i = 0; i < m; ++i) G[i] = acc += in.g[t0 + i];
    // A (strictly lower) and the forward substitution for U and W, row by row.
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < i; ++j) A[i * m + j] = beta[i] * Dot(k + i * dk, k + j * dk, dk) * std::exp(G[i] - G[j]);
      float* u = U + i * dv;
      float* w = W + i * dk;
      const float eg = std::exp(G[i]);
      for (int64_t c = 0; c < dv; ++c) u[c] = v[i * dv + c] * beta[i];
      for (int64_t c = 0; c < dk; ++c) w[c] = k[i * dk + c] * beta[i] * eg;
      for (int64_t j = 0; j < i; ++j) {
        const float a = A[i * m + j];
        for (int64_t c = 0; c < dv; ++c) u[c] -= a * U[j * dv + c];
        for (int64_t c = 0; c < dk; ++c) w[c] -= a * W[j * dk + c];
      }
    }
    // v_new = U − W S
    for (int64_t i = 0; i < m; ++i) {
      float* vn = vnew + i * dv;
      for (int64_t c = 0; c < dv; ++c) vn[c] = U[i * dv + c];
      for (int64_t r = 0; r < dk; ++r) {
        const float w = W[i * dk + r];
        for (int64_t c = 0; c < dv; ++c) vn[c] -= w * S[r * dv + c];
      }
    }
    // Outputs: the old state's read plus the chunk's own (causal, decayed) attention.
    for (int64_t i = 0; i < m; ++i) {
      float* o = out + (t0 + i) * dv;
      std::fill(o, o + dv, 0.0f);
      const float eg = std::exp(G[i]);
      for (int64_t r = 0; r < dk; ++r) {
        const float qr = q[i * dk + r] * eg;
        for (int64_t c = 0; c < dv; ++c) o[c] += qr * S[r * dv + c];
      }
      for (int64_t j = 0; j <= i; ++j) {
        const float a = Dot(q + i * dk, k + j * dk, dk) * std::exp(G[i] - G[j]);
        for (int64_t c = 0; c < dv; ++c) o[c] += a * vnew[j * dv + c];
      }
    }
    // State update.
    const float last = G[m - 1];
    const float el = std::exp(last);
    for (int64_t i = 0; i < dk * dv; ++i) S[i] *= el;
    for (int64_t j = 0; j < m; ++j) {
      const float d = std::exp(last - G[j]);
      for (int64_t r = 0; r < dk; ++r) {
        const float kr = k[j * dk + r] * d;
        for (int64_t c = 0; c < dv; ++c) S[r * dv + c] += kr * vnew[j * dv + c];
      }
    }
  }
}

}  // namespace spool
