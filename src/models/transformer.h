// The forward pass shared by every supported architecture (Llama, Mistral, Qwen2,
// Qwen3, Gemma 2/3, and the mixtures of experts Qwen2-MoE, Qwen3-MoE, Mixtral, OLMoE,
// gpt-oss): pre-norm
// decoder layers, each a token mixer (GQA attention) followed by a feed-forward block
// (dense SwiGLU or a mixture of experts, models/ffn.h), as its LayerSpec says.
// Attention variants are ModelConfig flags (QKV bias, q/k norm, rope style/scaling,
// score scale and soft-capping); a layer's window and RoPE are its LayerSpec's
// (sliding-window attention: MixerKind::kSlidingAttention; Gated DeltaNet:
// MixerKind::kLinearAttention, models/linear_attention.h, with its per-sequence state in
// SeqStep::state; Qwen3-Next's gated attention: attn_output_gate). gpt-oss adds attention
// sinks (AttentionShape::sinks, per head) and a bias on the output projection. Gemma's sandwich norms
// normalise the mixer's and the feed-forward block's outputs before the residual add.
//
// One call runs one *step*: a batch of sequences, each contributing a run of new
// tokens (a prefill chunk, or one decode token). All rows go through each weight
// group together, so a group is read once per step however many tokens it serves.
//
//   for each layer l:                       x: [n_rows, n_embd]
//     h = rmsnorm(x) · attn_norm
//     q = h·Wqᵀ (+bq) [n_rows, q_dim]; k, v = h·Wkᵀ, h·Wvᵀ (+bias) [n_rows, kv_dim]
//     (qwen3) per-head rmsnorm of q and k; RoPE on q, k at each row's position
//     K/V appended to each sequence's cache; attention per sequence over its pages
//     x += attn·Woᵀ
//     h = rmsnorm(x) · ffn_norm;  x += Dense(h) or Moe(h)           (in row blocks)
//   logits = rmsnorm(x[selected rows]) · output_norm · Woutᵀ   (Gemma 2: soft-capped)
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "kv/kv_cache.h"
#include "kv/recurrent_state.h"
#include "models/ffn.h"
#include "models/tree_attention.h"
#include "models/linear_attention.h"
#include "models/weight_provider.h"
#include "models/weights.h"
#include "tensor/attention.h"
#include "tensor/attention_bf16.h"
#include "tensor/matmul.h"

namespace spool::models {

struct SeqStep {
  kv::SequenceKv* kv = nullptr;       // the sequence's cache; new tokens start at kv->n_tokens()
  std::span<const int32_t> tokens;    // new tokens (ids already range-checked by the caller)
  bool all_logits = false;            // logits for every token (perplexity) or only the last
  // Every row takes the decode path (GEMV, single-query attention kernel), as if its
  // tokens were fed one decode step at a time: row i's logits are bit-identical to
  // decoding tokens[0..i] one by one. Speculative verification (runtime/speculative.h)
  // sets it so that checking drafts never changes the output.
  bool decode_rows = false;
  // Draft tree (models/tree_attention.h): non-empty makes the rows nodes of a tree —
  // node i at slot tree_base + i, parent tree_parent[i] (-1: hangs off slot
  // tree_base - 1), position tree_base + depth — each attending to the committed KV and
  // its ancestors only, with decode numerics (implies decode_rows).
  // [kv->n_tokens() + tokens.size() - tree_base]; checked by the caller (TreeDepths).
  int64_t tree_base = 0;
  std::span<const int32_t> tree_parent;
  TreeRows* tree_rows = nullptr;  // optional: receives the step's K/V rows (KeepTreePath)
  bool tree() const { return !tree_parent.empty(); }
  // The sequence's linear-attention state (models with kLinearAttention layers; else
  // nullptr). Committed with the KV at the end of the step.
  kv::RecurrentState* state = nullptr;
};

// Counters of one Transformer, cumulative.
struct ForwardStats {
  double seconds_compute = 0;    // inside kernels (excludes waiting for weights)
  double seconds_weight_wait = 0;  // blocked in WeightProvider::Acquire
  uint64_t tokens = 0;
  uint64_t steps = 0;
};

// One MoE feed-forward block's routing decisions (for --trace-routing): row i is at
// position pos[i] of its sequence and chose experts ids[i·k .. i·k+k) (descending
// probability) with weights[i·k ..]. Valid during the callback only.
struct RoutingRecord {
  int64_t layer = 0;
  int64_t rows = 0, k = 0;
  const int64_t* pos = nullptr;     // [rows]
  const int32_t* ids = nullptr;     // [rows, k]
  const float* weights = nullptr;   // [rows, k]
};
using RoutingObserver = std::function<void(const RoutingRecord&)>;

class Transformer {
 public:
  Transformer(const ModelWeights& weights, ThreadPool& pool);

