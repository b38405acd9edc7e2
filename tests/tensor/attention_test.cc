// Paged online-softmax attention vs the materialised reference (AttentionRef).
// Tolerance: |Δ| <= 1e-5 · max|v| + 1e-6 (f32 scores/softmax vs double).
// Also: the vectorised exp (simd::Exp) vs std::exp, and bit-identity of the fold across
// thread counts, query splits and page addresses.
#include "tensor/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tensor/simd_exp.h"
#include "test_util.h"

namespace spool {
namespace {

struct Case {
  DType dtype;
  int64_t n_head, n_kv_head, head_dim;
  int64_t prefix;     // tokens already in the cache before the queries
  int64_t n_q;        // new tokens (queries), at positions prefix .. prefix+n_q-1
  int64_t page_size;  // P
  int64_t pos_offset; // absolute position of cache token 0
  bool scattered = false;  // query positions drawn at random from the whole cache (pages in their future)
  float k_scale = 2.0f;    // larger: sharper softmax (big score gaps, many exp underflows)
  int64_t window = 0;      // sliding window (0: none)
  float softcap = 0.0f;    // logit soft-capping (0: none)
  float sink_scale = 0.0f; // attention sinks ~ N(0, sink_scale) per head (0: none)
};

std::string Name(const Case& c) {
  return std::string(DTypeName(c.dtype)) + " heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_kv_head) +
         " d" + std::to_string(c.head_dim) + " prefix " + std::to_string(c.prefix) + " n_q " + std::to_string(c.n_q) +
         " P " + std::to_string(c.page_size) +
         (c.scattered ? " scattered" : "") + " kscale " + std::to_string(c.k_scale) + " window " +
         std::to_string(c.window) + " softcap " + std::to_string(c.softcap) + " sinks " + std::to_string(c.sink_scale);
}

void RunCase(const Case& c, ThreadPool& pool, std::mt19937& rng) {
  const std::vector<float> sinks = c.sink_scale > 0 ? testing::RandomFloats(rng, c.n_head, c.sink_scale) : std::vector<float>{};
  const AttentionShape shape{c.n_head, c.n_kv_head, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                             c.window, c.softcap, c.sink_scale > 0 ? sinks.data() : nullptr};
  const int64_t total = c.prefix + c.n_q;
  const int64_t row = c.n_kv_head * c.head_dim;
  auto kf = testing::RandomFloats(rng, total * row, c.k_scale), vf = testing::RandomFloats(rng, total * row);
  std::vector<uint16_t> kb(kf.size()), vb(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) kb[i] = F32ToBF16(kf[i]), vb[i] = F32ToBF16(vf[i]);
  auto q = testing::RandomFloats(rng, c.n_q * c.n_head * c.head_dim);
  std::vector<int64_t> pos(c.n_q);
  for (int64_t i = 0; i < c.n_q; ++i) pos[i] = c.pos_offset + c.prefix + i;
  if (c.scattered)
    for (auto& p : pos) p = c.pos_offset + std::uniform_int_distribution<int64_t>(0, total - 1)(rng);

  std::vector<KvPageView> pages;
  for (int64_t t0 = 0; t0 < total; t0 += c.page_size) {
    const int64_t n = std::min(c.page_size, total - t0);
    const bool bf = c.dtype == DType::kBF16;
    pages.push_back({c.dtype, bf ? static_cast<const void*>(kb.data() + t0 * row) : kf.data() + t0 * row,
                     bf ? static_cast<const void*>(vb.data() + t0 * row) : vf.data() + t0 * row, n,
                     c.pos_offset + t0});
  }
  AttentionState st;
  st.Reset(c.n_q, shape);
  for (const KvPageView& p : pages) AttentionFoldPage(pool, shape, q.data(), pos.data(), c.n_q, p, st);
  std::vector<float> out(c.n_q * c.n_head * c.head_dim), ref(out.size());
  AttentionFinalize(shape, st, out.data());
  AttentionRef(shape, q.data(), pos.data(), c.n_q, pages, ref.data());
  float vmax = 0;
  for (float x : vf) vmax = std::max(vmax, std::fabs(x));
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5 * vmax + 1e-6) << Name(c) << " at " << i;

