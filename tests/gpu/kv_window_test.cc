// KV beyond VRAM (issue 17): a window of each sequence's most recent KV pages in VRAM,
// older pages in a host cache (kv::SequenceKv: RAM here, the engine's disk KV with
// --kv-window), staged per layer for attention with the online softmax carried between
// dispatches. Proof: the same logits as the whole cache in VRAM, bit for bit (tolerance
// 0: the same kernels fold the same pages in the same order; only where the pages are
// read from differs), through prefill chunks that wrap the ring, decode, truncation into
// pages that left VRAM, session download/upload, weight streaming and a context whose
// cache is larger than the device's maxStorageBufferRange; greedy ids equal the CPU
// engine's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gpu/llama_decoder.h"
#include "cpu_reference.h"
#include "gpu_test_util.h"
#include "runtime/engine.h"
#include "runtime/resident_weights.h"
#include "tensor/ops.h"

namespace spool::gpu {
namespace {

const std::string kStories = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";

Opened OpenCpu(int64_t ctx, DType kv, int64_t page_tokens) { return gpu::OpenCpu(kStories, ctx, kv, page_tokens); }

// One script of runs on a KV cache: a prompt in chunks (all rows' logits), greedy
// decode, truncation into the middle of an early page, more tokens, truncation again,
// a session-style download of every layer's rows into a new cache and a continuation
// there. Returns every logit row and every KV row read back, concatenated.
struct Script {
  std::vector<float> logits;
  std::vector<uint8_t> kv_rows;
  int64_t cold_tokens = 0;  // rows the host cache held at the end (0 without a window)
};
Script RunScript(LlamaDecoder& dec, const models::ModelConfig& c, std::span<const int32_t> prompt, int n_decode) {
  const int64_t V = c.n_vocab;
  Script out;
  auto kv = dec.NewKv();
  SPOOL_CHECK_MSG(kv.ok(), kv.status().message().c_str());
  DeviceKv& k = **kv;
  std::vector<float> rows(prompt.size() * static_cast<size_t>(V));
  auto run = [&](std::span<const int32_t> t, bool all) {
    rows.resize(t.size() * static_cast<size_t>(V));
    Status s = dec.Run(k, t, rows.data(), all);
    SPOOL_CHECK_MSG(s.ok(), s.message().c_str());
    out.logits.insert(out.logits.end(), rows.begin(), rows.begin() + (all ? static_cast<int64_t>(t.size()) : 1) * V);
    return static_cast<int32_t>(Argmax(rows.data() + (all ? static_cast<int64_t>(t.size()) - 1 : 0) * V, V));
  };
  int32_t next = run(prompt, true);
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  for (int i = 0; i < n_decode; ++i) {
    ids.push_back(next);
    next = run({&ids.back(), 1}, false);
  }
  // Back into the second page (the window has moved past it), then a chunk of the ids.
  SPOOL_CHECK(dec.Truncate(k, 11).ok());
  run(std::span<const int32_t>(ids).subspan(3, 13), true);
  SPOOL_CHECK(dec.Truncate(k, 20).ok());
  for (int i = 0; i < 6; ++i) run({&ids[static_cast<size_t>(30 + i)], 1}, false);
  // Every row read back, then written into a new cache (a session save and restore).
  const int64_t n = k.n_tokens;
  const uint64_t row = static_cast<uint64_t>(c.kv_dim()) * (dec.options().kv_dtype == DType::kF32 ? 4 : 2);
  std::vector<std::vector<uint8_t>> kr, vr;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    kr.emplace_back(static_cast<size_t>(n) * row);
    vr.emplace_back(static_cast<size_t>(n) * row);
    Status s = dec.ReadKv(k, l, n, kr.back().data(), vr.back().data());
    SPOOL_CHECK_MSG(s.ok(), s.message().c_str());
    out.kv_rows.insert(out.kv_rows.end(), kr.back().begin(), kr.back().end());
    out.kv_rows.insert(out.kv_rows.end(), vr.back().begin(), vr.back().end());
  }
  out.cold_tokens = k.cold ? k.cold->n_tokens() : 0;
  auto restored = dec.NewKv();
  SPOOL_CHECK(restored.ok());
  for (int64_t l = 0; l < c.n_layer; ++l) SPOOL_CHECK(dec.WriteKv(**restored, l, n, kr[l].data(), vr[l].data()).ok());
  (*restored)->n_tokens = n;
  for (int i = 0; i < 10; ++i) {
    rows.resize(static_cast<size_t>(V));
    SPOOL_CHECK(dec.Run(**restored, {&ids[static_cast<size_t>(40 + i)], 1}, rows.data(), false).ok());
    out.logits.insert(out.logits.end(), rows.begin(), rows.end());
  }
  return out;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<int32_t> Prompt(runtime::Engine& e) {
  auto p = e.tokenizer()->Encode("Once upon a time, there was a little girl named Lily. She", true, false);
  SPOOL_CHECK(p.ok());
  return p.value();
}

// Windows of 2 pages (the least a chunk of 5 rows over pages of 8 needs), 3 and 5 pages
// of a 96-token context, f32 and bf16 KV, against the whole cache in VRAM: bit-identical
// logits and KV rows; the host cache took the pages that left VRAM.
TEST(GpuKvWindow, WindowEqualsWholeCacheBitForBit) {
  GPU_TEST_DEVICE(dev);
  for (DType kvt : {DType::kF32, DType::kBF16}) {
    Opened m = OpenCpu(96, kvt, 8);
    const auto& w = m.engine->weights();
    const auto prompt = Prompt(*m.engine);
    ASSERT_GE(prompt.size(), 12u);
    LlamaDecoderOptions o;
    o.ctx = 96;
    o.kv_dtype = kvt;
    o.page_tokens = 8;
    o.max_rows = 5;
    o.own_kv = false;
    auto whole = LlamaDecoder::Open(*dev, w, *m.provider, o);
    ASSERT_TRUE(whole.ok()) << whole.status().message();
    ASSERT_FALSE((*whole)->plan().kv_windowed());
    const Script ref = RunScript(**whole, w.config(), prompt, 40);
    EXPECT_EQ(ref.cold_tokens, 0);
    for (int64_t hot_tokens : {1, 24, 40}) {
      LlamaDecoderOptions wo = o;
      wo.kv_hot_tokens = hot_tokens;
      auto dec = LlamaDecoder::Open(*dev, w, *m.provider, wo);
      ASSERT_TRUE(dec.ok()) << dec.status().message();
      const VramPlan& plan = (*dec)->plan();
      ASSERT_TRUE(plan.kv_windowed()) << plan.ToString();
      EXPECT_EQ(plan.kv_pages, 12);
      EXPECT_EQ(plan.kv_hot_pages, std::max<int64_t>(2, (hot_tokens + 7) / 8)) << plan.ToString();
      EXPECT_LT(plan.kv_seq_bytes, (*whole)->plan().kv_seq_bytes);
      std::printf("%s\n", plan.ToString().c_str());
      const Script got = RunScript(**dec, w.config(), prompt, 40);
      EXPECT_TRUE(SameBits(got.logits, ref.logits))
          << DTypeName(kvt) << " window of " << plan.kv_hot_pages << " pages: logits differ from the whole cache";
      EXPECT_EQ(got.kv_rows, ref.kv_rows) << DTypeName(kvt) << " window of " << plan.kv_hot_pages;
      EXPECT_GT(got.cold_tokens, 0) << "no page left VRAM";
    }
  }
}

// Greedy decoding with a 2-page window over a context of 12 pages: the CPU engine's ids,
// logits within the tolerance of Stories260KGreedyIdsEqualCpuF32Kv (2e-6 of max|logit|
// where the device has f64, else 1e-5), token by token on both.
TEST(GpuKvWindow, GreedyIdsEqualCpu) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(96, DType::kF32, 8);
  runtime::Engine& e = *m.engine;
  LlamaDecoderOptions o;
  o.ctx = 96;
  o.page_tokens = 8;
  o.kv_hot_tokens = 16;
  auto dec = LlamaDecoder::Open(*dev, e.weights(), *m.provider, o);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  ASSERT_TRUE((*dec)->plan().kv_windowed());
  const float tol = dev->info().shader_float64 ? 2e-6f : 1e-5f;
  const auto prompt = Prompt(e);
  const int64_t V = e.n_vocab();
  std::vector<float> cpu(static_cast<size_t>(V)), gpu(static_cast<size_t>(V));
  auto seq = e.NewSequence();
  runtime::Sequence* seqs[] = {seq.get()};
  int32_t token = prompt[0];
  std::vector<int32_t> cpu_ids, gpu_ids;
  for (int64_t i = 0; i < 90; ++i) {
    ASSERT_TRUE(e.Decode(seqs, {&token, 1}, cpu.data()).ok());
    Status s = (*dec)->Step(token, gpu.data());
    ASSERT_TRUE(s.ok()) << s.message();
    float lmax = 0, dmax = 0;
    for (int64_t j = 0; j < V; ++j) {
      lmax = std::max(lmax, std::fabs(cpu[j]));
      dmax = std::max(dmax, std::fabs(cpu[j] - gpu[j]));
    }
    ASSERT_LE(dmax, tol * lmax) << "step " << i;
    const int32_t cpu_next = static_cast<int32_t>(Argmax(cpu.data(), V));
    cpu_ids.push_back(cpu_next);
    gpu_ids.push_back(static_cast<int32_t>(Argmax(gpu.data(), V)));
    token = i + 1 < static_cast<int64_t>(prompt.size()) ? prompt[static_cast<size_t>(i + 1)] : cpu_next;
  }
  EXPECT_EQ(gpu_ids, cpu_ids);
}

// Under a VRAM budget too small for the whole KV cache beside the fixed buffers and the
// weight ring, the plan keeps a window of it (and streams the layers): the same logits
// as everything in VRAM, bit for bit, within the budget.
TEST(GpuKvWindow, BudgetPicksAWindowAndStreams) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(96, DType::kF32, 8);
  const auto& w = m.engine->weights();
  const auto prompt = Prompt(*m.engine);
  LlamaDecoderOptions o;
  o.ctx = 96;
  o.page_tokens = 8;
  o.max_rows = 5;
  o.own_kv = false;
  auto whole = LlamaDecoder::Open(*dev, w, *m.provider, o);
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  const VramPlan& full = (*whole)->plan();
  const Script ref = RunScript(**whole, w.config(), prompt, 40);
  LlamaDecoderOptions so = o;
  // A third of the KV cache less than streaming with the whole cache needs.
  so.vram_budget = full.fixed_bytes + 2 * full.largest_layer - full.kv_bytes / 3;
  auto dec = LlamaDecoder::Open(*dev, w, *m.provider, so);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  const VramPlan& plan = (*dec)->plan();
  std::printf("%s\n", plan.ToString().c_str());
  EXPECT_TRUE(plan.kv_windowed()) << plan.ToString();
  EXPECT_GT(plan.n_streamed, 0) << plan.ToString();
  EXPECT_LE(plan.device_bytes(), so.vram_budget) << plan.ToString();
  EXPECT_LE((*dec)->device_bytes(), so.vram_budget);
  const Script got = RunScript(**dec, w.config(), prompt, 40);
  EXPECT_TRUE(SameBits(got.logits, ref.logits)) << "logits differ from the whole cache, resident";
  EXPECT_EQ(got.kv_rows, ref.kv_rows);
}

