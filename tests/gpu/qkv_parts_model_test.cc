// The GPU decoder's QKV layer parts (gpu/layer_parts.h) in whole models: the tiny
// transformers fixtures qwen2-bias-tied-f32 (Qwen2: QKV bias, tied head, head_dim 16,
// GQA 4/2) and qwen3-qknorm-bf16 (Qwen3: per-head q/k RMSNorm, bf16 weights, head_dim 32,
// GQA 4/2), decoded on the Vulkan device:
//   - against transformers' logits (reference.json) token by token and through Prefill
//     (chunks of 4): within hf_parity_test's decode bound 2e-4·(1 + |logit|); the greedy
//     continuation after a GPU prefill equals transformers' ids;
//   - against the CPU engine's decode path (Engine::Decode), its greedy token fed to both:
//     ids identical, logits within 2e-6 of max|logit| where the device has f64 (the CPU's
//     numerics but SwiGLU's exp, as stories260K in llama_decoder_test.cc), else 1e-5;
//   - Prefill in chunks of 3 = token by token, and streamed under a VRAM budget (all layers
//     streamed; one resident, where that is not the whole model) = resident: bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu/llama_decoder.h"
#include "gpu_test_util.h"
#include "runtime/engine.h"
#include "runtime/resident_weights.h"
#include "tensor/ops.h"

namespace spool::gpu {
namespace {

struct Fixture {
  std::string dir;
  std::vector<int32_t> prompt, greedy;
  std::vector<std::vector<float>> logits;  // transformers' [prompt.size()][n_vocab]
  std::unique_ptr<runtime::Engine> engine;
  std::unique_ptr<runtime::ResidentWeights> provider;
};

// Loads the fixture and opens the CPU engine on it (f32 KV, pages of 16, context 64).
void Load(const std::string& name, Fixture* f) {
  f->dir = std::string(SPOOL_TEST_FIXTURES) + "/models/" + name;
  std::ifstream in(f->dir + "/reference.json");
  ASSERT_TRUE(in.good()) << f->dir;
  auto ref = nlohmann::json::parse(in);
  f->prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  f->greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
  f->logits = ref["logits"].get<std::vector<std::vector<float>>>();
  runtime::EngineOptions eo;
  eo.threads = 1;
  eo.load_tokenizer = false;
  eo.kv_page_tokens = 16;
  eo.kv_dtype = DType::kF32;  // as the decoders below
  eo.ctx = 64;
  auto engine = runtime::Engine::Open(f->dir, eo);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  f->engine = std::move(engine.value());
  auto provider = runtime::ResidentWeights::Load(f->engine->weights());
  ASSERT_TRUE(provider.ok()) << provider.status().message();
  f->provider = std::move(provider.value());
}

LlamaDecoderOptions Options(int64_t max_rows) {
  LlamaDecoderOptions o;
  o.ctx = 64;
  o.page_tokens = 16;
  o.max_rows = max_rows;
  return o;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

class GpuQkvPartsModel : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuQkvPartsModel, LogitsAndGreedyMatchTransformers) {
  GPU_TEST_DEVICE(dev);
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Load(GetParam(), &f));
  const auto& w = f.engine->weights();
  const int64_t V = w.config().n_vocab;
  auto worst_vs_ref = [&](const std::vector<float>& logits, size_t t) {
    double worst = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double want = f.logits[t][static_cast<size_t>(v)], got = logits[static_cast<size_t>(v)];
      worst = std::max(worst, std::abs(got - want) / (1 + std::abs(want)));
    }
    return worst;
  };
  std::vector<float> logits(static_cast<size_t>(V));
  auto dec = LlamaDecoder::Open(*dev, w, *f.provider, Options(4));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  double worst = 0;
  for (size_t t = 0; t < f.prompt.size(); ++t) {
    ASSERT_TRUE((*dec)->Step(f.prompt[t], logits.data()).ok());
    worst = std::max(worst, worst_vs_ref(logits, t));
  }
  EXPECT_LT(worst, 2e-4) << "token by token";
  std::printf("%s token by token vs transformers: worst %.3g\n", GetParam().c_str(), worst);

  worst = 0;
  for (size_t n = 1; n <= f.prompt.size(); n += 3) {  // every third prefix through Prefill
    auto p = LlamaDecoder::Open(*dev, w, *f.provider, Options(4));
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE((*p)->Prefill(std::span<const int32_t>(f.prompt.data(), n), logits.data()).ok());
    worst = std::max(worst, worst_vs_ref(logits, n - 1));
  }
  auto p = LlamaDecoder::Open(*dev, w, *f.provider, Options(4));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->Prefill(f.prompt, logits.data()).ok());
  worst = std::max(worst, worst_vs_ref(logits, f.prompt.size() - 1));
  EXPECT_LT(worst, 2e-4) << "prefill";
  std::printf("%s prefill vs transformers: worst %.3g\n", GetParam().c_str(), worst);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < f.greedy.size(); ++i) {
    ids.push_back(static_cast<int32_t>(Argmax(logits.data(), V)));
    if (i + 1 < f.greedy.size()) {
      ASSERT_TRUE((*p)->Step(ids.back(), logits.data()).ok());
    }
  }
  EXPECT_EQ(ids, f.greedy);
}

