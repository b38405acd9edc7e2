// Sliding-window layers in the KV cache (kv::KvLayout::window): InRamKv frees the pages
// that fall out of a layer's window, so its memory stops growing past the window;
// what stays is byte for byte what a cache without release holds; released rows read
// as zeros (no query attends to them); a Truncate that would need released rows is
// refused. DiskKv does the same on disk: released pages are punched out of the scratch
// file (or never written), so disk use stops growing past the window, and its pages are
// byte for byte InRamKv's. Engine level: a Gemma 3 fixture (5 sliding layers of window
// 4, 1 global) at 4× and more the window, in RAM and on disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "kv/disk_kv.h"
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

std::string TempDir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("spool-swkv-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(p);
  return p.string();
}

// Every page of every layer, flattened (released rows as the cache gives them: zeros).
std::vector<uint8_t> Snapshot(SequenceKv& kv, int64_t end) {
  std::vector<uint8_t> out;
  const uint64_t rb = kv.layout().row_bytes();
  for (int64_t l = 0; l < kv.layout().n_layer; ++l) {
    int64_t expect_first = 0;
    Status st = kv.ForEachPage(l, end, [&](const KvPageView& p) {
      EXPECT_EQ(p.first_pos, expect_first);
      expect_first += p.n_tokens;
      const auto* k = static_cast<const uint8_t*>(p.k);
      const auto* v = static_cast<const uint8_t*>(p.v);
      out.insert(out.end(), k, k + p.n_tokens * rb);
      out.insert(out.end(), v, v + p.n_tokens * rb);
    });
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(expect_first, end);
  }
  return out;
}

// (sliding window, DiskKv hot window) in tokens; pages of 4 tokens.
class SlidingDiskKv : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

// Layers 0 and 2 slide, layer 1 is global. Random rows in steps of mixed sizes up to
// 8× the window: DiskKv's pages equal InRamKv's at every step (released rows are zeros
// in both), the sliding layers' disk bytes (quota and the file's allocated blocks) stay
// within their window plus one step, and Truncate agrees with InRamKv.
TEST_P(SlidingDiskKv, DiskStopsGrowingAndPagesEqualRam) {
  const auto [window, hot] = GetParam();
  KvLayout L = Layout({window, 0, window});
  L.n_layer = 3;
  L.dtype = DType::kBF16;
  DiskKvOptions o;
  o.window_tokens = hot;
  o.max_tokens = 4096;
  o.dir = TempDir("disk");
  o.prefetch_bytes = 1;
  InRamKv ram(L);
  DiskKv disk(L, o);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  const int64_t row = L.row_elems(), pt = L.page_tokens;
  const uint64_t page = 2 * disk.slot_bytes();
  int64_t max_step = 0;
  auto step = [&](int64_t n) {
    max_step = std::max(max_step, n);
    std::vector<float> k(n * row), v(n * row);
    for (int64_t l = 0; l < L.n_layer; ++l) {
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      ASSERT_TRUE(ram.Write(l, ram.n_tokens(), n, k.data(), v.data()).ok());
      Status st = disk.Write(l, disk.n_tokens(), n, k.data(), v.data());
      ASSERT_TRUE(st.ok()) << st.message();
    }
    ASSERT_EQ(Snapshot(ram, ram.n_tokens() + n), Snapshot(disk, disk.n_tokens() + n));
    ASSERT_TRUE(ram.Commit(n).ok());
    ASSERT_TRUE(disk.Commit(n).ok());
    ASSERT_EQ(disk.live_from(0), ram.live_from(0));
    ASSERT_EQ(disk.live_from(1), 0);
    // Global layer: every page before the hot window is on disk. Sliding layers: at
    // most the pages of the window and the step that are not hot.
    const int64_t nt = disk.n_tokens(), hot_pages = disk.hot_pages();
    const int64_t global_disk = std::max<int64_t>((nt + pt - 1) / pt - hot_pages, 0);
    const int64_t sliding_bound = (window - 1 + max_step + pt - 1) / pt + 1;
    EXPECT_LE(disk.disk_bytes(), page * (global_disk + 2 * sliding_bound)) << nt;
    EXPECT_GE(disk.disk_bytes(), page * global_disk) << nt;
  };
  for (int64_t n : {5, 3, 1, 1, 9, 2}) step(n);
  while (ram.n_tokens() < 8 * window) step(1 + ram.n_tokens() % 3);
  EXPECT_GT(disk.stats().pages_released, 0u);
  EXPECT_EQ(disk.stats().punch_failures, 0u);
  if (window > hot) {
    EXPECT_GT(disk.stats().pages_punched, 0u);  // spilled while in the window, punched after
  } else {
    EXPECT_GT(disk.stats().pages_not_spilled, 0u);  // left the window while hot: never written
    EXPECT_EQ(disk.stats().pages_punched, 0u);
  }
  // The filesystem's view: the scratch file's blocks are the pages on disk (plus at most
  // a few blocks of extent metadata for a file full of holes).
  EXPECT_GE(disk.file_allocated_bytes(), disk.disk_bytes());
  EXPECT_LE(disk.file_allocated_bytes(), disk.disk_bytes() + 16 * 4096);
  ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));

  // Truncate: the same answers as InRamKv (refused into released rows, else the window
  // comes back from disk), then both grow on identically.
  const int64_t nt = ram.n_tokens();
  for (int64_t n : {nt - 1, nt - window / 2, nt - window - 3, int64_t{1}}) {
    Status a = ram.Truncate(n), b = disk.Truncate(n);
    ASSERT_EQ(a.code(), b.code()) << n << ": " << a.message() << " / " << b.message();
    ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));
    step(2);
  }
  ASSERT_TRUE(ram.Truncate(0).ok());
  ASSERT_TRUE(disk.Truncate(0).ok());
  for (int64_t n : {7, 1, 12}) step(n);
  ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));
}

