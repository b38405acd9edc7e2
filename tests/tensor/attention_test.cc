// Paged online-softmax attention vs the materialised reference (AttentionRef).
// Tolerance: |Δ| <= 1e-5 · max|v| + 1e-6 (f32 scores/softmax vs double).
#include "tensor/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

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
};

std::string Name(const Case& c) {
  return std::string(DTypeName(c.dtype)) + " heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_kv_head) +
         " d" + std::to_string(c.head_dim) + " prefix " + std::to_string(c.prefix) + " n_q " + std::to_string(c.n_q) +
         " P " + std::to_string(c.page_size);
}

void RunCase(const Case& c, ThreadPool& pool, std::mt19937& rng) {
  const AttentionShape shape{c.n_head, c.n_kv_head, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  const int64_t total = c.prefix + c.n_q;
  const int64_t row = c.n_kv_head * c.head_dim;
  auto kf = testing::RandomFloats(rng, total * row, 2.0f), vf = testing::RandomFloats(rng, total * row);
  std::vector<uint16_t> kb(kf.size()), vb(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) kb[i] = F32ToBF16(kf[i]), vb[i] = F32ToBF16(vf[i]);
  auto q = testing::RandomFloats(rng, c.n_q * c.n_head * c.head_dim);
  std::vector<int64_t> pos(c.n_q);
  for (int64_t i = 0; i < c.n_q; ++i) pos[i] = c.pos_offset + c.prefix + i;

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

  // Pages folded in reverse order give the same result (within rounding).
  st.Reset(c.n_q, shape);
  for (auto it = pages.rbegin(); it != pages.rend(); ++it) AttentionFoldPage(pool, shape, q.data(), pos.data(), c.n_q, *it, st);
  AttentionFinalize(shape, st, out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5 * vmax + 1e-6) << Name(c) << " reversed at " << i;
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
