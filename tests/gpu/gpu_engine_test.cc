// The engine on a Vulkan device (runtime/gpu_backend.h, `--device vulkan`): several
// sequences in one Engine::Step equal each run alone, all_logits rows equal decode steps,
// Truncate + refeed and a session round trip are bit-identical to the uninterrupted run,
// and the errors (label malformed): an architecture the GPU decoder lacks, a VRAM budget
// too small, auto's fallback. Skipped without a Vulkan device (CI: lavapipe).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "runtime/engine.h"

namespace spool::runtime {
namespace {

const std::string kStories = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";
// Gemma 2 (sandwich norms, GeGLU, soft-capping): an architecture the GPU decoder lacks.
const std::string kGemma2 = std::string(SPOOL_TEST_FIXTURES) + "/models/gemma2-softcap-f32";

EngineOptions GpuOptions() {
  EngineOptions o;
  o.threads = 1;
  o.ctx = 64;
  o.kv_dtype = DType::kF32;
  o.prefill_chunk = 8;
  o.load_tokenizer = false;
  o.device.kind = gpu::DeviceSpec::Kind::kVulkan;
  return o;
}

std::unique_ptr<Engine> OpenGpu(const EngineOptions& o = GpuOptions()) {
  auto e = Engine::Open(kStories, o);
  SPOOL_CHECK_MSG(e.ok(), e.status().message().c_str());
  SPOOL_CHECK((*e)->device_name().rfind("vulkan:0", 0) == 0);
  return std::move(e.value());
}

const std::vector<int32_t> kPromptA = {1, 403, 407, 261, 378, 425, 386, 270, 302, 264, 318};
const std::vector<int32_t> kPromptB = {1, 261, 500, 11, 300, 42};

TEST(GpuEngine, StepOfTwoSequencesEqualsEachAlone) {
  GPU_TEST_DEVICE(dev);
  auto e = OpenGpu();
  const int64_t V = e->n_vocab();
  std::vector<float> la(V), lb(V), both(2 * V);
  auto a = e->NewSequence(), b = e->NewSequence(), a2 = e->NewSequence(), b2 = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*a, kPromptA, la.data()).ok());
  ASSERT_TRUE(e->Prefill(*b, kPromptB, lb.data()).ok());
  ASSERT_TRUE(e->Prefill(*a2, kPromptA, la.data()).ok());
  ASSERT_TRUE(e->Prefill(*b2, kPromptB, lb.data()).ok());
  Sequence* seqs[2] = {a.get(), b.get()};
  const int32_t toks[2] = {7, 9};
  ASSERT_TRUE(e->Decode(seqs, toks, both.data()).ok());
  Sequence* sa[1] = {a2.get()};
  Sequence* sb[1] = {b2.get()};
  ASSERT_TRUE(e->Decode(sa, std::span<const int32_t>(&toks[0], 1), la.data()).ok());
  ASSERT_TRUE(e->Decode(sb, std::span<const int32_t>(&toks[1], 1), lb.data()).ok());
  EXPECT_EQ(0, std::memcmp(both.data(), la.data(), V * 4));
  EXPECT_EQ(0, std::memcmp(both.data() + V, lb.data(), V * 4));
  EXPECT_EQ(a->n_tokens(), static_cast<int64_t>(kPromptA.size()) + 1);
}

TEST(GpuEngine, AllLogitsRowsEqualDecodeStepsAndTruncateRefeeds) {
  GPU_TEST_DEVICE(dev);
  auto e = OpenGpu();
  const int64_t V = e->n_vocab(), n = static_cast<int64_t>(kPromptA.size());
  std::vector<float> all(n * V), one(V);
  auto s = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*s, kPromptA, all.data(), /*all_logits=*/true).ok());
  auto t = e->NewSequence();
  for (int64_t i = 0; i < n; ++i) {
    Sequence* seq[1] = {t.get()};
    ASSERT_TRUE(e->Decode(seq, std::span<const int32_t>(&kPromptA[i], 1), one.data()).ok());
    EXPECT_EQ(0, std::memcmp(all.data() + i * V, one.data(), V * 4)) << "row " << i;
  }
  // Truncate to 5 and feed the rest again: the last logits as before, bit for bit.
  ASSERT_TRUE(e->Truncate(*s, 5).ok());
  EXPECT_EQ(s->n_tokens(), 5);
  EXPECT_FALSE(e->Truncate(*s, 6).ok());
  ASSERT_TRUE(e->Prefill(*s, std::span<const int32_t>(kPromptA).subspan(5), one.data()).ok());
  EXPECT_EQ(0, std::memcmp(all.data() + (n - 1) * V, one.data(), V * 4));
}

