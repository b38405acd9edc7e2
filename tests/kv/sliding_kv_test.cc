// Sliding-window layers in the KV cache (kv::KvLayout::window): InRamKv frees the pages
// that fall out of a layer's window, so its memory stops growing past the window;
// what stays is byte for byte what a cache without release holds; released rows read
// as zeros (no query attends to them); a Truncate that would need released rows is
// refused. Engine level: a Gemma 3 fixture (5 sliding layers of window 4, 1 global)
// at 4× and more the window.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kv/kv_cache.h"
#include "runtime/engine.h"

namespace spool::kv {
namespace {

KvLayout Layout(std::vector<int64_t> window) {
  KvLayout L;
  L.n_layer = 2;
  L.n_head_kv = 2;
  L.head_dim = 8;
  L.page_tokens = 4;
  L.dtype = DType::kF32;
  L.window = std::move(window);
  return L;
}

// Writes tokens [n0, n0 + n) to both layers, one step, rows of value pos + layer/10.
void Step(SequenceKv& kv, int64_t n) {
  const int64_t row = kv.layout().row_elems(), n0 = kv.n_tokens();
  for (int64_t l = 0; l < kv.layout().n_layer; ++l) {
    std::vector<float> k(n * row), v(n * row);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < row; ++j) {
        k[i * row + j] = static_cast<float>(n0 + i) + 0.1f * l;
        v[i * row + j] = -static_cast<float>(n0 + i) - 0.1f * l;
      }
    ASSERT_TRUE(kv.Write(l, n0, n, k.data(), v.data()).ok());
  }
  ASSERT_TRUE(kv.Commit(n).ok());
}

TEST(SlidingKv, RamStopsGrowingPastTheWindow) {
  const int64_t window = 6;
  InRamKv kv(Layout({window, 0})), full(Layout({}));
  const uint64_t page = kv.layout().page_bytes() * 2;  // K and V
  std::vector<uint64_t> held;
  for (int64_t t = 0; t < 4 * window * 2; ++t) {
    Step(kv, 1);
    Step(full, 1);
    // Layer 0 keeps pages from the one holding n - window + 1; layer 1 keeps everything.
    const int64_t n = kv.n_tokens();
    const int64_t layer0_pages = (n + 3) / 4 - std::max<int64_t>(n - window + 1, 0) / 4;
    EXPECT_EQ(kv.page_bytes_held(), page * (layer0_pages + (n + 3) / 4)) << n;
    EXPECT_LE(layer0_pages, (window - 1 + 1 + 3) / 4 + 1);
  }
  // The live rows are byte for byte the full cache's; released rows read as zeros.
  const int64_t n = kv.n_tokens(), first_live = n - window + 1;
  const uint64_t rb = kv.layout().row_bytes();
  for (int64_t l = 0; l < 2; ++l) {
    // Copies of each page's K and V (views are valid only during the call).
    auto pages = [&](SequenceKv& c) {
      std::vector<std::pair<int64_t, std::vector<uint8_t>>> out;
      EXPECT_TRUE(c.ForEachPage(l, n, [&](const KvPageView& p) {
        std::vector<uint8_t> b(2 * p.n_tokens * rb);
        std::memcpy(b.data(), p.k, p.n_tokens * rb);
        std::memcpy(b.data() + p.n_tokens * rb, p.v, p.n_tokens * rb);
        out.emplace_back(p.first_pos, std::move(b));
      }).ok());
      return out;
    };
    auto a = pages(kv), b = pages(full);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].first, b[i].first);
      if (l == 1 || a[i].first + 4 > first_live) {
        EXPECT_EQ(a[i].second, b[i].second) << "layer " << l << " page at " << a[i].first;
      } else {
        EXPECT_EQ(a[i].second, std::vector<uint8_t>(a[i].second.size(), 0)) << "released page at " << a[i].first;
      }
    }
  }
}

TEST(SlidingKv, TruncateIntoReleasedRowsIsRefused) {
  InRamKv kv(Layout({5, 0}));
  for (int i = 0; i < 10; ++i) Step(kv, 2);  // 20 tokens: layer 0 keeps positions >= 16
  // Truncating to 18 needs keys from 14 on: page 3 (12..15) is released.
  Status st = kv.Truncate(18);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("sliding-window layer 0"), std::string::npos) << st.message();
  EXPECT_EQ(kv.n_tokens(), 20);
  EXPECT_TRUE(kv.Truncate(20).ok());  // nothing dropped
  EXPECT_TRUE(kv.Truncate(0).ok());   // starting over always works
  Step(kv, 3);
  EXPECT_EQ(kv.n_tokens(), 3);
  EXPECT_TRUE(kv.Truncate(1).ok());
}

// Engine level: the Gemma 3 fixture (layers 0-4 slide over 4 tokens, layer 5 is
// global) at 64 tokens: the sliding layers hold a page or two each.
TEST(SlidingKv, EngineHoldsOnlyTheWindow) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.load_tokenizer = false;
  o.ctx = 256;
  o.kv_window = 0;
  o.kv_page_tokens = 4;
  o.prefill_chunk = 8;
  auto e = runtime::Engine::Open(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16", o);
  ASSERT_TRUE(e.ok()) << e.status().message();
  auto seq = (*e)->NewSequence();
  auto* kv = dynamic_cast<InRamKv*>(&seq->kv());
  ASSERT_NE(kv, nullptr);
  std::vector<int32_t> prompt(64);
  std::mt19937 rng(1);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % (*e)->n_vocab());
  std::vector<float> logits((*e)->n_vocab());
  ASSERT_TRUE((*e)->Prefill(*seq, prompt, logits.data(), /*all_logits=*/false).ok());
  const uint64_t page = kv->layout().page_bytes() * 2;
  // Global layer: 16 pages; each sliding layer: the page of position 61 onwards (61..63).
  EXPECT_EQ(kv->page_bytes_held(), page * (16 + 5 * 1));
}

}  // namespace
}  // namespace spool::kv
