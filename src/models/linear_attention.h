// Gated DeltaNet, the linear-attention token mixer of Qwen3-Next (MixerKind::
// kLinearAttention), as transformers' Qwen3NextGatedDeltaNet computes it on CPU (its
// torch fallback path), for one sequence's rows of one layer:
//
//   qkvz = h·W_qkvzᵀ [m, 2·key_dim + 2·value_dim], ba = h·W_baᵀ [m, 2·n_v_heads]
//     (both grouped per key head: q (dk), k (dk), v (r·dv), z (r·dv) | b (r), a (r),
//      r = n_v_heads / n_k_heads)                               ← the Transformer does these
//     (GGUF, Qwen3.5: qkv = h·W_qkvᵀ [m, conv_dim] already ungrouped, z = h·W_zᵀ [m, value_dim];
//      Qwen3.5: b = h·W_bᵀ, a = h·W_aᵀ [m, n_v_heads] each)
//   x = [q | k | v] [m, conv_dim] → depthwise causal conv (kernel K, rolling state) → SiLU
//   β = sigmoid(b); g = −exp(A_log) · softplus(a + dt_bias)     (f32)
//   q, k l2-normalised per head (eps 1e-6 inside the rsqrt), repeated to the value heads
//     (LinearAttnSpec::key_head_of: grouped, or tiled for GGUF qwen35);
//     q × 1/√dk
//   o = gated delta rule (tensor/delta_rule.h): the recurrence for decode rows, the
//       chunked form (ModelConfig::delta_chunk) for prefill rows
//   y = rmsnorm(o per value head) · w · silu(z)  [m, value_dim]    (w as stored: not 1 + w)
//   out = y·W_outᵀ                                               ← the Transformer
//
// The state (conv tail + delta-rule S per value head) is the layer's slice of the
// sequence's kv::RecurrentState.
#pragma once

#include <cstdint>
#include <vector>

#include "base/thread_pool.h"
#include "kv/recurrent_state.h"
#include "models/config.h"
#include "models/weights.h"
#include "tensor/delta_rule.h"

namespace spool::models {

// The recurrent state a sequence of this model keeps (one slot per kLinearAttention layer).
kv::RecurrentLayout RecurrentLayoutOf(const ModelConfig& c);

class GatedDeltaNet {
 public:
  GatedDeltaNet(const ModelConfig& c, ThreadPool& pool) : c_(c), s_(c.linear), pool_(pool) {}

  // This sequence's rows of the projections: z == nullptr: proj is the grouped qkvz
  // [m, qkvz_dim]; else (split weights, LinearAttnWeights::split) proj is qkv [m, conv_dim]
  // in conv channel order and z [m, value_dim]. a == nullptr: ba is [m, ba_dim] (grouped b, a
  // per key head); else (LinearAttnSpec::ungrouped) ba is b [m, n_v_heads] and a is [m, n_v_heads].
  // st: the layer's pending state (RecurrentState::Begin), advanced by m tokens.
  // recurrent: token-by-token recurrence (decode numerics), else the chunked form.
  // y: [m, value_dim], the gated-normed output before the out projection.
  // row_states (recurrent only; may be null): the state after each row t is also written
  // to row_states + t · row_stride (conv then delta: RecurrentState::RowStates), the
  // rows then run one at a time (the same arithmetic: the recurrence is per row).
  void Run(const LinearAttnWeights& w, const float* proj, const float* z, const float* ba, const float* a, int64_t m,
           bool recurrent, kv::RecurrentState::LayerView st, float* y, float* row_states = nullptr,
           int64_t row_stride = 0);

 private:
  struct HeadScratch {
    std::vector<float> q, k, v, g, beta, o;
    DeltaRuleScratch chunk;
  };
  const ModelConfig& c_;
  const LinearAttnSpec& s_;
  ThreadPool& pool_;
  std::vector<float> mixed_, conv_out_, z_, beta_, g_;  // [m, conv_dim], [m, conv_dim], [m, value_dim], [m, n_v] x2
  std::vector<HeadScratch> heads_;                      // [threads]
};

}  // namespace spool::models
