// gpt-oss's expert MLP (FeedForward::OaiExpert), transformers' GptOssExperts:
//   gate_up = h·W_guᵀ + b_gu;  gate, up = gate_up[..., ::2], gate_up[..., 1::2]
//   out = ((clamp(up, ±limit) + 1) · g · sigmoid(α g), g = min(gate, limit))·W_downᵀ + b_down
// HF experts are one interleaved [2F, D] matrix (MXFP4, split layout); GGUF ones are
// llama.cpp's separate gate and up matrices (its converter de-interleaves them).
#include "models/ffn.h"
#include "tensor/ops.h"

namespace spool::models {

void FeedForward::OaiExpert(const MoeWeights& w, int64_t e, const uint8_t* g, const float* h, int64_t m, bool gemv,
                            float* y) {
  const int64_t F = c_.moe.n_ff_expert, D = c_.n_embd;
  const SwiGluWeights& x = w.experts[e];
  const float* gb = w.gate_bias.data() + e * F;
  const float* ub = w.up_bias.data() + e * F;
  if (x.gate_up.info) {
    MatMulRows(mm_, pool_, View(x.gate_up, g), h, m, gemv, gate_up_.data());  // [m, 2F] interleaved
    for (int64_t r = 0; r < m; ++r) {
      const float* gu = gate_up_.data() + r * 2 * F;
      float* gr = gate_.data() + r * F;
      float* ur = up_.data() + r * F;
      for (int64_t j = 0; j < F; ++j) {
        gr[j] = gu[2 * j] + gb[j];
        ur[j] = gu[2 * j + 1] + ub[j];
      }
    }
  } else {
    MatMulRows(mm_, pool_, View(x.gate, g), h, m, gemv, gate_.data());  // [m, F]
    MatMulRows(mm_, pool_, View(x.up, g), h, m, gemv, up_.data());      // [m, F]
    for (int64_t r = 0; r < m; ++r) {
      Add(gate_.data() + r * F, gb, F, gate_.data() + r * F);
      Add(up_.data() + r * F, ub, F, up_.data() + r * F);
    }
  }
  SwiGLUOai(gate_.data(), up_.data(), m * F, c_.swiglu_alpha, c_.swiglu_limit, gate_.data());
  MatMulRows(mm_, pool_, View(x.down, g), gate_.data(), m, gemv, y);  // [m, D]
  const float* db = w.down_bias.data() + e * D;
  for (int64_t r = 0; r < m; ++r) Add(y + r * D, db, D, y + r * D);
}

}  // namespace spool::models
