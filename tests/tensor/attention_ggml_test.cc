// AttentionGgml (llama.cpp's attention rounding) vs the materialised double reference.
// Tolerance: |Δ| <= 1e-5 · max|v| + 1e-6, as the online-softmax kernel. Its bit-exactness
// against llama.cpp itself is proven end to end by tests/models/smollm2_parity_test.cc.
#include "tensor/attention_ggml.h"

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
  int64_t prefix, n_q, page_size;
};

void RunCase(const Case& c, GgmlAttnKernel kernel, ThreadPool& pool, std::mt19937& rng) {
  const std::string name = std::string(DTypeName(c.dtype)) + " h" + std::to_string(c.n_head) + "/" +
                           std::to_string(c.n_kv_head) + " d" + std::to_string(c.head_dim) + " prefix " +
                           std::to_string(c.prefix) + " n_q " + std::to_string(c.n_q) + " P " +
                           std::to_string(c.page_size) + (kernel == GgmlAttnKernel::kBatch ? " batch" : " single");
  const AttentionShape shape{c.n_head, c.n_kv_head, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim))};
  const int64_t total = c.prefix + c.n_q, row = c.n_kv_head * c.head_dim;
  auto kf = testing::RandomFloats(rng, total * row, 2.0f), vf = testing::RandomFloats(rng, total * row);
  std::vector<uint16_t> kb(kf.size()), vb(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) kb[i] = F32ToBF16(kf[i]), vb[i] = F32ToBF16(vf[i]);
  auto q = testing::RandomFloats(rng, c.n_q * c.n_head * c.head_dim);
  std::vector<int64_t> pos(c.n_q);
  for (int64_t i = 0; i < c.n_q; ++i) pos[i] = c.prefix + i;
  std::vector<KvPageView> pages;
  const bool bf = c.dtype == DType::kBF16;
  for (int64_t t0 = 0; t0 < total; t0 += c.page_size) {
    const int64_t n = std::min(c.page_size, total - t0);
    pages.push_back({c.dtype, bf ? static_cast<const void*>(kb.data() + t0 * row) : kf.data() + t0 * row,
                     bf ? static_cast<const void*>(vb.data() + t0 * row) : vf.data() + t0 * row, n, t0});
  }
  int walks = 0;
  auto walk = [&](const std::function<void(const KvPageView&)>& fn) {
    ++walks;
    for (const KvPageView& p : pages) fn(p);
    return Status::Ok();
  };
  std::vector<float> out(c.n_q * c.n_head * c.head_dim, 7.0f), ref(out.size());
  ASSERT_TRUE(AttentionGgml(pool, shape, q.data(), pos.data(), c.n_q, kernel, walk, out.data()).ok());
  EXPECT_EQ(walks, 2 * ((c.n_q + 31) / 32)) << name;
  AttentionRef(shape, q.data(), pos.data(), c.n_q, pages, ref.data());
  float vmax = 0;
  for (float x : vf) vmax = std::max(vmax, std::fabs(x));
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5 * vmax + 1e-6) << name << " at " << i;

  // Same inputs, same kernel: the same bits whatever the thread count.
  ThreadPool one(1);
  std::vector<float> again(out.size());
  ASSERT_TRUE(AttentionGgml(one, shape, q.data(), pos.data(), c.n_q, kernel, walk, again.data()).ok());
  EXPECT_EQ(again, out) << name;
}

TEST(AttentionGgml, MatchesReference) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  for (GgmlAttnKernel kernel : {GgmlAttnKernel::kBatch, GgmlAttnKernel::kSingle})
    for (DType dt : {DType::kF32, DType::kBF16})
      for (auto [nh, nkv] : {std::pair<int64_t, int64_t>{4, 4}, {9, 3}})
        for (auto [prefix, n_q, page] : {std::tuple<int64_t, int64_t, int64_t>{0, 5, 256}, {150, 1, 64}, {20, 40, 16}}) {
          RunCase({dt, nh, nkv, 64, prefix, n_q, page}, kernel, pool, rng);
          RunCase({dt, nh, nkv, 80, prefix, n_q, page}, kernel, pool, rng);  // head_dim % 64 != 0
        }
}

// With at most 16 visible keys every slot holds at most one product, so the two
// kernels (16 vs 64 slots) must agree bit for bit; with more keys they differ only
// in rounding.
TEST(AttentionGgml, KernelsAgreeOnShortContexts) {
  std::mt19937 rng(12);
  ThreadPool pool(1);
  const AttentionShape shape{2, 1, 64, 0.125f};
  for (int64_t total : {16, 200}) {
    auto k = testing::RandomFloats(rng, total * 64), v = testing::RandomFloats(rng, total * 64);
    auto q = testing::RandomFloats(rng, 2 * 64);
    const int64_t pos = total - 1;
    const KvPageView page{DType::kF32, k.data(), v.data(), total, 0};
    auto walk = [&](const std::function<void(const KvPageView&)>& fn) {
      fn(page);
      return Status::Ok();
    };
    std::vector<float> a(2 * 64), b(2 * 64);
    ASSERT_TRUE(AttentionGgml(pool, shape, q.data(), &pos, 1, GgmlAttnKernel::kBatch, walk, a.data()).ok());
    ASSERT_TRUE(AttentionGgml(pool, shape, q.data(), &pos, 1, GgmlAttnKernel::kSingle, walk, b.data()).ok());
    if (total <= 16) EXPECT_EQ(a, b);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6);
  }
}

TEST(AttentionGgml, WalkErrorIsReturned) {
  ThreadPool pool(1);
  const AttentionShape shape{1, 1, 16, 0.25f};
  std::vector<float> q(16, 1.0f), out(16);
  const int64_t pos = 0;
  auto walk = [](const std::function<void(const KvPageView&)>&) { return IoError("disk gone"); };
  EXPECT_FALSE(AttentionGgml(pool, shape, q.data(), &pos, 1, GgmlAttnKernel::kSingle, walk, out.data()).ok());
}

}  // namespace
}  // namespace spool
