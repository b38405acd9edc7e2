#include "models/ffn.h"

#include <algorithm>
#include <cmath>

#include "tensor/matmul_ggml.h"
#include "tensor/ops.h"
#include "tensor/topk.h"

namespace spool::models {

void MatMulRows(MatMulContext& mm, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, bool gemv,
                float* y) {
  if (gemv || GemvMaxRows(w.dtype) == kGemvMaxRowsQuantized) MatMulGemv(mm, pool, w, x, m, y);
  else MatMul(mm, pool, w, x, m, y);
}

namespace {

// y[d] += p · x[d] as one fused multiply-add per element, so that every path that adds
// an expert's output rounds the same way.
void AddScaled(float p, const float* x, int64_t n, float* y) {
  for (int64_t d = 0; d < n; ++d) y[d] = std::fma(p, x[d], y[d]);
}

}  // namespace

void FeedForward::Reserve(int64_t rows) {
  if (rows <= cap_rows_) return;
  cap_rows_ = rows;
  gate_.resize(rows * c_.max_ff());
  up_.resize(rows * std::max(c_.max_ff(), c_.n_embd));
  if (!c_.has_moe()) return;
  router_.resize(rows * c_.moe.n_expert);
  ids_.resize(rows * c_.moe.n_expert_used);
  weights_.resize(rows * c_.moe.n_expert_used);
  xs_.resize(rows * c_.n_embd);
  ys_.resize(rows * c_.n_embd);
  rows_of_.resize(rows);
  slot_of_.resize(rows);
  // Per (row, slot) outputs: always with ggml numerics (summed by rank), else for
  // decode-sized blocks (run order free, summed by expert index): Moe keeps them for any
  // block of m <= rows rows with m · k · n_embd <= kMoeKeptOutputsMax, so size for the
  // largest such m — also when `rows` itself is past the limit (a 512-row prefill block
  // reserved first must still leave room for a later 40-row block).
  const int64_t per_row = c_.moe.n_expert_used * c_.n_embd;
  const int64_t kept_rows = c_.ggml_numerics ? rows : std::min(rows, kMoeKeptOutputsMax / per_row);
  kept_.resize(kept_rows * per_row);
  if (c_.ffn_act == FfnAct::kSwiGluOai) gate_up_.resize(rows * 2 * c_.moe.n_ff_expert);
}

void FeedForward::GateLogits(const MatrixRef& m, const uint8_t* g, const float* h, int64_t rows, float* out) {
  if (c_.ggml_numerics && m.dtype == DType::kF32)
    MatMulF32Ggml(reinterpret_cast<const float*>(g + m.group_offset), m.n_out, m.n_in, h, rows, out);
  else
    MatMulGemv(mm_, pool_, View(m, g), h, rows, out);
}

void FeedForward::SwiGlu(const SwiGluWeights& w, const uint8_t* g, int64_t ff, const float* h, int64_t m, bool gemv,
                         float* y) {
  MatMulRows(mm_, pool_, View(w.gate, g), h, m, gemv, gate_.data());  // [m, ff]
  MatMulRows(mm_, pool_, View(w.up, g), h, m, gemv, up_.data());      // [m, ff]
  if (c_.ffn_act == FfnAct::kGeluTanh) GeGLUTanh(gate_.data(), up_.data(), m * ff, gate_.data());
  else if (c_.ggml_numerics) SwiGLUGgml(gate_.data(), up_.data(), m, ff, gate_.data());
  else SwiGLU(gate_.data(), up_.data(), m * ff, gate_.data());
  MatMulRows(mm_, pool_, View(w.down, g), gate_.data(), m, gemv, y);   // [m, n_embd]
}

void FeedForward::Dense(const SwiGluWeights& w, const uint8_t* g, const float* h, int64_t m, bool gemv, float* y) {
  SwiGlu(w, g, c_.n_ff, h, m, gemv, y);
}

Status FeedForward::Moe(const MoeWeights& w, int l, const uint8_t* g, WeightProvider& experts, const float* h, int64_t m,
                        bool gemv, float* y) {
  const int64_t D = c_.n_embd, E = c_.moe.n_expert, K = c_.moe.n_expert_used;
  // Route: router logits on the GEMV path (f32), then softmax + top-k per row.
  const bool ggml = c_.ggml_numerics;
  GateLogits(w.router, g, h, m, router_.data());  // [m, E]
  if (c_.moe.router_bias)
    for (int64_t r = 0; r < m; ++r) Add(router_.data() + r * E, w.router_bias.data(), E, router_.data() + r * E);
  if (c_.moe.softmax_after_topk) RouteTopKSoftmax(router_.data(), m, E, K, ids_.data(), weights_.data());
  else if (ggml) RouteTopKGgml(router_.data(), m, E, K, c_.moe.norm_topk_prob, ids_.data(), weights_.data());
  else RouteTopK(router_.data(), m, E, K, c_.moe.norm_topk_prob, ids_.data(), weights_.data());

  // The experts the block needs, ascending; their reads start as soon as they are known.
  needed_.assign(static_cast<size_t>(E), 0);
  for (int64_t i = 0; i < m * K; ++i) needed_[ids_[i]] = 1;
  int64_t n_needed = 0;
  for (int64_t e = 0; e < E; ++e)
    if (needed_[e]) needed_[n_needed++] = static_cast<int32_t>(e);
  const int64_t cap = experts.ExpertCapacity();
  SPOOL_CHECK(cap >= 1);

  // Each routed (row, slot) gets w·expert(h_row). Spool numerics: a row adds its experts'
  // outputs in expert index order (one fma per element), whatever order the experts ran
  // in; ggml numerics: the weighted outputs are summed in rank order as llama.cpp's
  // build_moe_ffn does. Either way numerics never depend on run order or on where the
  // bytes came from. Blocks that keep every (row, slot) output (decode-sized, and all
  // with ggml numerics) run the experts already in RAM first, overlapping the others'
  // reads; larger blocks (prefill) run experts in index order, adding straight into y.
  const bool keep_outputs = ggml || m * K * D <= kMoeKeptOutputsMax;
  std::fill(y, y + m * D, 0.0f);
  for (int64_t w0 = 0; w0 < n_needed; w0 += cap) {
    const int64_t wn = std::min(cap, n_needed - w0);
    const std::span<const int32_t> wave(needed_.data() + w0, static_cast<size_t>(wn));
    if (Status st = experts.PrepareExperts(l, wave); !st.ok()) {
      experts.ReleaseExperts(l);
      return st;
    }
    order_.assign(wave.begin(), wave.end());
    if (keep_outputs)
      std::stable_partition(order_.begin(), order_.end(), [&](int32_t e) { return experts.ExpertReady(l, e); });
    for (const int32_t e : order_) {
      int64_t n = 0;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t i = 0; i < K; ++i)
          if (ids_[r * K + i] == e) {
            std::copy(h + r * D, h + (r + 1) * D, xs_.begin() + n * D);
            rows_of_[n] = r;
            slot_of_[n] = r * K + i;
            ++n;
          }
      auto base = experts.Expert(l, e);
      if (!base.ok()) {
        experts.ReleaseExperts(l);
        return base.status();
      }
      if (c_.ffn_act == FfnAct::kSwiGluOai) OaiExpert(w, e, *base, xs_.data(), n, gemv, ys_.data());
      else SwiGlu(w.experts[e], *base, c_.moe.n_ff_expert, xs_.data(), n, gemv, ys_.data());
      for (int64_t i = 0; i < n; ++i) {
        const float* ye = ys_.data() + i * D;
        const float p = weights_[slot_of_[i]];
        if (ggml) {  // the weighted output in its rank's slot
          float* slot = kept_.data() + slot_of_[i] * D;
          for (int64_t d = 0; d < D; ++d) slot[d] = ye[d] * p;
        } else if (keep_outputs) {
          std::copy(ye, ye + D, kept_.data() + slot_of_[i] * D);
        } else {
          AddScaled(p, ye, D, y + rows_of_[i] * D);
        }
      }
    }
    experts.ReleaseExperts(l);
  }
  if (ggml) {  // llama.cpp adds the weighted experts in rank order: ((e_0 + e_1) + e_2) ...
    for (int64_t r = 0; r < m; ++r) {
      std::copy_n(kept_.data() + r * K * D, D, y + r * D);
      for (int64_t i = 1; i < K; ++i) Add(y + r * D, kept_.data() + (r * K + i) * D, D, y + r * D);
    }
  } else if (keep_outputs) {
    for (int64_t r = 0; r < m; ++r) {
      // The row's slots by ascending expert id: the same order as the index-order path.
      row_slots_.resize(static_cast<size_t>(K));
      for (int64_t i = 0; i < K; ++i) row_slots_[i] = r * K + i;
      std::sort(row_slots_.begin(), row_slots_.end(), [&](int64_t a, int64_t b) { return ids_[a] < ids_[b]; });
      for (const int64_t s : row_slots_) AddScaled(weights_[s], kept_.data() + s * D, D, y + r * D);
    }
  }
  if (c_.moe.n_ff_shared > 0) {
    // Shared expert, every row, scaled by a sigmoid gate of its own.
    float* shared_gate = router_.data();  // [m, 1]; the router's logits are used up
    GateLogits(w.shared_router, g, h, m, shared_gate);
    SwiGlu(w.shared, g, c_.moe.n_ff_shared, h, m, gemv, ys_.data());
    for (int64_t r = 0; r < m; ++r) {
      const float s = 1.0f / (1.0f + std::exp(-shared_gate[r]));
      if (ggml) AddScaledGgml(ys_.data() + r * D, s, D, y + r * D);
      else AddScaled(s, ys_.data() + r * D, D, y + r * D);
    }
  }
  return Status::Ok();
}

}  // namespace spool::models
