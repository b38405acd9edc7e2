// Logits → next token.
//
// Order of operations (as llama.cpp's default chain): logit bias (OpenAI's
// logit_bias: a constant added to chosen tokens' logits) → penalties over the recent
// window → top-k → top-p → min-p → temperature → draw. temperature <= 0 means
// greedy: the highest logit after penalties, ties going to the lowest id.
// A Sampler is per sequence (it keeps the token history for penalties and its own
// RNG); it is deterministic for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace spool::sampling {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy
  int32_t top_k = 40;           // <= 0: disabled
  float top_p = 0.95f;          // >= 1: disabled
  float min_p = 0.05f;          // <= 0: disabled
  float repeat_penalty = 1.0f;  // 1: disabled (llama.cpp semantics: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t penalty_last_n = 64;  // window of recent tokens the penalties see; -1 = all
  uint64_t seed = 0xC0FFEE;
  // (token id, bias) pairs added to the logits before everything else, greedy
  // included (OpenAI logit_bias). Bias in [-100, 100]; ids beyond the logits are
  // skipped here (request parsers check them against the vocabulary).
  std::vector<std::pair<int32_t, float>> logit_bias;
  static constexpr float kMaxLogitBias = 100.0f;

  // Greedy decoding with every penalty off: the setting tests compare against references.
  static SamplingParams Greedy() {
    SamplingParams p;
    p.temperature = 0;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    return p;
  }
  // InvalidArgument naming the field for out-of-range values (negative penalty, top_p > 1...).
  Status Validate() const;
};

// What Sampler::Sample draws from: candidate ids and their probabilities (summing to
// 1) after logit bias, penalties, top-k, top-p, min-p and temperature. Greedy: the arg
// max alone, probability 1.
struct TokenDistribution {
  std::vector<int32_t> ids;
  std::vector<double> probs;
  double Prob(int32_t id) const;  // 0 for ids outside the candidates
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Records tokens that penalties should see (the prompt, then every sampled token).
  void Accept(int32_t token);
  void AcceptMany(std::span<const int32_t> tokens);

  // Chooses the next token from logits [n_vocab]. Does not call Accept.
  int32_t Sample(std::span<const float> logits);

  // The pieces of Sample, for speculative sampling's rejection rule (runtime/
  // speculative.h): Sample(l) == Draw(Distribution(l)) when temperature > 0 (one RNG
  // draw), ArgMax without a draw when greedy.
  TokenDistribution Distribution(std::span<const float> logits) const;
  int32_t Draw(const TokenDistribution& d);
  // Uniform double in [0, 1) from 53 random bits of the sampler's RNG.
  double Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  const SamplingParams& params() const { return params_; }

 private:
  void ApplyLogitBias(std::vector<float>& logits) const;
  bool PenaltiesApply() const;  // a penalty is set and there is history to penalise
  void ApplyPenalties(std::vector<float>& logits) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;
};

// Index of the largest value, lowest index on ties. n must be > 0.
int32_t ArgMax(std::span<const float> values);

}  // namespace spool::sampling