// A context whose K cache is larger than the device's maxStorageBufferRange (refused
// before the window): it opens with a window that fits the limit and decodes the same
// logits as a small context, bit for bit.
TEST(GpuKvWindow, CacheBeyondMaxStorageBufferRangeRuns) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(64, DType::kF32, 256);
  const auto& w = m.engine->weights();
  const models::ModelConfig& c = w.config();
  const uint64_t range = dev->info().max_buffer_bytes;
  const uint64_t layer_row = static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(c.kv_dim()) * 4;
  LlamaDecoderOptions big;
  big.ctx = static_cast<int64_t>(range / layer_row) + 512;  // one K buffer of ctx rows per layer > range
  ASSERT_GT(static_cast<uint64_t>(big.ctx) * layer_row, range);
  auto dec = LlamaDecoder::Open(*dev, w, *m.provider, big);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  const VramPlan& plan = (*dec)->plan();
  std::printf("ctx %lld: %s\n", static_cast<long long>(big.ctx), plan.ToString().c_str());
  EXPECT_TRUE(plan.kv_windowed());
  EXPECT_LE(plan.kv_seq_bytes / 2, range);
  LlamaDecoderOptions small;
  small.ctx = 64;
  auto ref = LlamaDecoder::Open(*dev, w, *m.provider, small);
  ASSERT_TRUE(ref.ok());
  const auto prompt = Prompt(*m.engine);
  std::vector<float> a(static_cast<size_t>(c.n_vocab)), b(a.size());
  for (int32_t t : prompt) {
    ASSERT_TRUE((*dec)->Step(t, a.data()).ok());
    ASSERT_TRUE((*ref)->Step(t, b.data()).ok());
    ASSERT_TRUE(SameBits(a, b));
  }
}

}  // namespace
}  // namespace spool::gpu