TEST_P(GpuQkvPartsModel, GreedyIdsAndLogitsEqualCpuDecode) {
  GPU_TEST_DEVICE(dev);
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Load(GetParam(), &f));
  runtime::Engine& e = *f.engine;
  const int64_t V = e.n_vocab();
  auto dec = LlamaDecoder::Open(*dev, e.weights(), *f.provider, Options(1));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  const double tol = dev->info().shader_float64 ? 2e-6 : 1e-5;
  std::vector<float> cpu(static_cast<size_t>(V)), gpu(static_cast<size_t>(V));
  auto seq = e.NewSequence();
  runtime::Sequence* seqs[] = {seq.get()};
  int32_t token = f.prompt[0];
  std::vector<int32_t> cpu_ids, gpu_ids;
  double worst = 0;
  const int64_t steps = static_cast<int64_t>(f.prompt.size()) + 24;
  for (int64_t i = 0; i < steps; ++i) {
    ASSERT_TRUE(e.Decode(seqs, {&token, 1}, cpu.data()).ok());
    Status s = (*dec)->Step(token, gpu.data());
    ASSERT_TRUE(s.ok()) << s.message();
    float lmax = 0, dmax = 0;
    for (int64_t j = 0; j < V; ++j) {
      lmax = std::max(lmax, std::fabs(cpu[j]));
      dmax = std::max(dmax, std::fabs(cpu[j] - gpu[j]));
    }
    worst = std::max(worst, static_cast<double>(dmax / lmax));
    ASSERT_LE(dmax, tol * lmax) << "step " << i;
    const int32_t cpu_next = static_cast<int32_t>(Argmax(cpu.data(), V));
    if (i + 1 >= static_cast<int64_t>(f.prompt.size())) {
      cpu_ids.push_back(cpu_next);
      gpu_ids.push_back(static_cast<int32_t>(Argmax(gpu.data(), V)));
    }
    token = i + 1 < static_cast<int64_t>(f.prompt.size()) ? f.prompt[static_cast<size_t>(i + 1)] : cpu_next;
  }
  EXPECT_EQ(gpu_ids, cpu_ids);
  std::printf("%s vs the CPU's decode: worst |Δlogit| / max|logit| = %.3g\n", GetParam().c_str(), worst);
}

// Prefill (chunks of 3: bias and per-head norm over several rows) leaves the logits of a
// token-by-token run; streamed layers give the resident logits. All bit for bit.
TEST_P(GpuQkvPartsModel, PrefillAndStreamedEqualTokenByTokenBitForBit) {
  GPU_TEST_DEVICE(dev);
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(Load(GetParam(), &f));
  const auto& w = f.engine->weights();
  const size_t V = static_cast<size_t>(w.config().n_vocab);
  // Token by token, resident: the prompt's last logits then 6 greedy steps.
  auto run = [&](const LlamaDecoderOptions& o, bool prefill, std::unique_ptr<LlamaDecoder>* keep) {
    std::vector<float> all, logits(V);
    auto dec = LlamaDecoder::Open(*dev, w, *f.provider, o);
    EXPECT_TRUE(dec.ok()) << dec.status().message();
    if (!dec.ok()) return all;
    if (prefill) {
      EXPECT_TRUE((*dec)->Prefill(f.prompt, logits.data()).ok());
    } else {
      for (int32_t t : f.prompt) EXPECT_TRUE((*dec)->Step(t, logits.data()).ok());
    }
    all = logits;
    for (int i = 0; i < 6; ++i) {
      EXPECT_TRUE((*dec)->Step(static_cast<int32_t>(Argmax(logits.data(), static_cast<int64_t>(V))), logits.data()).ok());
      all.insert(all.end(), logits.begin(), logits.end());
    }
    if (keep) *keep = std::move(dec.value());
    return all;
  };
  const std::vector<float> by_token = run(Options(3), false, nullptr);
  ASSERT_EQ(by_token.size(), 7 * V);
  EXPECT_TRUE(SameBits(run(Options(3), true, nullptr), by_token)) << "prefill differs from token by token";

  auto full = LlamaDecoder::Plan(*dev, w, Options(3));
  ASSERT_TRUE(full.ok()) << full.status().message();
  ASSERT_EQ(full->n_streamed, 0);
  for (int resident : {0, 1}) {
    LlamaDecoderOptions so = Options(3);
    so.vram_budget = full->fixed_bytes + static_cast<uint64_t>(2 + resident) * full->largest_layer;
    if (so.vram_budget >= full->fixed_bytes + full->layer_bytes) continue;  // qwen2's 3 layers: 1 resident = all
    auto plan = LlamaDecoder::Plan(*dev, w, so);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    EXPECT_EQ(plan->n_resident, resident) << plan->ToString();
    EXPECT_EQ(plan->n_streamed, w.config().n_layer - resident);
    std::unique_ptr<LlamaDecoder> dec;
    const uint64_t copies0 = dev->stats().copies;
    EXPECT_TRUE(SameBits(run(so, true, &dec), by_token)) << "streamed (" << resident << " resident) differs";
    ASSERT_TRUE(dec);
    EXPECT_LE(dec->device_bytes(), so.vram_budget) << plan->ToString();
    EXPECT_GT(dev->stats().copies, copies0);  // the streamed layers crossed
  }
}

INSTANTIATE_TEST_SUITE_P(QwenParts, GpuQkvPartsModel, ::testing::Values("qwen2-bias-tied-f32", "qwen3-qknorm-bf16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace spool::gpu
