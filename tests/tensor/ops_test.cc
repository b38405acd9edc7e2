// ops.h and rope.h against straightforward double-precision formulas.
#include "tensor/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/rope.h"
#include "test_util.h"

namespace spool {
namespace {

TEST(Ops, RmsNorm) {
  std::mt19937 rng(1);
  const int64_t rows = 3, dim = 100;
  auto x = testing::RandomFloats(rng, rows * dim, 2.0f);
  auto w = testing::RandomFloats(rng, dim);
  std::vector<float> y(rows * dim);
  RmsNorm(x.data(), w.data(), 1e-5f, rows, dim, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double scale = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int64_t i = 0; i < dim; ++i)
      EXPECT_NEAR(y[r * dim + i], x[r * dim + i] * scale * w[i], 1e-6 * std::fabs(x[r * dim + i] * scale * w[i]) + 1e-7);
  }
  RmsNorm(x.data(), w.data(), 1e-5f, rows, dim, x.data());  // in place
  EXPECT_EQ(x, y);
}

TEST(Ops, SwiGLUAddSoftmaxArgmax) {
  std::mt19937 rng(2);
  const int64_t n = 50;
  auto g = testing::RandomFloats(rng, n, 4.0f), u = testing::RandomFloats(rng, n);
  std::vector<float> out(n);
  SwiGLU(g.data(), u.data(), n, out.data());
  for (int64_t i = 0; i < n; ++i) {
    const double s = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
    EXPECT_NEAR(out[i], s, 1e-6 * std::fabs(s) + 1e-7);
  }
  Add(g.data(), u.data(), n, out.data());
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(out[i], g[i] + u[i]);

  std::vector<float> sm = g;
  Softmax(sm.data(), 2, n / 2);
  for (int r = 0; r < 2; ++r) {
    double mx = -1e30, sum = 0;
    for (int64_t i = 0; i < n / 2; ++i) mx = std::max(mx, double(g[r * n / 2 + i]));
    for (int64_t i = 0; i < n / 2; ++i) sum += std::exp(g[r * n / 2 + i] - mx);
    for (int64_t i = 0; i < n / 2; ++i)
      EXPECT_NEAR(sm[r * n / 2 + i], std::exp(g[r * n / 2 + i] - mx) / sum, 1e-6);
  }
  std::vector<float> a = {1.0f, NAN, 5.0f, -2.0f, 5.0f};
  EXPECT_EQ(Argmax(a.data(), 5), 2);
}

TEST(Rope, FrequenciesDefaultLinearLlama3) {
  auto base = RopeFrequencies(64, 64, 10000.0f, {});
  ASSERT_EQ(base.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(base[i], std::pow(10000.0, -2.0 * i / 64), 1e-6 * std::pow(10000.0, -2.0 * i / 64));
  RopeScaling lin;
  lin.kind = RopeScaling::Kind::kLinear;
  lin.factor = 4.0f;
  auto l = RopeFrequencies(64, 64, 10000.0f, lin);
  for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(l[i], base[i] / 4.0f);
  // Llama 3.2 parameters: factor 32, low 1, high 4, original 8192, theta 500000, head_dim 64.
  RopeScaling l3;
  l3.kind = RopeScaling::Kind::kLlama3;
  l3.factor = 32.0f;
  l3.low_freq_factor = 1.0f;
  l3.high_freq_factor = 4.0f;
  l3.original_max_position = 8192;
  auto b = RopeFrequencies(64, 64, 500000.0f, {});
  auto s = RopeFrequencies(64, 64, 500000.0f, l3);
  for (int i = 0; i < 32; ++i) {
    const double wavelen = 2 * M_PI / b[i];
    double expect;
    if (wavelen < 8192.0 / 4) expect = b[i];
    else if (wavelen > 8192.0 / 1) expect = b[i] / 32.0;
    else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expect = (1 - smooth) * b[i] / 32.0 + smooth * b[i];
    }
    EXPECT_NEAR(s[i], expect, 1e-6 * expect) << i;
  }
}

TEST(Rope, InterleavedAndNeoxPairings) {
  std::mt19937 rng(3);
  const int64_t n_tok = 2, n_head = 3, head_dim = 8, rope_dim = 6;
  auto inv = RopeFrequencies(head_dim, rope_dim, 10000.0f, {});
  const int64_t pos[2] = {0, 7};
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kNeox}) {
    auto x = testing::RandomFloats(rng, n_tok * n_head * head_dim);
    auto y = x;
    ApplyRope(style, y.data(), n_tok, n_head, head_dim, rope_dim, pos, inv.data());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t h = 0; h < n_head; ++h) {
        const float* a = x.data() + (t * n_head + h) * head_dim;
        const float* b = y.data() + (t * n_head + h) * head_dim;
        for (int64_t i = 0; i < rope_dim / 2; ++i) {
          const int64_t ia = style == RopeStyle::kNeox ? i : 2 * i, ib = style == RopeStyle::kNeox ? i + rope_dim / 2 : 2 * i + 1;
          const double th = double(pos[t]) * inv[i];
          EXPECT_NEAR(b[ia], a[ia] * std::cos(th) - a[ib] * std::sin(th), 1e-5);
          EXPECT_NEAR(b[ib], a[ib] * std::cos(th) + a[ia] * std::sin(th), 1e-5);
        }
        for (int64_t i = rope_dim; i < head_dim; ++i) EXPECT_EQ(b[i], a[i]);  // pass-through
      }
  }
}

