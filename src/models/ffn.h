// The feed-forward parts of a decoder layer: a dense SwiGLU MLP, or a mixture of
// experts. The Transformer calls one of them per layer, as the layer's LayerSpec says,
// on blocks of at most Transformer::kMlpRowBlock rows of one row segment.
//
//   dense:  y = (silu(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ
//   moe:    p = softmax(h·Wrᵀ) [m, n_expert]; top-k per row (renormalised if norm_topk_prob)
//           y = Σ_{e in top-k} p_e · dense_e(h)             (experts in index order;
//                                                            ggml numerics: by rank, as llama.cpp)
//             (+ sigmoid(h·wsᵀ) · dense_shared(h))          (Qwen2-MoE)
//
// Prefill rows are grouped by expert: one matmul per expert over the block's rows that
// chose it. Expert weights come from the WeightProvider once the router has decided
// (PrepareExperts with every expert the block needs, in waves of at most
// ExpertCapacity()). Decode-sized blocks run the experts already in RAM first while the
// others are read; every row still sums its experts in index order (one fma per
// element; ggml numerics: by rank), so numerics depend neither on the run order nor on
// where the bytes come from. Decode rows (gemv) take the row-independent GEMV path, so a row's result
// never depends on which rows share its step. The router always runs on the GEMV path
// (f32 activations): a bf16-rounded router could pick different experts in prefill and
// decode.
#pragma once

#include <cstdint>
#include <vector>

#include "base/thread_pool.h"
#include "models/config.h"
#include "models/weight_provider.h"
#include "models/weights.h"
#include "tensor/matmul.h"

namespace spool::models {

// The view of matrix `m` in a group buffer at `group_base`.
inline WeightView View(const MatrixRef& m, const uint8_t* group_base) {
  return WeightView{m.dtype, group_base + m.group_offset, m.n_out, m.n_in,
                    m.scales_info ? group_base + m.scales_offset : nullptr};
}

// y = x·Wᵀ for m rows: the GEMV path when gemv (or for quantised weights, always
// row-independent), else MatMul (GEMM for float weights).
void MatMulRows(MatMulContext& mm, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, bool gemv,
                float* y);

class FeedForward {
 public:
  // Blocks with m · n_expert_used · n_embd at most this many floats keep each (row, slot)
  // output and may run experts out of index order (decode, short verification steps).
  static constexpr int64_t kMoeKeptOutputsMax = int64_t{1} << 20;

  FeedForward(const ModelConfig& c, ThreadPool& pool, MatMulContext& mm) : c_(c), pool_(pool), mm_(mm) {}

  // h: [m, n_embd] (normalised rows), y: [m, n_embd] out (h and y must not overlap).
  // g: the layer's group buffer. m <= max_rows of the last Reserve.
  void Dense(const SwiGluWeights& w, const uint8_t* g, const float* h, int64_t m, bool gemv, float* y);
  // Moe: layer l's block; experts from `experts`. Errors: the provider's read errors.
  Status Moe(const MoeWeights& w, int l, const uint8_t* g, WeightProvider& experts, const float* h, int64_t m, bool gemv,
             float* y);

  // The last Moe block's routing: [m, n_expert_used] expert ids and weights.
  const int32_t* last_ids() const { return ids_.data(); }
  const float* last_weights() const { return weights_.data(); }

  // Grows scratch for blocks of up to max_rows rows.
  void Reserve(int64_t max_rows);

 private:
  // Logits of a router-like f32 (or any) matrix m on rows of h: the GEMV path, or
  // llama.cpp's f32 order under ggml numerics (MatMulF32Ggml). out: [rows, m.n_out]
  void GateLogits(const MatrixRef& m, const uint8_t* g, const float* h, int64_t rows, float* out);
  // One SwiGLU MLP of intermediate size ff on m rows; y = result.
  void SwiGlu(const SwiGluWeights& w, const uint8_t* g, int64_t ff, const float* h, int64_t m, bool gemv, float* y);
  // gpt-oss's expert e (ffn_gptoss.cc): gate/up (one interleaved matrix for HF, two for
  // GGUF) + biases → SwiGLUOai → down + bias, on m rows; y = result.
  void OaiExpert(const MoeWeights& w, int64_t e, const uint8_t* g, const float* h, int64_t m, bool gemv, float* y);

  const ModelConfig& c_;
  ThreadPool& pool_;
  MatMulContext& mm_;
  int64_t cap_rows_ = 0;
  std::vector<float> gate_, up_;             // [rows, max_ff]
  std::vector<float> gate_up_;               // [rows, 2 · n_ff_expert] (gpt-oss HF interleaved experts)
  // MoE scratch.
  std::vector<float> router_;                // [rows, n_expert]
  std::vector<int32_t> ids_;                 // [rows, k]
  std::vector<float> weights_;               // [rows, k]
  std::vector<float> xs_, ys_;               // [rows, n_embd]: one expert's gathered rows in / out
  std::vector<int64_t> rows_of_;             // [rows]: which block row each gathered row is
  std::vector<int64_t> slot_of_;             // [rows]: its (row, slot) index r·k + i (i = rank in the row's top-k)
  std::vector<float> kept_;                  // [rows, k, n_embd]: per (row, slot) outputs (see Moe)
  std::vector<int32_t> order_;               // one wave's experts in run order
  std::vector<int64_t> row_slots_;           // [k]: one row's slots by ascending expert id
  std::vector<int32_t> needed_;              // [<= n_expert]: experts the block chose, ascending
};

}  // namespace spool::models
