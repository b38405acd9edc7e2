#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "sampling/sampler.h"

namespace spool::sampling {
namespace {

TEST(Sampler, GreedyPicksMaxLowestIdOnTies) {
  Sampler s(SamplingParams::Greedy());
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.Sample(logits), 1);
}

// Greedy takes the arg max of the logits in place (no copy) unless a bias or a penalty
// has something to change: each case against the general path's answer.
TEST(Sampler, GreedyArgMaxInPlaceOnlyWhenNothingApplies) {
  const std::vector<float> logits = {1.0f, 5.0f, 4.5f, 5.0f};
  SamplingParams p = SamplingParams::Greedy();
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  EXPECT_EQ(s.Sample(logits), 1);  // penalty set, no history yet: plain arg max
  s.Accept(1);
  EXPECT_EQ(s.Sample(logits), 3);  // 5 → 2.5 for token 1: the tie's other token wins
  p.repeat_penalty = 1.0f;
  p.penalty_last_n = 0;
  p.frequency_penalty = 1.0f;
  Sampler off(p);
  off.Accept(1);
  EXPECT_EQ(off.Sample(logits), 1);  // penalty window 0: nothing applies
}

TEST(Sampler, RepeatPenaltyFollowsLlamaCppSemantics) {
  SamplingParams p = SamplingParams::Greedy();
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  // token 0 positive logit 4 → 2; token 1 stays 3 → token 1 wins after penalty.
  s.Accept(0);
  EXPECT_EQ(s.Sample(std::vector<float>{4.0f, 3.0f}), 1);
  // Negative logits are multiplied: -1 → -2, so token 1 (-1.5) wins.
  Sampler s2(p);
  s2.Accept(0);
  EXPECT_EQ(s2.Sample(std::vector<float>{-1.0f, -1.5f}), 1);
}

TEST(Sampler, FrequencyAndPresencePenalties) {
  SamplingParams p = SamplingParams::Greedy();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler s(p);
  s.AcceptMany(std::vector<int32_t>{0, 0});  // token 0: 2.0 - 2*0.5 - 0.25 = 0.75 < 1
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 1.0f}), 1);
}

TEST(Sampler, PenaltyWindowForgetsOldTokens) {
  SamplingParams p = SamplingParams::Greedy();
  p.repeat_penalty = 10.0f;
  p.penalty_last_n = 1;
  Sampler s(p);
  s.AcceptMany(std::vector<int32_t>{0, 1});  // only token 1 is in the window
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 1.9f}), 0);
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 1;
  Sampler s(p);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.Sample(std::vector<float>{0.0f, 0.5f, 0.4f}), 1);
}

TEST(Sampler, SeedDeterminesDraws) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f};
  Sampler a(p), b(p);
  p.seed = 999;
  Sampler c(p);
  std::vector<int32_t> ra, rb, rc;
  for (int i = 0; i < 50; ++i) {
    ra.push_back(a.Sample(logits));
    rb.push_back(b.Sample(logits));
    rc.push_back(c.Sample(logits));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
}

TEST(Sampler, DistributionFollowsSoftmax) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  Sampler s(p);
  std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25 / 0.75
  int ones = 0, n = 20000;
  for (int i = 0; i < n; ++i) ones += s.Sample(logits);
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.02);
}

TEST(Sampler, TopPAndMinPTruncate) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.top_p = 0.5f;  // the first candidate alone (p=0.7) covers 0.5
  Sampler s(p);
  std::vector<float> logits = {std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.Sample(logits), 0);
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keeps tokens with p >= 0.35: only token 0
  Sampler m(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(m.Sample(logits), 0);
}

TEST(SamplingParams, ValidateRejectsOutOfRange) {
  SamplingParams p;
  p.top_p = 1.5f;
  EXPECT_FALSE(p.Validate().ok());
  p = SamplingParams();
  p.repeat_penalty = 0;
  EXPECT_FALSE(p.Validate().ok());
  EXPECT_TRUE(SamplingParams().Validate().ok());
}

// logit_bias: the reference is the plain sampler on logits with the biases added
// by hand; every draw must match, greedy and sampled.
TEST(Sampler, LogitBiasEqualsBiasedLogitsReference) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, -1.0f, 3.0f};
  const std::vector<std::pair<int32_t, float>> bias = {{4, -100.0f}, {2, 1.75f}, {1, 0.25f}, {99, 50.0f}};
  std::vector<float> biased = logits;
  for (auto [id, b] : bias)
    if (id < static_cast<int32_t>(biased.size())) biased[id] += b;
  for (float temp : {0.0f, 0.7f, 1.3f}) {
    SamplingParams p = SamplingParams::Greedy();
    p.temperature = temp;
    p.seed = 42;
    SamplingParams with_bias = p;
    with_bias.logit_bias = bias;
    Sampler a(with_bias), ref(p);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(a.Sample(logits), ref.Sample(biased)) << "temperature " << temp << " draw " << i;
  }
  // Greedy: -100 removes the top token, +100 forces any token.
  SamplingParams g = SamplingParams::Greedy();
  g.logit_bias = {{4, -100.0f}};
  EXPECT_EQ(Sampler(g).Sample(logits), 0);
  g.logit_bias = {{3, 100.0f}};
  EXPECT_EQ(Sampler(g).Sample(logits), 3);
}

TEST(SamplingParams, ValidateLogitBias) {
  SamplingParams p;
  p.logit_bias = {{1, 100.0f}, {2, -100.0f}};
  EXPECT_TRUE(p.Validate().ok());
  p.logit_bias = {{1, 100.5f}};
  EXPECT_FALSE(p.Validate().ok());
  p.logit_bias = {{1, std::nanf("")}};
  EXPECT_FALSE(p.Validate().ok());
  p.logit_bias = {{-1, 1.0f}};
  EXPECT_FALSE(p.Validate().ok());
}

}  // namespace
}  // namespace spool::sampling
