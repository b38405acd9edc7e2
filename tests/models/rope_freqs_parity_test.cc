// GGUF rope_freqs (llama3 rope scaling as llama.cpp's converter stores it) on a real
// converter output: tests/fixtures/rope_freqs, written by tools/gen_rope_freqs_fixture.py
// — a tiny random Llama-3.2-shaped model (llama3 scaling factor 32, theta 500000, tied
// embeddings, GQA, head_dim 64) saved as an HF folder, converted to an f32 GGUF by
// llama.cpp's convert_hf_to_gguf.py, with llama-cpp-python's outputs on the GGUF and
// transformers' outputs on the HF folder recorded.
//
// Checked (KV cache f32 everywhere, as the references):
//  - `--numerics ggml` on the GGUF: prompt ids and 32 greedy ids identical to llama.cpp's,
//    prompt logits equal to llama.cpp's (recorded to 6 decimals) within kGgmlLogitTol;
//  - default numerics on the GGUF: greedy ids identical to llama.cpp's, logits within
//    2e-4 · (1 + |logit|) (docs/testing.md: summation order only);
//  - default numerics on the GGUF against transformers on the HF folder, same bound:
//    the rope_freqs factors give the HF llama3 formula's result;
//  - the HF folder itself against transformers (the hf_parity_test rule).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/weights.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool {
namespace {

const std::string kDir = std::string(SPOOL_TEST_FIXTURES) + "/rope_freqs";
const std::string kGguf = kDir + "/llama32-tiny-f32.gguf";
const std::string kHf = kDir + "/hf";
constexpr double kRelTol = 2e-4;        // |a - b| / (1 + |b|), summation order only
constexpr double kGgmlLogitTol = 2e-6;  // llama.cpp's logits are recorded to 6 decimals

nlohmann::json Load(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

runtime::EngineOptions Options(bool ggml) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.ctx = 256;
  o.kv_dtype = DType::kF32;
  o.ggml_numerics = ggml;
  o.kv_page_tokens = 16;  // several pages even for short prompts
  return o;
}

// Largest |got - want| (absolute, or relative to 1 + |want|) over all prompt positions.
double WorstDiff(const std::vector<float>& got, const std::vector<std::vector<float>>& want, bool relative) {
  double worst = 0;
  const size_t V = want.at(0).size();
  for (size_t t = 0; t < want.size(); ++t)
    for (size_t v = 0; v < V; ++v) {
      const double d = std::abs(static_cast<double>(got[t * V + v]) - want[t][v]);
      worst = std::max(worst, relative ? d / (1 + std::abs(want[t][v])) : d);
    }
  return worst;
}

std::vector<float> PromptLogits(runtime::Engine& e, const std::vector<int32_t>& prompt) {
  auto seq = e.NewSequence();
  std::vector<float> logits(prompt.size() * e.n_vocab());
  Status st = e.Prefill(*seq, prompt, logits.data(), /*all_logits=*/true);
  EXPECT_TRUE(st.ok()) << st.message();
  return logits;
}

std::vector<int32_t> Greedy(runtime::Engine& e, const std::vector<int32_t>& prompt, int64_t n) {
  runtime::GenerateRequest req;
  req.prompt = prompt;
  req.sampling = sampling::SamplingParams::Greedy();
  req.max_tokens = n;
  auto seq = e.NewSequence();
  auto res = runtime::Generate(e, *seq, req);
  EXPECT_TRUE(res.ok()) << res.status().message();
  return res.ok() ? res->ids : std::vector<int32_t>{};
}

TEST(RopeFreqs, FixtureCarriesTheTensor) {
  auto src = formats::OpenModelSource(kGguf);
  ASSERT_TRUE(src.ok()) << src.status().message();
  const formats::TensorInfo* t = src->FindTensor("rope_freqs.weight");
  ASSERT_NE(t, nullptr) << "the converter wrote no rope_freqs tensor";
  auto w = models::ModelWeights::Load(std::move(*src));
  ASSERT_TRUE(w.ok()) << w.status().message();
  const auto& c = (*w)->config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);  // no scaling key: llama3 is in the tensor
  ASSERT_EQ(c.rope_scaling.freq_factors.size(), static_cast<size_t>(c.rope_dim / 2));
  EXPECT_EQ(c.rope_scaling.freq_factors.front(), 1.0f);
  EXPECT_EQ(c.rope_scaling.freq_factors.back(), 32.0f);
}

void CheckAgainstLlamaCpp(bool ggml) {
  auto ref = Load(kDir + "/llamacpp_refs.json");
  auto engine = runtime::Engine::Open(kGguf, Options(ggml));
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto& e = **engine;
  ASSERT_NE(e.tokenizer(), nullptr);
  ASSERT_FALSE(ref["cases"].empty());
  for (auto& c : ref["cases"]) {
    SCOPED_TRACE(c["prompt"].get<std::string>());
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto ids = e.tokenizer()->Encode(c["prompt"].get<std::string>(), /*add_bos=*/true, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, prompt);
    const auto want_logits = c["prompt_logits"].get<std::vector<std::vector<float>>>();
    ASSERT_EQ(want_logits.at(0).size(), static_cast<size_t>(e.n_vocab()));
    const auto logits = PromptLogits(e, prompt);
    if (ggml) EXPECT_LE(WorstDiff(logits, want_logits, false), kGgmlLogitTol) << "largest absolute logit difference";
    else EXPECT_LE(WorstDiff(logits, want_logits, true), kRelTol) << "largest relative logit difference";
    const auto want = c["generated_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Greedy(e, prompt, static_cast<int64_t>(want.size())), want);
  }
}

TEST(RopeFreqs, GgmlNumericsMatchLlamaCpp) { CheckAgainstLlamaCpp(true); }
TEST(RopeFreqs, DefaultNumericsMatchLlamaCpp) { CheckAgainstLlamaCpp(false); }

// The same model through both formats: the GGUF's rope_freqs and permuted Q/K give
// transformers' llama3 result on the HF folder, and so does the HF folder.
TEST(RopeFreqs, GgufAndHfFolderMatchTransformers) {
  auto ref = Load(kHf + "/reference.json");
  for (const std::string& path : {kGguf, kHf}) {
    SCOPED_TRACE(path);
    auto engine = runtime::Engine::Open(path, Options(false));
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    for (auto& c : ref["cases"]) {
      SCOPED_TRACE(c["prompt"].get<std::string>());
      const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
      const auto want_logits = c["logits"].get<std::vector<std::vector<float>>>();
      ASSERT_EQ(want_logits.at(0).size(), static_cast<size_t>((*engine)->n_vocab()));
      EXPECT_LE(WorstDiff(PromptLogits(**engine, prompt), want_logits, true), kRelTol);
      const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
      EXPECT_EQ(Greedy(**engine, prompt, static_cast<int64_t>(want.size())), want);
    }
  }
}

}  // namespace
}  // namespace spool