  // Pages folded in reverse and in shuffled order give the same result (within rounding).
  st.Reset(c.n_q, shape);
  for (auto it = pages.rbegin(); it != pages.rend(); ++it) AttentionFoldPage(pool, shape, q.data(), pos.data(), c.n_q, *it, st);
  AttentionFinalize(shape, st, out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5 * vmax + 1e-6) << Name(c) << " reversed at " << i;
  std::vector<KvPageView> shuffled = pages;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  st.Reset(c.n_q, shape);
  for (const KvPageView& p : shuffled) AttentionFoldPage(pool, shape, q.data(), pos.data(), c.n_q, p, st);
  AttentionFinalize(shape, st, out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5 * vmax + 1e-6) << Name(c) << " shuffled at " << i;
}

TEST(Attention, MatchesReference) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  for (DType dt : {DType::kF32, DType::kBF16})
    for (auto [nh, nkv] : {std::pair<int64_t, int64_t>{4, 4}, {6, 2}, {8, 2}})  // GQA ratios 1, 3, 4
      for (int64_t n_q : {1, 5})
        for (auto [prefix, page] : {std::pair<int64_t, int64_t>{0, 16}, {23, 7}, {40, 16}}) {
          RunCase({dt, nh, nkv, 64, prefix, n_q, page, 0}, pool, rng);
          RunCase({dt, nh, nkv, 40, prefix, n_q, page, 1000}, pool, rng);  // head_dim tail, offset positions
        }
}

// GQA groups 1/3/4/9, head_dim 48/64/80/128, n_q 1 and 300, 256-token and odd pages.
TEST(Attention, MatchesReferenceShapes) {
  std::mt19937 rng(7);
  ThreadPool pool(3);
  for (DType dt : {DType::kF32, DType::kBF16})
    for (auto [nh, nkv] : {std::pair<int64_t, int64_t>{2, 2}, {3, 1}, {8, 2}, {9, 1}, {18, 2}})
      for (int64_t d : {48, 64, 80, 128}) {
        RunCase({dt, nh, nkv, d, 300, 1, 256, 0}, pool, rng);     // decode over 2 pages
        RunCase({dt, nh, nkv, d, 37, 3, 100, 5}, pool, rng);      // odd pages, partly masked
        RunCase({dt, nh, nkv, d, 90, 6, 33, 0, true}, pool, rng); // queries before whole pages
      }
  // A prefill chunk: 300 queries, causal within the pages, after a prefix.
  for (DType dt : {DType::kF32, DType::kBF16}) {
    RunCase({dt, 8, 2, 64, 200, 300, 256, 0}, pool, rng);
    RunCase({dt, 9, 1, 80, 17, 300, 64, 3}, pool, rng);
  }
}

// Large score gaps: most p underflow to 0, maxima change between pages.
TEST(Attention, SharpSoftmax) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    RunCase({dt, 4, 1, 64, 500, 4, 64, 0, false, 40.0f}, pool, rng);
    RunCase({dt, 6, 2, 48, 120, 7, 32, 0, true, 40.0f}, pool, rng);
  }
}

// Sliding window (keys p - window < k <= p: transformers' sliding_window_overlay) and
// logit soft-capping, alone and together: windows inside one page, across page
// boundaries, of one token, longer than the context (all keys: acts as full attention),
// with decode and prefill queries and scattered positions.
TEST(Attention, SlidingWindowAndSoftcapMatchReference) {
  std::mt19937 rng(13);
  ThreadPool pool(2);
  for (DType dt : {DType::kF32, DType::kBF16})
    for (int64_t window : {1, 4, 7, 16, 50, 1000})
      for (float cap : {0.0f, 2.0f}) {
        RunCase({dt, 4, 2, 64, 60, 1, 16, 0, false, 2.0f, window, cap}, pool, rng);   // decode
        RunCase({dt, 6, 2, 48, 37, 9, 8, 5, false, 2.0f, window, cap}, pool, rng);    // prefill chunk after a prefix
        RunCase({dt, 4, 1, 40, 90, 6, 33, 0, true, 2.0f, window, cap}, pool, rng);    // scattered
      }
  RunCase({DType::kF32, 4, 1, 64, 200, 3, 16, 0, false, 40.0f, 20, 0.0f}, pool, rng);  // sharp
  RunCase({DType::kF32, 4, 1, 64, 200, 3, 16, 0, false, 40.0f, 20, 5.0f}, pool, rng);  // sharp, capped
}

