// Causal multi-head attention with grouped KV heads over KV pages, flash-attention
// style: an online softmax folds one page at a time into per-(query, head) running
// states, so only one page's scores for one (query, head) exist at a time and pages
// may be loaded (e.g. from disk) one by one.
//
// Usage:
//   AttentionState st;  st.Reset(n_q, shape);
//   for each page (any order): AttentionFoldPage(pool, shape, q, pos_q, n_q, page, st);
//   AttentionFinalize(shape, st, out);
// Numerics: scores and the softmax are f32; K/V stored as bf16 are widened exactly;
// exp is simd::Exp (within 1 ulp of the rounded exact value).
// Versus AttentionRef (materialised scores, double softmax): |Δ| <= 1e-5 · max|v| + 1e-6.
// Each (query, head) result depends only on its q, position and the pages folded (and
// their order): not on n_q, the thread count, or the pages' addresses (bit for bit).
#pragma once

#include <cstdint>
#include <vector>

#include "base/dtype.h"
#include "base/thread_pool.h"

namespace spool {

struct AttentionShape {
  int64_t n_head;     // query heads
  int64_t n_kv_head;  // key/value heads; n_head % n_kv_head == 0 (query head h uses kv head h / (n_head / n_kv_head))
  int64_t head_dim;
  float scale;        // score = scale · q·k, usually 1/sqrt(head_dim)
  // Sliding window (0: none): query at position p sees keys at positions k with
  // p - window < k <= p, i.e. the window includes the query's own token (transformers'
  // sliding_window_overlay: kv_idx > q_idx - sliding_window).
  int64_t window = 0;
  // Logit soft-capping (0: none, Gemma 2): score = softcap · tanh(score / softcap),
  // applied to the scaled score before masking, as transformers' eager attention.
  float softcap = 0.0f;
  // Attention sinks (null: none, gpt-oss): one learned logit per query head that joins
  // the softmax denominator and contributes no value: out = Σ e^(s_k − m) v_k /
  // (Σ e^(s_k − m) + e^(sink − m)), m the largest of the scores and the sink. Folded in
  // by AttentionFinalize, so pages still fold in any order. [n_head]
  const float* sinks = nullptr;
};

// One page of cached keys and values (non-owning). Token t of the page is at absolute
// position first_pos + t.
struct KvPageView {
  DType dtype;        // kF32 or kBF16
  const void* k;      // [n_tokens, n_kv_head, head_dim]
  const void* v;      // [n_tokens, n_kv_head, head_dim]
  int64_t n_tokens;
  int64_t first_pos;
};

// Running softmax state of every (query, head) pair. Reset before the first page.
class AttentionState {
 public:
  void Reset(int64_t n_q, const AttentionShape& shape);

  int64_t n_q() const { return n_q_; }
  float* max() { return max_.data(); }  // [n_q, n_head]: largest score so far (-inf: none)
  float* sum() { return sum_.data(); }  // [n_q, n_head]: Σ exp(score - max)
  float* acc() { return acc_.data(); }  // [n_q, n_head, head_dim]: Σ exp(score - max) · v
  const float* max() const { return max_.data(); }
  const float* sum() const { return sum_.data(); }
  const float* acc() const { return acc_.data(); }

 private:
  int64_t n_q_ = 0;
  std::vector<float> max_, sum_, acc_;
};

// Folds one page into st: for query i and head h, keys with position <= pos_q[i] (and,
// with a window, > pos_q[i] - window) take part (others are masked). Parallel over (kv head × query block × head block) items;
// each item widens and transposes its kv head's page once (f32 scratch per thread,
// O(page tokens × head_dim)) for all the query heads of the group and all its queries.
// q: [n_q, n_head, head_dim]   pos_q: [n_q]
void AttentionFoldPage(ThreadPool& pool, const AttentionShape& shape, const float* q, const int64_t* pos_q,
                       int64_t n_q, const KvPageView& page, AttentionState& st);

// out = acc / sum per (query, head) (with sinks: acc·c / (sum·c + e^(sink − m')), m' =
// max(m, sink), c = e^(m − m')); a pair that saw no key gets zeros.
// out: [n_q, n_head * head_dim]
void AttentionFinalize(const AttentionShape& shape, const AttentionState& st, float* out);

// Reference: materialises the scores over all pages, softmax in double.
// Same shapes as above; out: [n_q, n_head * head_dim]
void AttentionRef(const AttentionShape& shape, const float* q, const int64_t* pos_q, int64_t n_q,
                  const std::vector<KvPageView>& pages, float* out);

}  // namespace spool
