// Prefill attention on bf16 dot products (attention_bf16.h) vs the materialised
// reference (AttentionRef, double softmax). Tolerance per (query, head), stated in the
// header: with δ = 2^-8 · scale · max over the row's visible keys of Σ_j |q_j·k_j|,
//   |Δ| <= max|v| · (exp(2·(δ + 2^-8)) − 1) + 1e-5 · max|v| + 1e-6.
// Also: bit-identity across thread counts, query splits and page addresses (the
// disk-KV = RAM-KV property), and what the kernel accepts.
#include "tensor/attention_bf16.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"

namespace spool {
namespace {

struct Case {
  int64_t n_head, n_kv_head, head_dim;
  int64_t prefix;      // tokens in the cache before the queries
  int64_t n_q;         // queries at positions prefix .. prefix + n_q − 1 (+ pos_offset)
  int64_t page_size;
  int64_t pos_offset = 0;
  bool scattered = false;  // query positions drawn from the whole cache
  float k_scale = 2.0f;
  int64_t window = 0;
  float softcap = 0.0f;
};

std::string Name(const Case& c) {
  return "heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_kv_head) + " d" + std::to_string(c.head_dim) +
         " prefix " + std::to_string(c.prefix) + " n_q " + std::to_string(c.n_q) + " P " +
         std::to_string(c.page_size) + (c.scattered ? " scattered" : "") + " kscale " + std::to_string(c.k_scale) +
         " window " + std::to_string(c.window) + " softcap " + std::to_string(c.softcap);
}

void RunCase(const Case& c, ThreadPool& pool, std::mt19937& rng) {
  const AttentionShape shape{c.n_head, c.n_kv_head, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                             c.window, c.softcap};
  const int64_t total = c.prefix + c.n_q, row = c.n_kv_head * c.head_dim, d = c.head_dim;
  auto kf = testing::RandomFloats(rng, total * row, c.k_scale), vf = testing::RandomFloats(rng, total * row);
  std::vector<uint16_t> kb(kf.size()), vb(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) {
    kb[i] = F32ToBF16(kf[i]), vb[i] = F32ToBF16(vf[i]);
    kf[i] = BF16ToF32(kb[i]), vf[i] = BF16ToF32(vb[i]);
  }
  auto q = testing::RandomFloats(rng, c.n_q * c.n_head * d);
  std::vector<int64_t> pos(c.n_q);
  for (int64_t i = 0; i < c.n_q; ++i) pos[i] = c.pos_offset + c.prefix + i;
  if (c.scattered)
    for (auto& p : pos) p = c.pos_offset + std::uniform_int_distribution<int64_t>(0, total - 1)(rng);
  std::vector<KvPageView> pages;
  for (int64_t t0 = 0; t0 < total; t0 += c.page_size)
    pages.push_back({DType::kBF16, kb.data() + t0 * row, vb.data() + t0 * row, std::min(c.page_size, total - t0),
                     c.pos_offset + t0});
  ASSERT_TRUE(AttentionBf16Accepts(shape, pages[0]));
  AttentionState st;
  st.Reset(c.n_q, shape);
  for (const KvPageView& p : pages) AttentionFoldPageBf16(pool, shape, q.data(), pos.data(), c.n_q, p, st);
  std::vector<float> out(c.n_q * c.n_head * d), ref(out.size());
  AttentionFinalize(shape, st, out.data());
  AttentionRef(shape, q.data(), pos.data(), c.n_q, pages, ref.data());
  float vmax = 0;
  for (float x : vf) vmax = std::max(vmax, std::fabs(x));
  const int64_t group = c.n_head / c.n_kv_head;
  for (int64_t i = 0; i < c.n_q; ++i)
    for (int64_t h = 0; h < c.n_head; ++h) {
      double qk_max = 0;  // max over visible keys of Σ|q·k|
      for (int64_t t = 0; t < total; ++t) {
        const int64_t p = c.pos_offset + t;
        if (p > pos[i] || (c.window > 0 && p <= pos[i] - c.window)) continue;
        double a = 0;
        for (int64_t j = 0; j < d; ++j)
          a += std::fabs(static_cast<double>(q[(i * c.n_head + h) * d + j]) * kf[t * row + (h / group) * d + j]);
        qk_max = std::max(qk_max, a);
      }
      const double delta = std::ldexp(1.0, -8) * shape.scale * qk_max;
      const double tol = vmax * (std::exp(2 * (delta + std::ldexp(1.0, -8))) - 1) + 1e-5 * vmax + 1e-6;
      for (int64_t j = 0; j < d; ++j) {
        const size_t at = static_cast<size_t>((i * c.n_head + h) * d + j);
        ASSERT_NEAR(out[at], ref[at], tol) << Name(c) << " query " << i << " head " << h << " dim " << j;
      }
    }
}

TEST(AttentionBf16, Supported) {
  // The development and CI machines (AMD Zen 4, Intel Sapphire Rapids) have AVX-512 BF16;
  // without it every other test here would be meaningless, so say so loudly.
  ASSERT_TRUE(AttentionBf16Supported()) << "this CPU has no AVX-512 BF16: prefill attention falls back to f32 FMA";
}

TEST(AttentionBf16, Accepts) {
  if (!AttentionBf16Supported()) GTEST_SKIP();
  uint16_t kv[64] = {};
  float kvf[64] = {};
  EXPECT_TRUE(AttentionBf16Accepts({2, 1, 64, 0.125f}, {DType::kBF16, kv, kv, 1, 0}));
  EXPECT_FALSE(AttentionBf16Accepts({2, 1, 64, 0.125f}, {DType::kF32, kvf, kvf, 1, 0}));  // f32 KV
  EXPECT_FALSE(AttentionBf16Accepts({2, 1, 63, 0.125f}, {DType::kBF16, kv, kv, 1, 0}));   // odd head_dim
}

// The softmax's 2^x (x <= 0): within 4e-6 relative of the exact value where the result
// is a normal float, −inf → 0, NaN stays NaN, 0 → 1, and the deep tail flushes to 0.
TEST(AttentionBf16, Exp2NonPositive) {
  if (!AttentionBf16Supported()) GTEST_SKIP();
  std::vector<float> x;
  for (int i = 0; i <= 200000; ++i) x.push_back(-126.0f * static_cast<float>(i) / 200000.0f);  // dense in [−126, 0]
  for (float v : {-0.5f, -0.49999997f, -0.50000006f, -1.5f, -125.5f, -1e-30f, -0.0f}) x.push_back(v);
  const size_t n_checked = x.size();
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  x.push_back(-160.0f);
  x.push_back(-1000.0f);
  std::vector<float> y(x.size());
  AttentionBf16Exp2ForTest(x.data(), static_cast<int64_t>(x.size()), y.data());
  double worst = 0;
  for (size_t i = 0; i < n_checked; ++i) {
    const double exact = std::exp2(static_cast<double>(x[i]));
    const double rel = std::fabs(y[i] - exact) / exact;
    worst = std::max(worst, rel);
    ASSERT_LE(rel, 4e-6) << "x = " << x[i] << " got " << y[i] << " exact " << exact;
  }
  EXPECT_GT(worst, 0.0);  // the polynomial is an approximation: a zero error means the test saw nothing
  EXPECT_EQ(y[n_checked], 0.0f);
  EXPECT_TRUE(std::isnan(y[n_checked + 1]));
  EXPECT_EQ(y[n_checked + 2], 0.0f);
  EXPECT_EQ(y[n_checked + 3], 0.0f);
}

// GQA 1/3/4/9, head_dim 40/48/64/80/128 (tails of the 32-dim steps), decode-sized and
// prefill-sized query sets, 256-token, short and odd pages (odd key counts: a lone last
// key pair), prefixes, offset positions, queries before whole pages.
TEST(AttentionBf16, MatchesReferenceShapes) {
  if (!AttentionBf16Supported()) GTEST_SKIP();
  std::mt19937 rng(7);
  ThreadPool pool(3);
  for (auto [nh, nkv] : {std::pair<int64_t, int64_t>{2, 2}, {3, 1}, {8, 2}, {9, 1}})
    for (int64_t d : {40, 48, 64, 80, 128}) {
      RunCase({nh, nkv, d, 300, 1, 256}, pool, rng);           // one query over 2 pages
      RunCase({nh, nkv, d, 37, 3, 100, 5}, pool, rng);         // odd pages, partly masked
      RunCase({nh, nkv, d, 90, 6, 33, 0, true}, pool, rng);    // queries before whole pages
      RunCase({nh, nkv, d, 23, 40, 7, 1000}, pool, rng);       // 7-token pages, offset
    }
  RunCase({8, 2, 64, 200, 300, 256}, pool, rng);  // a prefill chunk after a prefix
  RunCase({9, 1, 80, 17, 300, 64, 3}, pool, rng);
  RunCase({32, 8, 64, 0, 257, 256}, pool, rng);   // Llama-3.2-1B heads, chunk from empty
}

// Large score gaps (most p underflow; maxima change between pages), sliding windows and
// soft-capping as attention.h defines them.
TEST(AttentionBf16, SharpSoftmaxWindowsSoftcap) {
  if (!AttentionBf16Supported()) GTEST_SKIP();
  std::mt19937 rng(11);
  ThreadPool pool(2);
  RunCase({4, 1, 64, 500, 4, 64, 0, false, 40.0f}, pool, rng);
  RunCase({6, 2, 48, 120, 7, 32, 0, true, 40.0f}, pool, rng);
  for (int64_t window : {1, 4, 7, 16, 50, 1000})
    for (float cap : {0.0f, 2.0f}) {
      RunCase({6, 2, 48, 37, 9, 8, 5, false, 2.0f, window, cap}, pool, rng);
      RunCase({4, 1, 40, 90, 6, 33, 0, true, 2.0f, window, cap}, pool, rng);
      RunCase({4, 2, 64, 60, 70, 16, 0, false, 2.0f, window, cap}, pool, rng);
    }
}

// Bit-identity whatever the thread count, the split of the queries into calls and where
// the page bytes live: what makes disk KV = RAM KV exact for prefill.
TEST(AttentionBf16, DeterministicAcrossThreadsSplitsAndAddresses) {
  if (!AttentionBf16Supported()) GTEST_SKIP();
  std::mt19937 rng(13);
  for (auto [nh, nkv, d] : {std::tuple<int64_t, int64_t, int64_t>{32, 8, 64}, {9, 1, 80}, {6, 3, 48}}) {
    const AttentionShape shape{nh, nkv, d, 1.0f / std::sqrt(static_cast<float>(d))};
    const int64_t total = 701, page = 256, n_q = 70, row = nkv * d;
    auto kf = testing::RandomFloats(rng, total * row, 2.0f), vf = testing::RandomFloats(rng, total * row);
    std::vector<uint16_t> kb(kf.size()), vb(vf.size());
    for (size_t i = 0; i < kf.size(); ++i) kb[i] = F32ToBF16(kf[i]), vb[i] = F32ToBF16(vf[i]);
    auto q = testing::RandomFloats(rng, n_q * nh * d);
    std::vector<int64_t> pos(n_q);
    for (int64_t i = 0; i < n_q; ++i) pos[i] = total - n_q + i;
    auto run = [&](int threads, size_t shift, int64_t split) {
      ThreadPool pool(threads);
      std::vector<uint16_t> kc(kb.size() + 32), vc(vb.size() + 32);
      std::memcpy(kc.data() + shift, kb.data(), kb.size() * 2);
      std::memcpy(vc.data() + shift, vb.data(), vb.size() * 2);
      std::vector<float> out(n_q * nh * d);
      for (int64_t a = 0; a < n_q; a += split) {
        const int64_t m = std::min(split, n_q - a);
        AttentionState st;
        st.Reset(m, shape);
        for (int64_t t0 = 0; t0 < total; t0 += page)
          AttentionFoldPageBf16(pool, shape, q.data() + a * nh * d, pos.data() + a, m,
                                {DType::kBF16, kc.data() + shift + t0 * row, vc.data() + shift + t0 * row,
                                 std::min(page, total - t0), t0},
                                st);
        AttentionFinalize(shape, st, out.data() + a * nh * d);
      }
      return out;
    };
    const std::vector<float> base = run(1, 0, n_q);
    for (auto [threads, shift, split] :
         {std::tuple<int, size_t, int64_t>{2, 0, n_q}, {3, 1, n_q}, {4, 3, 1}, {2, 0, 7}, {5, 2, 33}}) {
      const std::vector<float> o = run(threads, shift, split);
      ASSERT_EQ(0, std::memcmp(o.data(), base.data(), o.size() * sizeof(float)))
          << "heads " << nh << "/" << nkv << " threads " << threads << " shift " << shift << " split " << split;
    }
  }
}

// A span of pages folds bit for bit as its pages one by one (the engine's prefill path,
// transformer.cc): whatever the span size (one page, several, a page larger than the span),
// the page sizes (odd, short), windows, soft-capping, pages no query sees, and spans
// refilled after a Fold.
TEST(AttentionBf16, SpanEqualsPageByPageBitForBit) {
  if (!AttentionBf16Supported()) GTEST_SKIP();
  std::mt19937 rng(17);
  ThreadPool pool(3);
  struct SpanCase {
    int64_t nh, nkv, d, total, n_q, page, max_keys, window;
    float softcap;
  };
  for (const SpanCase& c : {SpanCase{32, 8, 64, 1300, 96, 256, 1024, 0, 0.0f}, {8, 2, 48, 700, 40, 100, 250, 0, 0.0f},
                            {9, 1, 80, 333, 17, 7, 64, 0, 0.0f}, {6, 3, 64, 900, 30, 64, 100, 50, 0.0f},
                            {4, 2, 40, 520, 25, 33, 2048, 16, 2.0f}, {8, 2, 64, 600, 50, 256, 100, 0, 0.0f}}) {
    const AttentionShape shape{c.nh, c.nkv, c.d, 1.0f / std::sqrt(static_cast<float>(c.d)), c.window, c.softcap};
    const int64_t row = c.nkv * c.d;
    auto kf = testing::RandomFloats(rng, c.total * row, 3.0f), vf = testing::RandomFloats(rng, c.total * row);
    std::vector<uint16_t> kb(kf.size()), vb(vf.size());
    for (size_t i = 0; i < kf.size(); ++i) kb[i] = F32ToBF16(kf[i]), vb[i] = F32ToBF16(vf[i]);
    auto q = testing::RandomFloats(rng, c.n_q * c.nh * c.d);
    std::vector<int64_t> pos(c.n_q);  // a chunk at the end, and a few scattered rows (pages no row sees at the end)
    for (int64_t i = 0; i < c.n_q; ++i) pos[i] = c.total - c.n_q + i;
    for (int64_t i = 0; i < c.n_q; i += 5) pos[i] = std::uniform_int_distribution<int64_t>(0, c.total - 1)(rng);
    std::vector<KvPageView> pages;
    for (int64_t t0 = 0; t0 < c.total; t0 += c.page)
      pages.push_back({DType::kBF16, kb.data() + t0 * row, vb.data() + t0 * row, std::min(c.page, c.total - t0), t0});
    AttentionState by_page, by_span;
    by_page.Reset(c.n_q, shape);
    for (const KvPageView& p : pages) AttentionFoldPageBf16(pool, shape, q.data(), pos.data(), c.n_q, p, by_page);
    by_span.Reset(c.n_q, shape);
    AttentionBf16Span span(c.max_keys);
    span.Begin(shape, pos.data(), c.n_q);
    int64_t folds = 0;
    for (const KvPageView& p : pages) {
      if (!span.Add(pool, p)) {
        ASSERT_FALSE(span.empty());
        span.Fold(pool, q.data(), by_span);
        ++folds;
        ASSERT_TRUE(span.empty());
        ASSERT_TRUE(span.Add(pool, p));
      }
      ASSERT_LE(span.staged_keys(), std::max(c.max_keys, c.page));
    }
    span.Fold(pool, q.data(), by_span);
    EXPECT_GE(folds, c.max_keys < c.total - c.page ? 1 : 0) << "the span never filled";
    std::vector<float> a(c.n_q * c.nh * c.d), b(a.size());
    AttentionFinalize(shape, by_page, a.data());
    AttentionFinalize(shape, by_span, b.data());
    const std::string name = "heads " + std::to_string(c.nh) + "/" + std::to_string(c.nkv) + " d" +
                             std::to_string(c.d) + " page " + std::to_string(c.page) + " max_keys " +
                             std::to_string(c.max_keys) + " window " + std::to_string(c.window);
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << name;
    ASSERT_EQ(0, std::memcmp(by_page.max(), by_span.max(), c.n_q * c.nh * sizeof(float))) << name;
    ASSERT_EQ(0, std::memcmp(by_page.sum(), by_span.sum(), c.n_q * c.nh * sizeof(float))) << name;
  }
}

}  // namespace
}  // namespace spool