// Attention sinks (gpt-oss): a per-head logit in the softmax denominator, folded in at
// AttentionFinalize; small sinks, sinks that dominate every score (scale 40) and ones
// far below; with sliding windows; pages in any order (RunCase).
TEST(Attention, SinksMatchReference) {
  std::mt19937 rng(19);
  ThreadPool pool(2);
  for (DType dt : {DType::kF32, DType::kBF16})
    for (float sink : {0.5f, 3.0f, 40.0f})
      for (int64_t window : {0, 6}) {
        RunCase({dt, 4, 2, 64, 60, 1, 16, 0, false, 2.0f, window, 0.0f, sink}, pool, rng);  // decode
        RunCase({dt, 6, 2, 48, 37, 9, 8, 5, false, 2.0f, window, 0.0f, sink}, pool, rng);   // prefill chunk
        RunCase({dt, 4, 1, 40, 90, 6, 33, 0, true, 40.0f, window, 0.0f, sink}, pool, rng);  // scattered, sharp
      }
}

// A window longer than the context is full attention, bit for bit.
TEST(Attention, WindowBeyondContextIsFullAttention) {
  std::mt19937 rng(17);
  ThreadPool pool(2);
  const int64_t n_q = 5, total = 40, nh = 4, nkv = 2, d = 32, row = nkv * d;
  auto k = testing::RandomFloats(rng, total * row), v = testing::RandomFloats(rng, total * row);
  auto q = testing::RandomFloats(rng, n_q * nh * d);
  std::vector<int64_t> pos(n_q);
  for (int64_t i = 0; i < n_q; ++i) pos[i] = total - n_q + i;
  auto run = [&](int64_t window) {
    const AttentionShape shape{nh, nkv, d, 0.2f, window, 0.0f};
    AttentionState st;
    st.Reset(n_q, shape);
    for (int64_t t0 = 0; t0 < total; t0 += 16)
      AttentionFoldPage(pool, shape, q.data(), pos.data(), n_q,
                        KvPageView{DType::kF32, k.data() + t0 * row, v.data() + t0 * row, std::min<int64_t>(16, total - t0), t0},
                        st);
    std::vector<float> out(n_q * nh * d);
    AttentionFinalize(shape, st, out.data());
    return out;
  };
  auto full = run(0), wide = run(total), wider = run(1 << 20);
  EXPECT_EQ(std::memcmp(full.data(), wide.data(), full.size() * 4), 0);
  EXPECT_EQ(std::memcmp(full.data(), wider.data(), full.size() * 4), 0);
}

// Bit-identity: the same kernel inputs give the same output whatever the thread count,
// however the queries are split into calls, and wherever the page bytes live.
TEST(Attention, DeterministicAcrossThreadsSplitsAndAddresses) {
  std::mt19937 rng(13);
  for (DType dt : {DType::kF32, DType::kBF16})
    for (auto [nh, nkv, d] : {std::tuple<int64_t, int64_t, int64_t>{32, 8, 64}, {9, 1, 80}, {6, 3, 48}}) {
      const AttentionShape shape{nh, nkv, d, 1.0f / std::sqrt(static_cast<float>(d))};
      const int64_t total = 700, page = 256, n_q = 70, row = nkv * d, es = dt == DType::kF32 ? 4 : 2;
      auto kf = testing::RandomFloats(rng, total * row, 2.0f), vf = testing::RandomFloats(rng, total * row);
      std::vector<uint8_t> kbytes(total * row * es), vbytes(total * row * es);
      for (int64_t i = 0; i < total * row; ++i) {
        if (dt == DType::kF32) {
          std::memcpy(&kbytes[i * 4], &kf[i], 4), std::memcpy(&vbytes[i * 4], &vf[i], 4);
        } else {
          const uint16_t kb = F32ToBF16(kf[i]), vb = F32ToBF16(vf[i]);
          std::memcpy(&kbytes[i * 2], &kb, 2), std::memcpy(&vbytes[i * 2], &vb, 2);
        }
      }
      auto q = testing::RandomFloats(rng, n_q * nh * d);
      std::vector<int64_t> pos(n_q);
      for (int64_t i = 0; i < n_q; ++i) pos[i] = total - n_q + i;
      // run(pool, shift, split): pages copied to buffers offset by `shift` bytes; queries in
      // calls of `split` queries.
      auto run = [&](int threads, size_t shift, int64_t split) {
        ThreadPool pool(threads);
        std::vector<uint8_t> kc(kbytes.size() + 64), vc(vbytes.size() + 64);
        std::memcpy(kc.data() + shift, kbytes.data(), kbytes.size());
        std::memcpy(vc.data() + shift, vbytes.data(), vbytes.size());
        std::vector<float> out(n_q * nh * d);
        for (int64_t a = 0; a < n_q; a += split) {
          const int64_t m = std::min(split, n_q - a);
          AttentionState st;
          st.Reset(m, shape);
          for (int64_t t0 = 0; t0 < total; t0 += page)
            AttentionFoldPage(pool, shape, q.data() + a * nh * d, pos.data() + a, m,
                              {dt, kc.data() + shift + t0 * row * es, vc.data() + shift + t0 * row * es,
                               std::min(page, total - t0), t0},
                              st);
          AttentionFinalize(shape, st, out.data() + a * nh * d);
        }
        return out;
      };
      const std::vector<float> base = run(1, 0, n_q);
      for (auto [threads, shift, split] : {std::tuple<int, size_t, int64_t>{2, 0, n_q}, {3, 2, n_q}, {4, 6, 1},
                                           {2, 0, 7}, {5, 4, 33}}) {
        const std::vector<float> o = run(threads, shift, split);
        ASSERT_EQ(0, std::memcmp(o.data(), base.data(), o.size() * sizeof(float)))
            << DTypeName(dt) << " heads " << nh << "/" << nkv << " threads " << threads << " shift " << shift
            << " split " << split;
      }
    }
}

