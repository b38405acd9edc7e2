// The gated delta rule of Gated DeltaNet (Qwen3-Next's linear attention), one value
// head at a time, in f32 as transformers' torch fallback computes it
// (torch_recurrent_gated_delta_rule / torch_chunk_gated_delta_rule).
//
// Per token t, with state S [dk, dv], l2-normalised k_t and q_t (q_t already scaled by
// 1/√dk), decay g_t <= 0 (log space) and β_t in (0, 1):
//   S ← exp(g_t) · S
//   S ← S + k_t ⊗ β_t (v_t − Sᵀ k_t)          (the delta rule: correct what S predicts)
//   o_t = Sᵀ q_t
//
// Two forms, equal in exact arithmetic:
//   - GatedDeltaRuleRecurrent: the recurrence above, token by token (the reference;
//     decode steps use it);
//   - GatedDeltaRuleChunked: chunks of `chunk` tokens, each a few small matrix
//     products over the chunk and one state update (WY / UT form; prefill steps). Its
//     results equal the recurrence's within the tolerance delta_rule_test states.
#pragma once

#include <cstdint>
#include <vector>

namespace spool {

// One head's inputs for n tokens, rows contiguous.
struct DeltaRuleInputs {
  int64_t n = 0, dk = 0, dv = 0;
  const float* q = nullptr;     // [n, dk] l2-normalised, × 1/√dk
  const float* k = nullptr;     // [n, dk] l2-normalised
  const float* v = nullptr;     // [n, dv]
  const float* g = nullptr;     // [n] log decay (<= 0)
  const float* beta = nullptr;  // [n]
};

// state: [dk, dv] in/out; out: [n, dv].
void GatedDeltaRuleRecurrent(const DeltaRuleInputs& in, float* state, float* out);

// Scratch of the chunked form, grown on demand (one per thread).
struct DeltaRuleScratch {
  std::vector<float> buf;
};
// As GatedDeltaRuleRecurrent, chunk >= 1 tokens per chunk (chunks start at token 0).
void GatedDeltaRuleChunked(const DeltaRuleInputs& in, int64_t chunk, float* state, float* out,
                           DeltaRuleScratch& scratch);

}  // namespace spool