INSTANTIATE_TEST_SUITE_P(Windows, SlidingDiskKv,
                         ::testing::Values(std::pair<int64_t, int64_t>{6, 4},     // window > hot: spill, then punch
                                           std::pair<int64_t, int64_t>{20, 8},    // several pages on disk per layer
                                           std::pair<int64_t, int64_t>{6, 32}));  // released while hot: never written

// A --kv-max-disk far below what the whole context would spill is enough for an
// all-sliding cache: the quota gets released pages back.
TEST(SlidingDiskKv, QuotaHoldsOnlyTheWindow) {
  KvLayout L = Layout({8, 8});
  DiskKvOptions o;
  o.window_tokens = 4;
  o.max_tokens = 4096;
  o.dir = TempDir("quota");
  const uint64_t page = 2 * 4096;  // one page's K and V slots
  o.quota = std::make_shared<DiskQuota>(2 * 4 * page);  // 4 pages per layer; 800 tokens spill 2 × 199
  DiskKv kv(L, o);
  for (int i = 0; i < 200; ++i) Step(kv, 4);
  EXPECT_EQ(kv.n_tokens(), 800);
  EXPECT_LE(o.quota->used(), 2 * 4 * page);
  EXPECT_EQ(o.quota->used(), kv.disk_bytes());
}

TEST(SlidingDiskKv, WriteReleasedOnlyForSlidingLayers) {
  InRamKv ram(Layout({6, 0}));
  Status st = ram.WriteReleased(1, 0, 8);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("no sliding window"), std::string::npos) << st.message();
  // Whole released pages take no memory; the partial page is zeros.
  ASSERT_TRUE(ram.WriteReleased(0, 0, 10).ok());
  EXPECT_EQ(ram.live_from(0), 8);
  EXPECT_EQ(ram.page_bytes_held(), ram.layout().page_bytes() * 2);
}

