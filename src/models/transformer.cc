#include "models/transformer.h"

#include <algorithm>
#include <cmath>

#include "base/timer.h"
#include "tensor/attention.h"
#include "tensor/attention_bf16.h"
#include "tensor/attention_ggml.h"
#include "tensor/ops.h"
#include "tensor/rope.h"

namespace spool::models {

Transformer::Transformer(const ModelWeights& weights, ThreadPool& pool)
    : w_(weights), c_(weights.config()), pool_(pool), ffn_(weights.config(), pool, mm_),
      delta_net_(weights.config(), pool) {
  inv_freq_.reserve(c_.layers.size());
  for (int64_t l = 0; l < c_.n_layer; ++l) kv_layer_.push_back(c_.kv_layer(l));
  for (const LayerSpec& spec : c_.layers)
    inv_freq_.push_back(RopeFrequencies(c_.head_dim, c_.rope_dim, spec.rope_theta, spec.rope_scaling));
}

std::vector<Transformer::RowSegment> Transformer::Segments(std::span<const SeqStep> batch, bool logit_rows) {
  std::vector<RowSegment> out;
  int64_t r = 0;
  for (auto& s : batch) {
    const int64_t m = static_cast<int64_t>(s.tokens.size());
    const int64_t rows = logit_rows ? (s.all_logits ? m : 1) : m;
    const bool gemv = m == 1 || s.decode_rows || s.tree();  // decode numerics: row-independent GEMV
    if (rows == 0) continue;
    if (gemv && !out.empty() && out.back().gemv && out.back().row0 + out.back().rows == r) out.back().rows += rows;
    else out.push_back(RowSegment{r, rows, gemv});
    r += rows;
  }
  return out;
}

int64_t Transformer::LogitRows(std::span<const SeqStep> batch) {
  int64_t n = 0;
  for (auto& s : batch) n += s.all_logits ? static_cast<int64_t>(s.tokens.size()) : 1;
  return n;
}

void Transformer::EnsureScratch(int64_t n) {
  if (n <= cap_rows_) return;
  cap_rows_ = n;
  const int64_t mlp_rows = std::min(n, kMlpRowBlock);
  x_.resize(n * c_.n_embd);
  h_.resize(n * std::max(c_.n_embd, c_.q_dim()));
  q_.resize(n * c_.q_dim());
  k_.resize(n * c_.kv_dim());
  v_.resize(n * c_.kv_dim());
  attn_.resize(n * c_.q_dim());
  ffn_out_.resize(mlp_rows * c_.n_embd);
  if (c_.attn_output_gate) {
    qg_.resize(n * 2 * c_.q_dim());
    gate_.resize(n * c_.q_dim());
  }
  if (c_.has_linear()) {
    qkvz_.resize(n * c_.linear.qkvz_dim());
    ba_.resize(n * c_.linear.ba_dim());
    lin_y_.resize(n * c_.linear.value_dim());
    lin_z_.resize(n * c_.linear.value_dim());  // split projections (GGUF, Qwen3.5) only
  }
  ffn_.Reserve(mlp_rows);
  pos_.resize(n);
}

Status Transformer::Attention(const SeqStep& s, int64_t layer, int64_t row0, const float* q, float* out) {
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  const int64_t pos0 = s.kv->n_tokens();
  const LayerSpec& spec = c_.layers[layer];
  const int64_t kv_layer = kv_layer_[layer];
  const AttentionShape shape{c_.n_head, c_.n_head_kv, c_.head_dim, c_.attention_scale(),
                             spec.mixer == MixerKind::kSlidingAttention ? spec.window : 0, c_.attn_softcap,
                             c_.attn_sinks ? w_.layer(layer).sinks.data() : nullptr};
  const float* qs = q + row0 * c_.q_dim();
  const int64_t* ps = pos_.data() + row0;
  if (s.tree())
    return tree_att_.Run(pool_, *s.kv, kv_layer, shape, TreeSpec{s.tree_base, s.tree_parent}, ps, qs, n, c_.ggml_numerics,
                         s.tree_rows, out + row0 * c_.q_dim());
  att_state_.Reset(n, shape);
  // Sliding window: pages wholly before the first query's window are skipped (every
  // row would see none of their keys, which leaves the softmax state unchanged).
  const int64_t first_seen = shape.window > 0 ? pos0 - shape.window + 1 : 0;
  if (c_.ggml_numerics) {
    // llama.cpp's kernels: its batched GEMM for a prefill chunk, its dot for one token.
    // Verification rows (decode_rows) take the single-token kernel, row by row as decode.
    const GgmlAttnKernel kernel = n > 1 && !s.decode_rows ? GgmlAttnKernel::kBatch : GgmlAttnKernel::kSingle;
    return AttentionGgml(
        pool_, shape, qs, ps, n, kernel,
        [&](const std::function<void(const KvPageView&)>& fn) { return s.kv->ForEachPage(kv_layer, pos0 + n, fn); },
        out + row0 * c_.q_dim());
  }
  // Prefill chunks fold bf16 pages with bf16 dot products (attention_bf16.h); decode and
  // verification rows (decode_rows) keep the f32 kernel's numerics. The choice depends
  // only on the step's shape and the page's dtype, never on where the page lives.
  // Bf16 pages are staged into a span of up to AttentionBf16Span::kDefaultMaxKeys keys and
  // folded together (= page by page, bit for bit; the span only saves memory traffic).
  const bool prefill = n > 1 && !s.decode_rows;
  if (prefill) bf16_span_.Begin(shape, ps, n);
  auto fold_span = [&] {
    if (prefill && !bf16_span_.empty()) bf16_span_.Fold(pool_, qs, att_state_);
  };
  SPOOL_TRY(s.kv->ForEachPage(kv_layer, pos0 + n, [&](const KvPageView& page) {
    if (page.first_pos + page.n_tokens <= first_seen) return;
    if (prefill && AttentionBf16Accepts(shape, page)) {
      if (!bf16_span_.Add(pool_, page)) {
        fold_span();
        bf16_span_.Add(pool_, page);  // an empty span takes any page
      }
      return;
    }
    fold_span();  // keep the pages' order
    AttentionFoldPage(pool_, shape, qs, ps, n, page, att_state_);
  }));
  fold_span();
  AttentionFinalize(shape, att_state_, out + row0 * c_.q_dim());
  return Status::Ok();
}

void Transformer::MatMulSegments(const WeightView& wv, const float* x, float* y, const std::vector<RowSegment>& ss) {
  // Quantised weights always take the row-independent GEMV path: one call for all rows.
  if (GemvMaxRows(wv.dtype) == kGemvMaxRowsQuantized && !ss.empty()) {
    const int64_t rows = ss.back().row0 + ss.back().rows;
    MatMulGemv(mm_, pool_, wv, x, rows, y);
    return;
  }
  for (const RowSegment& sg : ss) {
    const float* xs = x + sg.row0 * wv.n_in;
    float* ys = y + sg.row0 * wv.n_out;
    if (sg.gemv) MatMulGemv(mm_, pool_, wv, xs, sg.rows, ys);
    else MatMul(mm_, pool_, wv, xs, sg.rows, ys);
  }
}

Status Transformer::AttentionMixer(std::span<const SeqStep> batch, int64_t l, const uint8_t* g,
                                   const std::vector<RowSegment>& segs) {
  const LayerWeights& L = w_.layer(l);
  const int64_t n = n_rows_, D = c_.n_embd, QD = c_.q_dim(), KD = c_.kv_dim();
  RmsNorm(x_.data(), L.attn_norm.data(), c_.rms_eps, n, D, h_.data());
  if (c_.attn_output_gate) {  // Qwen3-Next: per head [query (head_dim), gate (head_dim)]
    MatMulSegments(View(L.wq, g), h_.data(), qg_.data(), segs);  // [n, 2·q_dim]
    const int64_t hd = c_.head_dim;
    for (int64_t r = 0; r < n * c_.n_head; ++r) {
      std::copy(qg_.begin() + r * 2 * hd, qg_.begin() + r * 2 * hd + hd, q_.begin() + r * hd);
      std::copy(qg_.begin() + r * 2 * hd + hd, qg_.begin() + (r + 1) * 2 * hd, gate_.begin() + r * hd);
    }
  } else {
    MatMulSegments(View(L.wq, g), h_.data(), q_.data(), segs);  // [n, q_dim]
  }
  MatMulSegments(View(L.wk, g), h_.data(), k_.data(), segs);  // [n, kv_dim]
  MatMulSegments(View(L.wv, g), h_.data(), v_.data(), segs);  // [n, kv_dim]
  if (c_.qkv_bias) {
    for (int64_t r = 0; r < n; ++r) {
      Add(q_.data() + r * QD, L.bq.data(), QD, q_.data() + r * QD);
      Add(k_.data() + r * KD, L.bk.data(), KD, k_.data() + r * KD);
      Add(v_.data() + r * KD, L.bv.data(), KD, v_.data() + r * KD);
    }
  }
  if (c_.qk_norm && c_.qk_norm_full) {  // OLMoE: over the whole projection
    RmsNorm(q_.data(), L.q_norm.data(), c_.rms_eps, n, QD, q_.data());
    RmsNorm(k_.data(), L.k_norm.data(), c_.rms_eps, n, KD, k_.data());
  } else if (c_.qk_norm) {  // Qwen3: per head
    RmsNorm(q_.data(), L.q_norm.data(), c_.rms_eps, n * c_.n_head, c_.head_dim, q_.data());
    RmsNorm(k_.data(), L.k_norm.data(), c_.rms_eps, n * c_.n_head_kv, c_.head_dim, k_.data());
  }
  if (c_.ggml_numerics) {
    const RopeScaling& rs = c_.rope_scaling;
    const bool yarn = rs.kind == RopeScaling::Kind::kYarn;
    const float freq_scale = rs.kind == RopeScaling::Kind::kLinear || yarn ? 1.0f / rs.factor : 1.0f;
    const float* ff = rs.freq_factors.empty() ? nullptr : rs.freq_factors.data();
    GgmlYarn yarn_params;
    yarn_params.n_ctx_orig = rs.original_max_position;
    yarn_params.attn_factor = rs.ggml_attn_factor;
    yarn_params.beta_fast = rs.beta_fast;
    yarn_params.beta_slow = rs.beta_slow;
    const GgmlYarn* y = yarn ? &yarn_params : nullptr;
    const float theta = c_.layers[l].rope_theta;
    ApplyRopeGgml(c_.rope_style, q_.data(), n, c_.n_head, c_.head_dim, c_.rope_dim, pos_.data(), theta, freq_scale, ff,
                  y);
    ApplyRopeGgml(c_.rope_style, k_.data(), n, c_.n_head_kv, c_.head_dim, c_.rope_dim, pos_.data(), theta, freq_scale,
                  ff, y);
  } else {
    // yarn's attention factor multiplies cos and sin (1 for every other scaling).
    const RopeScaling& rs = c_.layers[l].rope_scaling;
    const float mscale = rs.kind == RopeScaling::Kind::kYarn ? rs.attention_factor : 1.0f;
    const float* inv_freq = inv_freq_[l].data();
    ApplyRope(c_.rope_style, q_.data(), n, c_.n_head, c_.head_dim, c_.rope_dim, pos_.data(), inv_freq, mscale);
    ApplyRope(c_.rope_style, k_.data(), n, c_.n_head_kv, c_.head_dim, c_.rope_dim, pos_.data(), inv_freq, mscale);
  }
  int64_t r = 0;
  for (auto& s : batch) {
    const int64_t m = static_cast<int64_t>(s.tokens.size());
    SPOOL_TRY(s.kv->Write(kv_layer_[l], s.kv->n_tokens(), m, k_.data() + r * KD, v_.data() + r * KD));
    r += m;
  }
  r = 0;
  for (auto& s : batch) {
    SPOOL_TRY(Attention(s, l, r, q_.data(), attn_.data()));
    r += static_cast<int64_t>(s.tokens.size());
  }
  if (c_.attn_output_gate)  // attn ×= sigmoid(gate)
    for (int64_t i = 0; i < n * QD; ++i) attn_[i] *= 1.0f / (1.0f + std::exp(-gate_[i]));
  MatMulSegments(View(L.wo, g), attn_.data(), h_.data(), segs);  // [n, n_embd]
  if (c_.o_bias)
    for (int64_t r = 0; r < n; ++r) Add(h_.data() + r * D, L.bo.data(), D, h_.data() + r * D);
  if (c_.sandwich_norms) RmsNorm(h_.data(), L.post_attn_norm.data(), c_.rms_eps, n, D, h_.data());
  Add(x_.data(), h_.data(), n * D, x_.data());
  return Status::Ok();
}

Status Transformer::LinearMixer(std::span<const SeqStep> batch, int64_t l, const uint8_t* g,
                                const std::vector<RowSegment>& segs) {
  const LinearAttnWeights& L = w_.layer(l).linear;
  const LinearAttnSpec& ls = c_.linear;
  const int64_t n = n_rows_, D = c_.n_embd;
  RmsNorm(x_.data(), w_.layer(l).attn_norm.data(), c_.rms_eps, n, D, h_.data());
  const bool split = L.split();
  const int64_t proj_dim = split ? ls.conv_dim() : ls.qkvz_dim();
  if (split) {
    MatMulSegments(View(L.in_qkv, g), h_.data(), qkvz_.data(), segs);  // [n, conv_dim]
    MatMulSegments(View(L.in_z, g), h_.data(), lin_z_.data(), segs);   // [n, value_dim]
  } else {
    MatMulSegments(View(L.in_qkvz, g), h_.data(), qkvz_.data(), segs);  // [n, qkvz_dim]
  }
  // b, a: grouped [n, ba_dim], or (Qwen3.5) b [n, n_v_heads] then a [n, n_v_heads] in ba_.
  const bool ungrouped_ba = L.in_b.info != nullptr;
  float* a_rows = ba_.data() + n * ls.n_v_heads;
  if (ungrouped_ba) {
    MatMulSegments(View(L.in_b, g), h_.data(), ba_.data(), segs);  // [n, n_v_heads]
    MatMulSegments(View(L.in_a, g), h_.data(), a_rows, segs);      // [n, n_v_heads]
  } else {
    MatMulSegments(View(L.in_ba, g), h_.data(), ba_.data(), segs);  // [n, ba_dim]
  }
  int64_t r = 0;
  for (auto& s : batch) {
    const int64_t m = static_cast<int64_t>(s.tokens.size());
    if (!s.state) return InternalError("layer " + std::to_string(l) + " is linear attention but a sequence has no recurrent state");
    if (s.tree()) return InternalError("a draft tree over linear-attention layers (refused by the engine)");
    const bool recurrent = m == 1 || s.decode_rows;
    // Speculative rollback: a verification step's rows each leave their state behind.
    float* rows = s.state->RowStates(l, recurrent ? m : 0);
    delta_net_.Run(L, qkvz_.data() + r * proj_dim, split ? lin_z_.data() + r * ls.value_dim() : nullptr,
                   ungrouped_ba ? ba_.data() + r * ls.n_v_heads : ba_.data() + r * ls.ba_dim(),
                   ungrouped_ba ? a_rows + r * ls.n_v_heads : nullptr, m, recurrent, s.state->Begin(l),
                   lin_y_.data() + r * ls.value_dim(), rows, s.state->row_stride());
    r += m;
  }
  MatMulSegments(View(L.out, g), lin_y_.data(), h_.data(), segs);  // [n, n_embd]
  Add(x_.data(), h_.data(), n * D, x_.data());
  return Status::Ok();
}

Status Transformer::FeedForwardBlock(int64_t l, const uint8_t* g, WeightProvider& provider,
                                     const std::vector<RowSegment>& segs) {
  const LayerWeights& L = w_.layer(l);
  const int64_t D = c_.n_embd;
  RmsNorm(x_.data(), L.ffn_norm.data(), c_.rms_eps, n_rows_, D, h_.data());
  // Row blocks bound the [rows, ff] buffers. Blocks never straddle a segment and start
  // at its first row, as they would if the segment ran alone.
  for (const RowSegment& sg : segs) {
    for (int64_t b0 = 0; b0 < sg.rows; b0 += kMlpRowBlock) {
      const int64_t r0 = sg.row0 + b0, m = std::min(kMlpRowBlock, sg.rows - b0);
      const float* h = h_.data() + r0 * D;
      switch (c_.layers[l].ffn) {
        case FfnKind::kDense: ffn_.Dense(L.dense, g, h, m, sg.gemv, ffn_out_.data()); break;
        case FfnKind::kMoe:
          SPOOL_TRY(ffn_.Moe(L.moe, static_cast<int>(l), g, provider, h, m, sg.gemv, ffn_out_.data()));
          if (routing_observer_)
            routing_observer_(RoutingRecord{l, m, c_.moe.n_expert_used, pos_.data() + r0, ffn_.last_ids(),
                                            ffn_.last_weights()});
          break;
      }
      if (c_.sandwich_norms) RmsNorm(ffn_out_.data(), L.post_ffn_norm.data(), c_.rms_eps, m, D, ffn_out_.data());
      Add(x_.data() + r0 * D, ffn_out_.data(), m * D, x_.data() + r0 * D);
    }
  }
  return Status::Ok();
}

Status Transformer::Forward(std::span<const SeqStep> batch, WeightProvider& provider, float* logits) {
  int64_t n = 0;
  for (auto& s : batch) n += static_cast<int64_t>(s.tokens.size());
  if (n == 0) return Status::Ok();
  EnsureScratch(n);
  n_rows_ = n;
  // Row segments, one matmul call each, so that every row's numerics depend only on
  // its own step: a single-token step (decode) takes the GEMV path, which is
  // row-independent, so consecutive ones share one call; a multi-token step (a prefill
  // chunk) gets its own call with its own m, exactly as if it ran alone. Hence a
  // sequence's logits never depend on what else shares the step.
  const std::vector<RowSegment> segs = Segments(batch, /*logit_rows=*/false);
  const std::vector<RowSegment> out_segs = Segments(batch, /*logit_rows=*/true);
  const int64_t D = c_.n_embd;

  // Row bookkeeping: row r is at position pos_[r] of its sequence (a tree node: the
  // tree's base + its depth).
  {
    int64_t r = 0;
    std::vector<int32_t> depth;
    for (auto& s : batch) {
      const int64_t p0 = s.kv->n_tokens();
      if (s.tree()) {
        SPOOL_TRY(TreeDepths(s.tree_parent, &depth));
        SPOOL_CHECK(static_cast<int64_t>(depth.size()) == p0 + static_cast<int64_t>(s.tokens.size()) - s.tree_base);
        for (size_t i = 0; i < s.tokens.size(); ++i) pos_[r++] = s.tree_base + depth[static_cast<size_t>(p0 - s.tree_base) + i];
        if (s.tree_rows != nullptr) {
          const kv::KvLayout& L = s.kv->layout();
          *s.tree_rows = TreeRows{p0, static_cast<int64_t>(s.tokens.size()), L.row_bytes(), {}, {}};
          s.tree_rows->k.resize(static_cast<size_t>(L.n_layer));
          s.tree_rows->v.resize(static_cast<size_t>(L.n_layer));
        }
        continue;
      }
      for (size_t i = 0; i < s.tokens.size(); ++i) pos_[r++] = p0 + static_cast<int64_t>(i);
    }
  }
  Stopwatch total;
  double waited = 0;
  auto acquire = [&](int g) -> Result<const uint8_t*> {
    Stopwatch sw;
    auto r = provider.Acquire(g);
    waited += sw.Seconds();
    return r;
  };

  provider.BeginStep();
  // Embeddings.
  {
    std::vector<int32_t> ids;
    ids.reserve(n);
    for (auto& s : batch) ids.insert(ids.end(), s.tokens.begin(), s.tokens.end());
    SPOOL_TRY(provider.EmbeddingRows(ids.data(), n, x_.data()));
    if (c_.embd_scale > 0)  // Gemma: × √n_embd (as the config rounded it)
      for (int64_t i = 0; i < n * c_.n_embd; ++i) x_[i] *= c_.embd_scale;
  }

  // The decoder: each layer is its token mixer, then its feed-forward block.
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    SPOOL_ASSIGN_OR_RETURN(const uint8_t* g, acquire(static_cast<int>(l)));
    switch (c_.layers[l].mixer) {
      case MixerKind::kAttention:
      case MixerKind::kSlidingAttention: SPOOL_TRY(AttentionMixer(batch, l, g, segs)); break;
      case MixerKind::kLinearAttention: SPOOL_TRY(LinearMixer(batch, l, g, segs)); break;
    }
    SPOOL_TRY(FeedForwardBlock(l, g, provider, segs));
    provider.Release(static_cast<int>(l));
  }

