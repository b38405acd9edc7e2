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

#include "base/thread_pool.h"
#include "tensor/attention.h"

namespace spool {

// The CPU executes AVX-512 BF16 and this build compiled the kernel.
bool AttentionBf16Supported();

// True when AttentionFoldPageBf16 accepts this shape and page: bf16 K/V, even head_dim,
// and AttentionBf16Supported().
bool AttentionBf16Accepts(const AttentionShape& shape, const KvPageView& page);

// As AttentionFoldPage (same contract, masks, window, softcap, state), on bf16 dot
// products. Precondition: AttentionBf16Accepts(shape, page).
// q: [n_q, n_head, head_dim]   pos_q: [n_q]
void AttentionFoldPageBf16(ThreadPool& pool, const AttentionShape& shape, const float* q, const int64_t* pos_q,
                           int64_t n_q, const KvPageView& page, AttentionState& st);

// The kernel's 2^x for x <= 0 (−inf → 0, NaN → NaN), exposed for its test: out[i] =
// 2^x[i] within 4e-6 relative (f32 subnormals and 0 below 2^-126 as vscalefps rounds
// them). Precondition: AttentionBf16Supported(). x, out: [n]
void AttentionBf16Exp2ForTest(const float* x, int64_t n, float* out);

}  // namespace spool
