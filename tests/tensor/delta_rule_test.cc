// The gated delta rule (tensor/delta_rule.h): the chunked form against the token-by-token
// recurrence (the reference), and the recurrence against a double-precision version of
// its formula; the causal conv (tensor/causal_conv.h) against a zero-padded direct
// convolution, whole and in pieces (the rolling state).
#include "tensor/delta_rule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/causal_conv.h"

namespace spool {
namespace {

struct Head {
  int64_t n, dk, dv;
  std::vector<float> q, k, v, g, beta, state;
  DeltaRuleInputs in() const { return {n, dk, dv, q.data(), k.data(), v.data(), g.data(), beta.data()}; }
};

// Inputs as Gated DeltaNet makes them: unit q, k (q × 1/√dk), g = −A·softplus(·) < 0,
// β in (0, 1), a non-zero starting state.
Head RandomHead(uint32_t seed, int64_t n, int64_t dk, int64_t dv) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Head h{n, dk, dv};
  auto unit = [&](std::vector<float>& x, float scale) {
    x.resize(n * dk);
    for (int64_t t = 0; t < n; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < dk; ++i) ss += double(x[t * dk + i] = nd(rng)) * x[t * dk + i];
      for (int64_t i = 0; i < dk; ++i) x[t * dk + i] = static_cast<float>(x[t * dk + i] / std::sqrt(ss) * scale);
    }
  };
  unit(h.q, 1.0f / std::sqrt(static_cast<float>(dk)));
  unit(h.k, 1.0f);
  for (int64_t i = 0; i < n * dv; ++i) h.v.push_back(nd(rng));
  for (int64_t t = 0; t < n; ++t) {
    h.g.push_back(-2.0f * u(rng));  // decays down to e^-2 per token
    h.beta.push_back(0.05f + 0.9f * u(rng));
  }
  for (int64_t i = 0; i < dk * dv; ++i) h.state.push_back(0.3f * nd(rng));
  return h;
}

double WorstRel(const std::vector<float>& a, const std::vector<float>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(double(b[i]))));
  return w;
}

TEST(DeltaRule, RecurrenceMatchesDoubleFormula) {
  const Head h = RandomHead(1, 37, 16, 8);
  std::vector<float> S = h.state, out(h.n * h.dv);
  GatedDeltaRuleRecurrent(h.in(), S.data(), out.data());
  std::vector<double> Sd(h.state.begin(), h.state.end());
  double worst = 0;
  for (int64_t t = 0; t < h.n; ++t) {
    for (auto& s : Sd) s *= std::exp(double(h.g[t]));
    std::vector<double> delta(h.dv, 0.0);
    for (int64_t j = 0; j < h.dv; ++j) {
      double mem = 0;
      for (int64_t i = 0; i < h.dk; ++i) mem += Sd[i * h.dv + j] * h.k[t * h.dk + i];
      delta[j] = (h.v[t * h.dv + j] - mem) * h.beta[t];
    }
    for (int64_t i = 0; i < h.dk; ++i)
      for (int64_t j = 0; j < h.dv; ++j) Sd[i * h.dv + j] += h.k[t * h.dk + i] * delta[j];
    for (int64_t j = 0; j < h.dv; ++j) {
      double o = 0;
      for (int64_t i = 0; i < h.dk; ++i) o += Sd[i * h.dv + j] * h.q[t * h.dk + i];
      worst = std::max(worst, std::abs(o - out[t * h.dv + j]) / (1 + std::abs(o)));
    }
  }
  EXPECT_LT(worst, 1e-5);
}

// Tolerance: chunked = recurrence within 2e-5 relative (f32; the chunked form sums
// the same terms in another order and through a triangular solve).
TEST(DeltaRule, ChunkedMatchesRecurrenceForEveryChunkSize) {
  for (int64_t n : {1, 5, 64, 150}) {
    const Head h = RandomHead(static_cast<uint32_t>(n), n, 16, 12);
    std::vector<float> S_ref = h.state, out_ref(n * h.dv);
    GatedDeltaRuleRecurrent(h.in(), S_ref.data(), out_ref.data());
    DeltaRuleScratch scratch;
    for (int64_t chunk : {1, 3, 16, 64, 200}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", chunk " + std::to_string(chunk));
      std::vector<float> S = h.state, out(n * h.dv);
      GatedDeltaRuleChunked(h.in(), chunk, S.data(), out.data(), scratch);
      EXPECT_LT(WorstRel(out, out_ref), 2e-5) << "outputs";
      EXPECT_LT(WorstRel(S, S_ref), 2e-5) << "final state";
    }
  }
}

// Splitting a sequence across calls (prefill chunks, then decode tokens) continues the
// same recurrence.
TEST(DeltaRule, SplitCallsContinueTheState) {
  const Head h = RandomHead(9, 40, 8, 8);
  std::vector<float> S_ref = h.state, out_ref(h.n * h.dv);
  GatedDeltaRuleRecurrent(h.in(), S_ref.data(), out_ref.data());
  std::vector<float> S = h.state, out(h.n * h.dv);
  DeltaRuleScratch scratch;
  for (int64_t t0 : {0, 17, 33}) {
    const int64_t m = (t0 == 0 ? 17 : t0 == 17 ? 16 : 7);
    DeltaRuleInputs in{m, h.dk, h.dv, h.q.data() + t0 * h.dk, h.k.data() + t0 * h.dk, h.v.data() + t0 * h.dv,
                       h.g.data() + t0, h.beta.data() + t0};
    if (t0 == 33) GatedDeltaRuleRecurrent(in, S.data(), out.data() + t0 * h.dv);
    else GatedDeltaRuleChunked(in, 8, S.data(), out.data() + t0 * h.dv, scratch);
  }
  EXPECT_LT(WorstRel(out, out_ref), 2e-5);
  EXPECT_LT(WorstRel(S, S_ref), 2e-5);
}

TEST(CausalConv, MatchesPaddedConvolutionWholeAndInPieces) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int64_t n = 13, C = 5, K = 4;
  std::vector<float> x(n * C), w(C * K);
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  // Direct: zero history before token 0.
  std::vector<double> want(n * C);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < C; ++c) {
      double s = 0;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t src = t - (K - 1) + j;
        if (src >= 0) s += double(w[c * K + j]) * x[src * C + c];
      }
      want[t * C + c] = s / (1 + std::exp(-s));
    }
  std::vector<float> state((K - 1) * C, 0.0f), y(n * C);
  CausalConv1dSilu(x.data(), n, C, w.data(), K, state.data(), y.data());
  for (int64_t i = 0; i < n * C; ++i) EXPECT_NEAR(y[i], want[i], 1e-5 * (1 + std::abs(want[i])));
  // The state holds the last K − 1 inputs.
  for (int64_t r = 0; r < K - 1; ++r)
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(state[r * C + c], x[(n - (K - 1) + r) * C + c]);
  // In pieces of 1, 2 and 10 rows (including pieces shorter than the history).
  std::vector<float> st2((K - 1) * C, 0.0f), y2(n * C);
  CausalConv1dSilu(x.data(), 1, C, w.data(), K, st2.data(), y2.data());
  CausalConv1dSilu(x.data() + C, 2, C, w.data(), K, st2.data(), y2.data() + C);
  CausalConv1dSilu(x.data() + 3 * C, 10, C, w.data(), K, st2.data(), y2.data() + 3 * C);
  EXPECT_EQ(y2, y);
  EXPECT_EQ(st2, state);
}

}  // namespace
}  // namespace spool
