// Transformers parity: tiny random-weight models of every supported architecture
// (tests/fixtures/models, written by tools/gen_hf_fixtures.py with transformers in
// float32). spool must reproduce transformers' logits for a fixed prompt and its
// 32-token greedy continuation exactly.
//
// Two paths are checked, with the KV cache in f32 (bf16 would round K/V):
//  - token by token (decode path: GEMV, f32 activations, weights widened exactly):
//    |spool - transformers| <= 2e-4 · (1 + |logit|) — summation order only;
//  - one prefill step (GEMM path): f32 weights as above; bf16/f16 weights run on
//    AMX with activations rounded to bf16, so the bound is 3e-2 · (1 + |logit|).
// Greedy ids must be identical on both paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool {
namespace {

std::string FixtureDir() { return std::string(SPOOL_TEST_FIXTURES) + "/models"; }

std::vector<std::string> ModelNames() {
  std::ifstream f(FixtureDir() + "/index.json");
  auto j = nlohmann::json::parse(f);
  return j["models"].get<std::vector<std::string>>();
}

class HfParity : public ::testing::TestWithParam<std::string> {};

runtime::EngineOptions Options(int64_t chunk = 512) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.kv_dtype = DType::kF32;
  o.load_tokenizer = false;
  o.prefill_chunk = chunk;
  o.kv_page_tokens = 16;  // several pages even for short prompts
  return o;
}

TEST_P(HfParity, LogitsAndGreedyMatchTransformers) {
  const std::string dir = FixtureDir() + "/" + GetParam();
  std::ifstream f(dir + "/reference.json");
  ASSERT_TRUE(f.good()) << dir;
  auto ref = nlohmann::json::parse(f);
  auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  auto ref_logits = ref["logits"].get<std::vector<std::vector<float>>>();
  auto ref_greedy = ref["greedy_ids"].get<std::vector<int32_t>>();

  auto engine = runtime::Engine::Open(dir, Options());
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto& e = **engine;
  const int64_t V = e.n_vocab();
  ASSERT_EQ(static_cast<size_t>(V), ref_logits[0].size());

  auto worst_diff = [&](const std::vector<float>& logits) {
    double worst = 0;
    for (size_t t = 0; t < prompt.size(); ++t)
      for (int64_t v = 0; v < V; ++v) {
        double want = ref_logits[t][v], got = logits[t * V + v];
        worst = std::max(worst, std::abs(got - want) / (1 + std::abs(want)));
      }
    return worst;
  };
  // Prefill path.
  auto seq = e.NewSequence();
  std::vector<float> logits(prompt.size() * V);
  ASSERT_TRUE(e.Prefill(*seq, prompt, logits.data(), /*all_logits=*/true).ok());
  const bool f32_weights = ref["storage_dtype"] == "float32";
  EXPECT_LT(worst_diff(logits), f32_weights ? 2e-4 : 3e-2) << "prefill path: largest relative logit difference";
  // Decode path: one token per step.
  auto seq_tt = e.NewSequence();
  for (size_t t = 0; t < prompt.size(); ++t) {
    runtime::Sequence* s = seq_tt.get();
    ASSERT_TRUE(e.Decode(std::span<runtime::Sequence* const>(&s, 1), std::span<const int32_t>(&prompt[t], 1),
                         logits.data() + t * V).ok());
  }
  EXPECT_LT(worst_diff(logits), 2e-4) << "decode path: largest relative logit difference";

  runtime::GenerateRequest req;
  req.prompt = prompt;
  req.sampling = sampling::SamplingParams::Greedy();
  req.max_tokens = static_cast<int64_t>(ref_greedy.size());
  auto seq2 = e.NewSequence();
  auto res = runtime::Generate(e, *seq2, req);
  ASSERT_TRUE(res.ok()) << res.status().message();
  EXPECT_EQ(res->ids, ref_greedy);
}

// Prefill in chunks of 3 (GEMV path, many steps) must give the same greedy ids as one chunk.
TEST_P(HfParity, ChunkedPrefillAgrees) {
  const std::string dir = FixtureDir() + "/" + GetParam();
  std::ifstream f(dir + "/reference.json");
  auto ref = nlohmann::json::parse(f);
  auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  auto ref_greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
  auto engine = runtime::Engine::Open(dir, Options(3));
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  runtime::GenerateRequest req;
  req.prompt = prompt;
  req.sampling = sampling::SamplingParams::Greedy();
  req.max_tokens = static_cast<int64_t>(ref_greedy.size());
  auto seq = (*engine)->NewSequence();
  auto res = runtime::Generate(**engine, *seq, req);
  ASSERT_TRUE(res.ok()) << res.status().message();
  EXPECT_EQ(res->ids, ref_greedy);
}

