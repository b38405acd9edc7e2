// DiskKv against InRamKv: the same writes give byte-identical pages (so attention sees
// the same bytes), through spills, reloads after Truncate, the next-layer prefetch and
// uncommitted rows; an engine with disk KV gives bit-identical logits to one with all
// KV in RAM; the disk limit and a full disk are clear errors.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "kv/disk_kv.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool::kv {
namespace {

std::string TempDir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("spool-kv-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(p);
  return p.string();
}

// Every page of every layer, flattened: what the attention kernel would read.
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

class DiskVsRam : public ::testing::TestWithParam<DType> {};

TEST_P(DiskVsRam, SamePagesThroughStepsSpillsAndTruncate) {
  KvLayout layout{3, 2, 16, 16, GetParam()};
  DiskKvOptions o;
  o.window_tokens = 20;  // 2 pages per layer in RAM
  o.max_tokens = 1024;
  o.dir = TempDir("pages");
  o.prefetch_bytes = 1;  // the smallest ring: 2 pages in flight
  InRamKv ram(layout);
  DiskKv disk(layout, o);
  EXPECT_EQ(disk.hot_pages(), 2);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  const int64_t row = layout.row_elems();
  auto step = [&](int64_t n) {
    std::vector<float> k(n * row), v(n * row);
    for (int64_t l = 0; l < layout.n_layer; ++l) {
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      ASSERT_TRUE(ram.Write(l, ram.n_tokens(), n, k.data(), v.data()).ok());
      Status st = disk.Write(l, disk.n_tokens(), n, k.data(), v.data());
      ASSERT_TRUE(st.ok()) << st.message();
    }
    // Uncommitted rows are visible to the step itself.
    ASSERT_EQ(Snapshot(ram, ram.n_tokens() + n), Snapshot(disk, disk.n_tokens() + n));
    ASSERT_TRUE(ram.Commit(n).ok());
    ASSERT_TRUE(disk.Commit(n).ok());
  };
  for (int64_t n : {5, 40, 1, 1, 100, 16, 3}) step(n);  // chunks larger than the window spill mid-write
  for (int i = 0; i < 40; ++i) step(1);                 // decode steps cross page boundaries
  EXPECT_GT(disk.stats().pages_spilled, 0u);
  EXPECT_GT(disk.stats().pages_read, 0u);
  EXPECT_GT(disk.stats().pages_prefetched_across_layers, 0u);
  ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));

  // Truncate into a spilled page: the window comes back from disk and grows again.
  ASSERT_TRUE(ram.Truncate(37).ok());
  ASSERT_TRUE(disk.Truncate(37).ok());
  ASSERT_EQ(Snapshot(ram, 37), Snapshot(disk, 37));
  for (int64_t n : {30, 1, 2, 64}) step(n);
  ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));
  // A step that failed half way (some layers written, no commit) is simply rewritten.
  {
    std::vector<float> k(50 * row, 1.0f), v(50 * row, 2.0f);
    ASSERT_TRUE(disk.Write(0, disk.n_tokens(), 50, k.data(), v.data()).ok());
  }
  step(7);
  ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));
  ASSERT_TRUE(ram.Truncate(0).ok());
  ASSERT_TRUE(disk.Truncate(0).ok());
  step(3);
  ASSERT_EQ(Snapshot(ram, ram.n_tokens()), Snapshot(disk, disk.n_tokens()));
  // RAM stays bounded by the window, not the context.
  EXPECT_LE(disk.max_ram_bytes(), (3 * 2 + 2) * 2 * disk.slot_bytes());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DiskVsRam, ::testing::Values(DType::kBF16, DType::kF32));

TEST(DiskKv, MaxDiskLimitIsAClearError) {
  KvLayout layout{2, 2, 16, 16, DType::kBF16};
  DiskKvOptions o;
  o.window_tokens = 16;
  o.max_tokens = 1024;
  o.dir = TempDir("quota");
  o.quota = std::make_shared<DiskQuota>(3 * 2 * 4096);  // three spilled pages
  DiskKv kv(layout, o);
  std::vector<float> k(256 * 32, 0.5f);
  Status st;
  int64_t l = 0;
  for (; l < 2 && st.ok(); ++l) st = kv.Write(l, 0, 128, k.data(), k.data());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(st.message().find("--kv-max-disk"), std::string::npos) << st.message();
}

