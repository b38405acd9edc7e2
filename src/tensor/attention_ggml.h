// Causal GQA attention with llama.cpp's CPU numerics (no flash attention, f32 KV), bit
// for bit, for GGUF models: what llama.cpp computes as
//   kq = mul_mat(K, q)  → softmax(kq · scale + causal mask)  → kqv = mul_mat(Vᵀ, probs)
// and why each step rounds as it does (measured against llama-cpp-python 0.3.36's
// intermediates with tools/llamacpp_dump.py; see docs/testing.md):
//   score_t  = q·k_t by ggml_vec_dot_f32: 4 accumulators of 16 lanes, element e in
//              accumulator (e / 16) % 4, lane e % 16 (one fma per element, in order);
//              then lanes (a0 + a2) + (a1 + a3) and the 16-lane tree sum.
//   w_t      = score_t · scale (f32); keys after the query's position are masked.
//   y_t      = ExpfGgml(w_t - max);  S = Σ in double of 16-lane tree sums over chunks of
//              16 positions aligned at position 0;  p_t = y_t · (float)(1 / S).
//   out[d]   = Σ_t p_t · v_t[d] by one of two kernels, both fma chains per slot in
//              position order, slots reduced like the score's lanes:
//     kBatch  (a prefill chunk: llamafile's tinyBLAS f32 GEMM): slot = t % 16.
//     kSingle (a single-token step: ggml_vec_dot_f32):           slot = t % 64,
//              lanes (s[l] + s[32+l]) + (s[16+l] + s[48+l]).
// Positions are the sequence's absolute positions (llama.cpp's KV cell index for a
// single sequence from 0); pages must come in position order.
//
// Costs: two passes over the pages (K, then V), and per block of query rows the scores
// [rows, n_head, n_pos] and the V slots [rows, n_head, 64, head_dim] in f32.
// Versus AttentionRef: |Δ| <= 1e-5 · max|v| + 1e-6 (tests/tensor/attention_ggml_test.cc).
#pragma once

#include <cstdint>
#include <functional>

#include "base/status.h"
#include "base/thread_pool.h"
#include "tensor/attention.h"

namespace spool {

enum class GgmlAttnKernel : uint8_t { kBatch, kSingle };

// Calls fn for every page of the sequence's cache that the queries can see, in
// position order (SequenceKv::ForEachPage bound to a layer and an end position).
using KvPageWalk = std::function<Status(const std::function<void(const KvPageView&)>& fn)>;

// q: [n_q, n_head, head_dim]   pos_q: [n_q]   out: [n_q, n_head * head_dim]
// Walks the pages twice per block of 32 query rows.
Status AttentionGgml(ThreadPool& pool, const AttentionShape& shape, const float* q, const int64_t* pos_q, int64_t n_q,
                     GgmlAttnKernel kernel, const KvPageWalk& walk, float* out);

}  // namespace spool