// The ggml flavour of RoPE (rope.h): the same rotation as the exact formula within
// f32 rounding of the angles (a running product, so the bound grows with position);
// pass-through dims untouched; linear scaling = positions divided by the factor.
TEST(Rope, GgmlFlavourMatchesExactRotation) {
  std::mt19937 rng(4);
  const int64_t n_tok = 3, n_head = 2, head_dim = 64, rope_dim = 60;
  const int64_t pos[3] = {0, 5, 300};
  for (float freq_scale : {1.0f, 0.25f})
    for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kNeox}) {
      auto x = testing::RandomFloats(rng, n_tok * n_head * head_dim);
      auto y = x;
      ApplyRopeGgml(style, y.data(), n_tok, n_head, head_dim, rope_dim, pos, 100000.0f, freq_scale);
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t h = 0; h < n_head; ++h) {
          const float* a = x.data() + (t * n_head + h) * head_dim;
          const float* b = y.data() + (t * n_head + h) * head_dim;
          for (int64_t i = 0; i < rope_dim / 2; ++i) {
            const int64_t ia = style == RopeStyle::kNeox ? i : 2 * i, ib = style == RopeStyle::kNeox ? i + rope_dim / 2 : 2 * i + 1;
            const double th = freq_scale * double(pos[t]) * std::pow(100000.0, -2.0 * double(i) / rope_dim);
            EXPECT_NEAR(b[ia], a[ia] * std::cos(th) - a[ib] * std::sin(th), 1e-5 + 2e-7 * pos[t]);
            EXPECT_NEAR(b[ib], a[ib] * std::cos(th) + a[ia] * std::sin(th), 1e-5 + 2e-7 * pos[t]);
          }
          for (int64_t i = rope_dim; i < head_dim; ++i) EXPECT_EQ(b[i], a[i]);
        }
    }
}

// ExpfGgml: within 2 ulp of exp over the range softmax and silu use; exact at 0;
// saturates like ggml (0 below about -104, +inf above about 88.7, 0 at -inf).
TEST(Ops, ExpfGgml) {
  for (float x = -103.0f; x < 88.0f; x += 0.0137f) {
    const double e = std::exp(double(x));
    EXPECT_NEAR(ExpfGgml(x), e, 2.5e-7 * e + 1e-45) << x;
  }
  EXPECT_EQ(ExpfGgml(0.0f), 1.0f);
  EXPECT_EQ(ExpfGgml(-INFINITY), 0.0f);
  EXPECT_EQ(ExpfGgml(-200.0f), 0.0f);
  EXPECT_EQ(ExpfGgml(200.0f), INFINITY);
  EXPECT_TRUE(std::isnan(ExpfGgml(NAN)));
}

// SwiGLUGgml vs the plain SwiGLU: the same values within expf's rounding; rows whose
// length is not a multiple of 16 take libm expf for their tail, as ggml does.
TEST(Ops, SwiGLUGgml) {
  std::mt19937 rng(6);
  for (int64_t n : {64, 37}) {
    const int64_t rows = 3;
    auto g = testing::RandomFloats(rng, rows * n, 4.0f), u = testing::RandomFloats(rng, rows * n);
    std::vector<float> a(rows * n), b(rows * n);
    SwiGLUGgml(g.data(), u.data(), rows, n, a.data());
    SwiGLU(g.data(), u.data(), rows * n, b.data());
    for (int64_t i = 0; i < rows * n; ++i) {
      EXPECT_NEAR(a[i], b[i], 1e-6 * std::fabs(b[i]) + 1e-7) << i;
      if (i % n >= n - n % 16) EXPECT_EQ(a[i], b[i]) << i;  // libm tail
    }
    SwiGLUGgml(g.data(), u.data(), rows, n, g.data());  // in place
    EXPECT_EQ(g, a);
  }
}

}  // namespace
}  // namespace spool