TEST(DiskKv, FullDiskIsAClearError) {
  const std::string dir = TempDir("enospc");
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") != 0) GTEST_SKIP() << "cannot mount a tmpfs (needs root)";
  KvLayout layout{2, 2, 16, 16, DType::kBF16};
  DiskKvOptions o;
  o.window_tokens = 16;
  o.max_tokens = 4096;
  o.dir = dir;
  Status st;
  {
    DiskKv kv(layout, o);
    std::vector<float> k(1024 * 32, 0.5f);
    for (int64_t l = 0; l < 2 && st.ok(); ++l) st = kv.Write(l, 0, 1024, k.data(), k.data());
  }
  ::umount(dir.c_str());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kResourceExhausted) << st.message();
  EXPECT_NE(st.message().find("disk is full"), std::string::npos) << st.message();
}

// The engine: disk KV (tiny window, spills during prefill chunks and decode) against all
// KV in RAM, every logit compared bit for bit, prefill (GEMM) and decode (GEMV) paths.
class EngineDiskVsRam : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineDiskVsRam, BitIdenticalLogits) {
  const std::string dir = std::string(SPOOL_TEST_FIXTURES) + "/models/" + GetParam();
  auto open = [&](int64_t window) {
    runtime::EngineOptions o;
    o.threads = 2;
    o.load_tokenizer = false;
    o.ctx = 256;
    o.prefill_chunk = 40;
    o.kv_page_tokens = 16;
    o.kv_window = window;
    o.kv_dir = TempDir("engine");
    auto e = runtime::Engine::Open(dir, o);
    EXPECT_TRUE(e.ok()) << e.status().message();
    return std::move(*e);
  };
  auto ram = open(0), disk = open(20);
  const int64_t V = ram->n_vocab();
  std::vector<int32_t> prompt(180);
  std::mt19937 rng(3);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % V);
  auto run = [&](runtime::Engine& e, std::vector<float>* all) {
    auto seq = e.NewSequence();
    std::vector<float> logits(prompt.size() * V);
    EXPECT_TRUE(e.Prefill(*seq, prompt, logits.data(), /*all_logits=*/true).ok());
    *all = logits;
    int32_t next = static_cast<int32_t>(std::max_element(logits.end() - V, logits.end()) - (logits.end() - V));
    std::vector<float> step(V);
    for (int i = 0; i < 40; ++i) {
      runtime::Sequence* s = seq.get();
      Status st = e.Decode(std::span<runtime::Sequence* const>(&s, 1), std::span<const int32_t>(&next, 1), step.data());
      EXPECT_TRUE(st.ok()) << st.message();
      all->insert(all->end(), step.begin(), step.end());
      next = static_cast<int32_t>(std::max_element(step.begin(), step.end()) - step.begin());
    }
    return seq;
  };
  std::vector<float> a, b;
  auto sa = run(*ram, &a);
  auto sb = run(*disk, &b);
  auto* dkv = dynamic_cast<DiskKv*>(&sb->kv());
  ASSERT_NE(dkv, nullptr) << "the window is smaller than the context: the engine must pick DiskKv";
  EXPECT_EQ(dynamic_cast<DiskKv*>(&sa->kv()), nullptr);
  EXPECT_GT(dkv->stats().pages_read, 100u);
  EXPECT_GT(disk->kv_disk_bytes(), 0u);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "disk-backed KV changed the logits";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineDiskVsRam,
                         ::testing::Values("llama-gqa-tied-bf16", "llama3-scaled-sharded-bf16", "qwen3-qknorm-bf16",
                                           "mixtral-bf16",
                                           // sliding layers (window 4 and 6) at 220 tokens, pages released in RAM
                                           "gemma3-swa-bf16", "gemma2-softcap-f32",
                                           // gpt-oss: sinks, window 6, MXFP4 experts (split layout)
                                           "../gptoss/gptoss-h64-mxfp4"));

}  // namespace
}  // namespace spool::kv