// Engine level: the Gemma 3 fixture with disk KV (one hot page of 4 tokens) at 64
// tokens, 16× its window: the sliding layers' spilled pages are punched, only the
// global layer keeps pages on disk.
TEST(SlidingKv, EngineDiskHoldsOnlyTheWindow) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.load_tokenizer = false;
  o.ctx = 256;
  o.kv_window = 4;
  o.kv_page_tokens = 4;
  o.prefill_chunk = 8;
  o.kv_dir = TempDir("engine");
  auto e = runtime::Engine::Open(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16", o);
  ASSERT_TRUE(e.ok()) << e.status().message();
  auto seq = (*e)->NewSequence();
  auto* kv = dynamic_cast<DiskKv*>(&seq->kv());
  ASSERT_NE(kv, nullptr);
  std::vector<int32_t> prompt(64);
  std::mt19937 rng(1);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % (*e)->n_vocab());
  std::vector<float> logits((*e)->n_vocab());
  ASSERT_TRUE((*e)->Prefill(*seq, prompt, logits.data(), /*all_logits=*/false).ok());
  // Global layer: pages 0..14 on disk, 15 hot. Sliding layers: nothing on disk.
  EXPECT_EQ(kv->disk_bytes(), 15 * 2 * kv->slot_bytes());
  EXPECT_EQ((*e)->kv_disk_bytes(), kv->disk_bytes());
  EXPECT_GT(kv->stats().pages_punched, 0u);
  EXPECT_GE(kv->file_allocated_bytes(), kv->disk_bytes());
  EXPECT_LE(kv->file_allocated_bytes(), kv->disk_bytes() + 16 * 4096);  // extent metadata
}

// A reused prefix past the window gives the cold run's logits bit for bit: the Gemma 3
// fixture (pages and chunks of 4) prefilled with 48 tokens: a cut to 44 is refused
// (position 44 attends to 41.., the sliding layers hold 44 on), the whole prefix is
// reused and the rest fed; in RAM and on disk.
TEST(SlidingKv, ReusedPrefixPastTheWindowEqualsAColdRun) {
  for (int64_t kv_window : {0, 8}) {
    SCOPED_TRACE(kv_window);
    runtime::EngineOptions o;
    o.threads = 2;
    o.load_tokenizer = false;
    o.ctx = 256;
    o.kv_window = kv_window;
    o.kv_page_tokens = 4;
    o.prefill_chunk = 4;
    o.kv_dir = TempDir("reuse");
    auto e = runtime::Engine::Open(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16", o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    const int64_t V = (*e)->n_vocab();
    std::vector<int32_t> prompt(72);
    std::mt19937 rng(5);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % V);
    const std::vector<int32_t> head(prompt.begin(), prompt.begin() + 48), tail(prompt.begin() + 48, prompt.end());
    auto cold_seq = (*e)->NewSequence();
    std::vector<float> cold(prompt.size() * V);
    ASSERT_TRUE((*e)->Prefill(*cold_seq, prompt, cold.data(), /*all_logits=*/true).ok());

    auto seq = (*e)->NewSequence();
    std::vector<float> logits(head.size() * V);
    ASSERT_TRUE((*e)->Prefill(*seq, head, logits.data(), /*all_logits=*/true).ok());
    EXPECT_EQ(seq->kv().live_from(0), 44);
    // Position 44 attends to 41..44: rows 41..43 are released.
    Status st = (*e)->Truncate(*seq, 44);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.message();
    EXPECT_EQ(seq->n_tokens(), 48);
    ASSERT_TRUE((*e)->Truncate(*seq, 48).ok());
    std::vector<float> rest(tail.size() * V);
    ASSERT_TRUE((*e)->Prefill(*seq, tail, rest.data(), /*all_logits=*/true).ok());
    EXPECT_EQ(std::memcmp(rest.data(), cold.data() + head.size() * V, rest.size() * sizeof(float)), 0);
  }
}

}  // namespace
}  // namespace spool::kv
