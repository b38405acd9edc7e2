// Prefill attention on bf16 dot products (AVX-512 BF16 `vdpbf16ps`): the same paged
// online-softmax fold as AttentionFoldPage (attention.h), with Q·Kᵀ and P·V as bf16 pair
// products accumulated in f32. Used for prefill chunks (many queries); decode and
// verification rows keep AttentionFoldPage's f32 numerics.
//
// Numerics: K and V pages are bf16 already (taken exactly); q is rounded to bf16 (RNE)
// before Q·Kᵀ, and p = exp(s − max) is rounded to bf16 before P·V; the running max, the
// scale, exp, the rescaling and the sum Σp stay in f32. exp of the scores is
// 2^(q·k·scale·log2e − max·log2e) by a degree-5 polynomial on [−1/2, 1/2] and vscalefps
// (relative error < 4e-6 before the rounding of p to bf16, 2^-9); Σp sums the rounded p
// (the weights that multiply V) with a bf16 dot against ones. vdpbf16ps accumulates in
// f32 with round-to-nearest-even and flushes denormals (DAZ/FTZ), in P·V and Σp alike.
// Versus AttentionRef (double): with δ = 2^-8 · scale · max over visible keys of Σ_j |q_j·k_j|,
//   |Δ| <= max|v| · (exp(2·(δ + 2^-8)) − 1) + 1e-5 · max|v| + 1e-6      (tested)
// (2^-9 relative rounding of each q_j moves a score by at most δ/2; of each p by 2^-9.)
// Invariance, as AttentionFoldPage: each (query, head) result depends only on its q, its
// position and the pages folded (in order) — not on n_q, the thread count, the tile it
// lands in or the pages' addresses (tested), so disk KV = RAM KV bit for bit. Key pairs
// (t, t+1) are fixed by the position within the page; keys a row cannot see enter as p = 0.
//
// Dispatch is at run time: AttentionBf16Supported() says whether this CPU (and build)
// has AVX-512 BF16; callers fall back to AttentionFoldPage (f32 FMA) otherwise. Intel AMX
// tiles are not used (not testable on the development machines).
#pragma once

#include <cstdint>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/thread_pool.h"
#include "tensor/attention.h"

namespace spool {

// The CPU executes AVX-512 BF16 and this build compiled the kernel.
bool AttentionBf16Supported();

// True when AttentionFoldPageBf16 accepts this shape and page: bf16 K/V, even head_dim,
// and AttentionBf16Supported().
bool AttentionBf16Accepts(const AttentionShape& shape, const KvPageView& page);

// As AttentionFoldPage (same contract, masks, window, softcap, state), on bf16 dot
// products. Precondition: AttentionBf16Accepts(shape, page). (A span of one page.)
// q: [n_q, n_head, head_dim]   pos_q: [n_q]
void AttentionFoldPageBf16(ThreadPool& pool, const AttentionShape& shape, const float* q, const int64_t* pos_q,
                           int64_t n_q, const KvPageView& page, AttentionState& st);

// A run of KV pages staged for the bf16 kernel and folded in one pass. Folding a span
// equals folding its pages one by one with AttentionFoldPageBf16, in the order added,
// bit for bit: each (query, head) row still takes one online-softmax step per page. Only
// the loop order differs: a register tile of rows runs over every page of the span before
// the next tile, so its q rows are converted to bf16 and its f32 accumulators fetched once
// per span instead of once per page (at a 512-query chunk those are 4 MB and 8 MB of
// traffic per page), and the threads meet at one barrier per span instead of one per page.
//
// Use: Begin(shape, pos_q, n_q) for one set of queries (pos_q is held until the last
// Fold); Add pages in the order they are to be folded; Add copies the page's K/V into the
// span's staged layout (the view need not outlive the call) and returns false, staging
// nothing, when the span holds pages already and this one would take it past max_keys
// staged keys or past its buffers: Fold, then Add the page again (an empty span takes any
// page). Fold(q, st) folds what is staged into st and empties the span (Begin's queries
// stay). Pages no query sees are skipped by Add, as AttentionFoldPageBf16 skips them.
// Memory: about 4 · head_dim · n_kv_head bytes per staged key (K and V pairs).
class AttentionBf16Span {
 public:
  static constexpr int64_t kDefaultMaxKeys = 1024;  // K+V of one kv head: 256 KB at head_dim 64 (L2)

  explicit AttentionBf16Span(int64_t max_keys = kDefaultMaxKeys) : max_keys_(max_keys) {}

  // Precondition: shape.n_head % shape.n_kv_head == 0, even head_dim.
  void Begin(const AttentionShape& shape, const int64_t* pos_q, int64_t n_q);
  // Precondition: Begin called; AttentionBf16Accepts(shape, page).
  bool Add(ThreadPool& pool, const KvPageView& page);
  // Precondition: st.n_q() == n_q of Begin. q: [n_q, n_head, head_dim]
  void Fold(ThreadPool& pool, const float* q, AttentionState& st);

  bool empty() const { return pages_.empty(); }
  int64_t staged_keys() const { return keys_; }

  // One staged page: its positions, the keys any query sees (t_eff), and where its K pairs
  // (kt_off) and V pairs (vp_off) start in each kv head's region of the staged buffers.
  struct StagedPage {
    int64_t first_pos, n_tokens, t_eff, kt_off, vp_off;
  };

 private:
  int64_t max_keys_;
  AttentionShape shape_{};
  const int64_t* pos_q_ = nullptr;
  int64_t n_q_ = 0;
  std::vector<StagedPage> pages_;
  int64_t keys_ = 0, kt_used_ = 0, vp_used_ = 0;      // staged keys; words used per kv head
  int64_t kt_stride_ = 0, vp_stride_ = 0;             // words per kv head region (0: unallocated)
  int64_t staged_heads_ = 0, staged_dim_ = 0;         // the shape the strides were sized for
  AlignedBuffer kt_, vp_;                              // [n_kv_head, stride] 32-bit words
};

// The kernel's 2^x for x <= 0 (−inf → 0, NaN → NaN), exposed for its test: out[i] =
// 2^x[i] within 4e-6 relative (f32 subnormals and 0 below 2^-126 as vscalefps rounds
// them). Precondition: AttentionBf16Supported(). x, out: [n]
void AttentionBf16Exp2ForTest(const float* x, int64_t n, float* out);

}  // namespace spool