  // Rows of logits this batch produces: Σ (all_logits ? tokens.size() : 1).
  static int64_t LogitRows(std::span<const SeqStep> batch);

  // Runs one step. logits: [LogitRows(batch), n_vocab]. Steps may mix prefill chunks
  // and decode tokens of different sequences; each row's result is bit-identical to
  // running its step alone (see Segments). Each sequence's KV cache gets
  // its new tokens appended and committed. On failure (I/O error while streaming) the
  // caches are left without the step's tokens.
  Status Forward(std::span<const SeqStep> batch, WeightProvider& provider, float* logits);

  const ForwardStats& stats() const { return stats_; }
  // Called after every MoE block's routing (nullptr: off). Costs nothing when off.
  void SetRoutingObserver(RoutingObserver fn) { routing_observer_ = std::move(fn); }
  // Rows per feed-forward block: bounds activation memory for long prefill chunks.
  static constexpr int64_t kMlpRowBlock = 512;

 private:
  // Rows [row0, row0 + rows) computed by one matmul call; gemv: single-token steps.
  struct RowSegment {
    int64_t row0, rows;
    bool gemv;
  };
  // Segments of the step's activation rows (logit_rows false) or of its logit rows.
  static std::vector<RowSegment> Segments(std::span<const SeqStep> batch, bool logit_rows);
  void EnsureScratch(int64_t n_rows);
  // x += attention(rmsnorm(x)) for every row of the step (the layer's token mixer).
  Status AttentionMixer(std::span<const SeqStep> batch, int64_t layer, const uint8_t* g,
                        const std::vector<RowSegment>& segs);
  Status Attention(const SeqStep& s, int64_t layer, int64_t row0, const float* q, float* out);
  // x += GatedDeltaNet(rmsnorm(x)) (kLinearAttention layers; models/linear_attention.h).
  Status LinearMixer(std::span<const SeqStep> batch, int64_t layer, const uint8_t* g,
                     const std::vector<RowSegment>& segs);
  // x += ffn(rmsnorm(x)), dense or MoE as the layer's spec says, in row blocks (MoE
  // experts from `provider`; errors are its read errors).
  Status FeedForwardBlock(int64_t layer, const uint8_t* g, WeightProvider& provider, const std::vector<RowSegment>& segs);
  // y = x·Wᵀ over the rows of `segs`, one matmul call per segment.
  void MatMulSegments(const WeightView& w, const float* x, float* y, const std::vector<RowSegment>& segs);

  const ModelWeights& w_;
  const ModelConfig& c_;
  ThreadPool& pool_;
  MatMulContext mm_;
  FeedForward ffn_;
  GatedDeltaNet delta_net_;
  std::vector<int64_t> kv_layer_;              // [n_layer]: the layer's KV slot (ModelConfig::kv_layer)
  std::vector<std::vector<float>> inv_freq_;  // [n_layer][rope_dim / 2] (each layer's RoPE)
  AttentionState att_state_;
  AttentionBf16Span bf16_span_;  // prefill: bf16 KV pages folded a span at a time
  TreeAttention tree_att_;
  ForwardStats stats_;
  RoutingObserver routing_observer_;
  // Scratch, grown to the largest step seen.
  int64_t cap_rows_ = 0;
  int64_t n_rows_ = 0;  // rows of the step being run
  std::vector<float> x_, h_, q_, k_, v_, attn_;
  std::vector<float> qg_, gate_;       // attn_output_gate: [rows, 2·q_dim] projection, [rows, q_dim] gate
  std::vector<float> qkvz_, ba_, lin_y_;  // linear layers: [rows, qkvz_dim], [rows, ba_dim], [rows, value_dim]
  std::vector<float> lin_z_;              // [rows, value_dim]: z of split projections (qkvz_ then holds qkv)
  std::vector<float> ffn_out_;  // [min(rows, kMlpRowBlock), n_embd]
  std::vector<int64_t> pos_;
};

}  // namespace spool::models