// simd::Exp vs std::exp (double, then rounded): within 1 ulp over the whole range where
// the result is a normal float; subnormal results within 2 subnormal steps; specials.
TEST(SimdExp, MatchesStdExp) {
  auto ulps = [](float a, float b) {
    int32_t ia, ib;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    return std::abs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));
  };
  auto exp16 = [](const float* x, float* y) { _mm512_storeu_ps(y, simd::Exp(_mm512_loadu_ps(x))); };
  std::vector<float> xs;
  for (float x = -110.0f; x <= 90.0f; x += 0.001953125f) xs.push_back(x);  // dense grid incl. both ends
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-104.0f, 89.0f);
  for (int i = 0; i < 1000000; ++i) xs.push_back(u(rng));
  for (float x : {0.0f, -0.0f, 1e-8f, -1e-8f, 1.0f, -1.0f, 88.72283f, 88.7229f, -87.33654f, -103.97208f, -103.98f})
    xs.push_back(x);
  while (xs.size() % 16) xs.push_back(0.0f);
  std::vector<float> ys(xs.size());
  for (size_t i = 0; i < xs.size(); i += 16) exp16(&xs[i], &ys[i]);
  int64_t worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float ref = static_cast<float>(std::exp(static_cast<double>(xs[i])));
    if (std::isinf(ref)) {
      ASSERT_TRUE(std::isinf(ys[i]) && ys[i] > 0) << xs[i];
    } else if (ref < std::numeric_limits<float>::min()) {
      ASSERT_LE(ulps(ys[i], ref), 2) << "subnormal result at x = " << xs[i] << ": " << ys[i] << " vs " << ref;
    } else {
      worst = std::max(worst, ulps(ys[i], ref));
      ASSERT_LE(ulps(ys[i], ref), 1) << "x = " << xs[i] << ": " << ys[i] << " vs " << ref;
    }
  }
  RecordProperty("worst_ulps", static_cast<int>(worst));
  const float inf = std::numeric_limits<float>::infinity();
  alignas(64) float sx[16] = {-inf, inf, std::numeric_limits<float>::quiet_NaN(), -1e30f, 1e30f, -200.0f, 0.0f, 0.0f,
                              0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  alignas(64) float sy[16];
  exp16(sx, sy);
  EXPECT_EQ(sy[0], 0.0f);
  EXPECT_EQ(sy[1], inf);
  EXPECT_TRUE(std::isnan(sy[2]));
  EXPECT_EQ(sy[3], 0.0f);
  EXPECT_EQ(sy[4], inf);
  EXPECT_EQ(sy[5], 0.0f);
  EXPECT_EQ(sy[6], 1.0f);
}

TEST(Attention, QueryWithoutVisibleKeysIsZero) {
  ThreadPool pool(1);
  const AttentionShape shape{2, 1, 16, 0.25f};
  std::vector<float> k(4 * 16, 1.0f), v(4 * 16, 1.0f), q(2 * 16, 1.0f), out(2 * 16, 5.0f);
  const int64_t pos = 9;
  AttentionState st;
  st.Reset(1, shape);
  AttentionFoldPage(pool, shape, q.data(), &pos, 1, {DType::kF32, k.data(), v.data(), 4, 10}, st);  // keys at 10..13
  AttentionFinalize(shape, st, out.data());
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

}  // namespace
}  // namespace spool