TEST(GpuEngine, SessionRoundTripContinuesBitForBit) {
  GPU_TEST_DEVICE(dev);
  auto e = OpenGpu();
  const int64_t V = e->n_vocab();
  std::vector<float> whole(V), part(V);
  auto w = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*w, kPromptA, whole.data()).ok());
  auto s = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*s, std::span<const int32_t>(kPromptA).subspan(0, 6), part.data()).ok());
  const std::string path = (std::filesystem::temp_directory_path() / "spool_gpu_engine_test.session").string();
  ASSERT_TRUE(e->SaveSession(path, *s, {}, nlohmann::ordered_json::object()).ok());
  s.reset();
  std::vector<int32_t> pending;
  for (bool on_gpu : {true, false}) {
    EngineOptions o = GpuOptions();
    if (!on_gpu) o.device = gpu::DeviceSpec{};
    auto e2 = Engine::Open(kStories, o);
    ASSERT_TRUE(e2.ok()) << e2.status().message();
    auto r = (*e2)->LoadSession(path, &pending);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ((*r)->n_tokens(), 6);
    ASSERT_TRUE((*e2)->Prefill(**r, std::span<const int32_t>(kPromptA).subspan(6), part.data()).ok());
    if (on_gpu) {
      EXPECT_EQ(0, std::memcmp(whole.data(), part.data(), V * 4));
    } else {
      // The CPU's own numerics (its f32 prefill GEMM): close, and the same argmax.
      const auto am = [&](const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
      EXPECT_EQ(am(whole), am(part));
      for (int64_t i = 0; i < V; ++i) EXPECT_NEAR(whole[i], part[i], 1e-3f);
    }
  }
  std::filesystem::remove(path);
}

TEST(GpuEngine, UnsupportedArchitectureIsAClearError) {
  GPU_TEST_DEVICE(dev);
  EngineOptions o = GpuOptions();
  auto e = Engine::Open(kGemma2, o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kUnsupported);
  const std::string& m = e.status().message();
  EXPECT_NE(m.find("architecture gemma2"), std::string::npos) << m;
  EXPECT_NE(m.find("sandwich norms"), std::string::npos) << m;
  EXPECT_NE(m.find("--device cpu runs it"), std::string::npos) << m;
  // auto (lavapipe accepted): the CPU, saying why.
  ::setenv("SPOOL_DEVICE_AUTO_CPU_VULKAN", "1", 1);
  o.device.kind = gpu::DeviceSpec::Kind::kAuto;
  auto a = Engine::Open(kGemma2, o);
  ::unsetenv("SPOOL_DEVICE_AUTO_CPU_VULKAN");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ((*a)->device_name(), "cpu");
  EXPECT_NE((*a)->device_note().find("architecture gemma2"), std::string::npos) << (*a)->device_note();
}

TEST(GpuEngine, TooSmallVramBudgetIsRefusedAndADraftModelRunsOnTheCpu) {
  GPU_TEST_DEVICE(dev);
  EngineOptions o = GpuOptions();
  o.vram_budget = 4096;
  auto e = Engine::Open(kStories, o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(e.status().message().find("--vram-budget 4096 bytes is too small"), std::string::npos)
      << e.status().message();
  o = GpuOptions();
  o.draft_model = kStories;
  o.max_draft = 4;
  // A draft model opens beside a GPU target: the target's steps on the device, the
  // draft's own engine on the CPU (docs/parts/gpu.md, "Draft models and trees").
  auto d = Engine::Open(kStories, o);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ((*d)->device_name().rfind("vulkan:0", 0), 0u) << (*d)->device_name();
  ASSERT_NE((*d)->draft_engine(), nullptr);
  EXPECT_EQ((*d)->draft_engine()->device_name(), "cpu");
}

}  // namespace
}  // namespace spool::runtime