// Fixtures with `sequence_logits` (tools/gen_gemma_fixtures.py: sliding-window models):
// transformers' logits at every position of prompt + greedy continuation (42 tokens,
// up to 10× the window), checked on the decode path (one token per step: the window
// slides over released pages) and in one prefill step.
TEST_P(HfParity, SequenceLogitsMatchTransformers) {
  const std::string dir = FixtureDir() + "/" + GetParam();
  std::ifstream f(dir + "/reference.json");
  auto ref = nlohmann::json::parse(f);
  if (!ref.contains("sequence_logits")) GTEST_SKIP() << "no sequence_logits in this fixture";
  auto ids = ref["sequence_ids"].get<std::vector<int32_t>>();
  auto want = ref["sequence_logits"].get<std::vector<std::vector<float>>>();
  ASSERT_EQ(ids.size(), want.size());
  auto engine = runtime::Engine::Open(dir, Options());
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto& e = **engine;
  const int64_t V = e.n_vocab();
  auto worst = [&](const std::vector<float>& got) {
    double w = 0;
    for (size_t t = 0; t < ids.size(); ++t)
      for (int64_t v = 0; v < V; ++v)
        w = std::max(w, std::abs(got[t * V + v] - static_cast<double>(want[t][v])) / (1 + std::abs(want[t][v])));
    return w;
  };
  std::vector<float> logits(ids.size() * V);
  auto seq = e.NewSequence();
  for (size_t t = 0; t < ids.size(); ++t) {
    runtime::Sequence* s = seq.get();
    ASSERT_TRUE(e.Decode(std::span<runtime::Sequence* const>(&s, 1), std::span<const int32_t>(&ids[t], 1),
                         logits.data() + t * V).ok());
  }
  EXPECT_LT(worst(logits), 2e-4) << "decode path over " << ids.size() << " positions";
  auto seq2 = e.NewSequence();
  ASSERT_TRUE(e.Prefill(*seq2, ids, logits.data(), /*all_logits=*/true).ok());
  EXPECT_LT(worst(logits), ref["storage_dtype"] == "float32" ? 2e-4 : 3e-2) << "one prefill step";
}

// GGUF mixture of experts (llama.cpp's names: ffn_gate_inp, ffn_{gate,up,down}_exps 3-D,
// ffn_*_shexp; tools/gen_moe_gguf.py converts the HF fixtures, f32): the same weights
// read from GGUF give bit-identical logits to the safetensors folder (prefill and decode)
// and transformers' greedy ids.
TEST(GgufMoe, BitIdenticalToSafetensorsAndMatchesTransformers) {
  for (const char* name : {"qwen3-moe-fused-f32", "qwen2-moe-shared-f32"}) {
    SCOPED_TRACE(name);
    const std::string dir = FixtureDir() + "/" + name;
    std::ifstream f(dir + "/reference.json");
    auto ref = nlohmann::json::parse(f);
    auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
    auto ref_greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
    auto hf = runtime::Engine::Open(dir, Options());
    auto gg = runtime::Engine::Open(dir + ".gguf", Options());
    ASSERT_TRUE(hf.ok()) << hf.status().message();
    ASSERT_TRUE(gg.ok()) << gg.status().message();
    const int64_t V = (*hf)->n_vocab();
    ASSERT_EQ((*gg)->n_vocab(), V);
    auto logits = [&](runtime::Engine& e) {
      std::vector<float> out(prompt.size() * V), step(V);
      auto seq = e.NewSequence();
      EXPECT_TRUE(e.Prefill(*seq, prompt, out.data(), /*all_logits=*/true).ok());
      int32_t next = ref_greedy[0];
      for (int i = 0; i < 4; ++i) {
        runtime::Sequence* s = seq.get();
        EXPECT_TRUE(e.Decode(std::span<runtime::Sequence* const>(&s, 1), std::span<const int32_t>(&next, 1),
                             step.data()).ok());
        out.insert(out.end(), step.begin(), step.end());
        next = ref_greedy[i + 1];
      }
      return out;
    };
    auto a = logits(**hf), b = logits(**gg);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "GGUF and safetensors logits differ";
    runtime::GenerateRequest req;
    req.prompt = prompt;
    req.sampling = sampling::SamplingParams::Greedy();
    req.max_tokens = static_cast<int64_t>(ref_greedy.size());
    auto seq = (*gg)->NewSequence();
    auto res = runtime::Generate(**gg, *seq, req);
    ASSERT_TRUE(res.ok()) << res.status().message();
    EXPECT_EQ(res->ids, ref_greedy);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, HfParity, ::testing::ValuesIn(ModelNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace spool