  // Output: gather the rows that need logits, normalise, project.
  const int64_t n_out = LogitRows(batch);
  {
    int64_t r = 0, o = 0;
    for (auto& s : batch) {
      const int64_t m = static_cast<int64_t>(s.tokens.size());
      if (s.all_logits) {
        std::copy(x_.begin() + r * D, x_.begin() + (r + m) * D, h_.begin() + o * D);
        o += m;
      } else {
        std::copy(x_.begin() + (r + m - 1) * D, x_.begin() + (r + m) * D, h_.begin() + o * D);
        o += 1;
      }
      r += m;
    }
  }
  RmsNorm(h_.data(), w_.output_norm().data(), c_.rms_eps, n_out, D, h_.data());
  SPOOL_ASSIGN_OR_RETURN(const uint8_t* head, acquire(w_.head_group()));
  MatMulSegments(View(w_.output(), head), h_.data(), logits, out_segs);
  provider.Release(w_.head_group());
  if (c_.final_softcap > 0) SoftCap(logits, n_out * c_.n_vocab, c_.final_softcap);

  for (auto& s : batch) {
    SPOOL_TRY(s.kv->Commit(static_cast<int64_t>(s.tokens.size())));
    if (s.state) s.state->Commit(static_cast<int64_t>(s.tokens.size()));
  }
  stats_.seconds_weight_wait += waited;
  stats_.seconds_compute += total.Seconds() - waited;
  stats_.tokens += static_cast<uint64_t>(n);
  stats_.steps += 1;
  return Status::Ok();
}

}  // namespace spool::models
