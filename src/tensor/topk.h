// Mixture-of-experts routing: softmax over the router's logits, the k most probable
// experts of each row, optionally renormalised to sum to 1.
#pragma once

#include <cstdint>

namespace spool {

// logits: [n_rows, n_expert] f32 (the router's output, h·Wrᵀ).
// ids: [n_rows, k] out, expert indices by descending probability; equal probabilities
//   keep the lower index first. weights: [n_rows, k] out, their probabilities
//   (softmax over all n_expert), divided by their sum when `renormalize`.
// Requires 1 <= k <= n_expert. Each row is computed independently of the others.
void RouteTopK(const float* logits, int64_t n_rows, int64_t n_expert, int64_t k, bool renormalize, int32_t* ids,
               float* weights);

// RouteTopK as llama.cpp's CPU backend computes it (build_moe_ffn: ggml_soft_max →
// argsort top-k → get_rows → sum_rows and div when renormalising), for `--numerics ggml`:
// y_e = exp(z_e - max) by ExpfGgml over each full 16-wide chunk and libm expf over the
// tail; S = Σ in double of the chunks' 16-lane tree sums and the tail's values;
// p_e = y_e · (float)(1 / S); the k largest p (ties: lower index first); renormalised
// w_i = p_i / (float)(Σ_i p_i in double). Same contract as RouteTopK.
void RouteTopKGgml(const float* logits, int64_t n_rows, int64_t n_expert, int64_t k, bool renormalize, int32_t* ids,
                   float* weights);

// gpt-oss's router (transformers' GptOssTopKRouter; llama.cpp's SOFTMAX_WEIGHT
// gating): the k largest logits (ties: lower index first), then a softmax over those
// k only. Same shapes as RouteTopK.
void RouteTopKSoftmax(const float* logits, int64_t n_rows, int64_t n_expert, int64_t k, int32_t* ids, float* weights);

}  // namespace spool
