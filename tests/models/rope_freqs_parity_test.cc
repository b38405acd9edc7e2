// GGUF rope_freqs (llama3 rope scaling as llama.cpp's converter stores it) on real
// converter output: tests/fixtures/rope_freqs, written by tools/gen_rope_freqs_fixture.py
// — a tiny random Llama-3.2-shaped model (llama3 scaling factor 32, theta 500000, tied
// embeddings, GQA, head_dim 64) saved as an HF folder and converted by llama.cpp's
// convert_hf_to_gguf.py to f32 and to Q8_0 GGUFs, with llama-cpp-python 0.3.36's outputs
// on both GGUFs and transformers' outputs on the HF folder recorded.
//
// Checked (KV cache f32 everywhere, as the references):
//  - `--numerics ggml`, Q8_0 GGUF: prompt ids, 32 greedy ids and every prompt logit
//    identical to llama.cpp's (recorded as exact f32 values; no tolerance);
//  - `--numerics ggml` and default numerics, f32 GGUF: ids identical to llama.cpp's,
//    logits within 2e-4 · (1 + |logit|) (llama.cpp's f32 GEMM summation order is not
//    replicated; measured ≤ 4.5e-5);
//  - default numerics on the f32 GGUF and the HF folder against transformers, same
//    bound, same greedy ids: the rope_freqs factors give the HF llama3 formula's result.
// Negative control (done by hand): with the factors ignored in the ggml rope, the Q8_0
// logits differ from llama.cpp's by up to 0.58 and the greedy ids diverge at once.
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
const std::string kF32 = "llama32-tiny-f32.gguf";
const std::string kQ8 = "llama32-tiny-q8_0.gguf";
const std::string kGguf = kDir + "/" + kF32;
const std::string kHf = kDir + "/hf";
constexpr double kRelTol = 2e-4;        // |a - b| / (1 + |b|), summation order only
constexpr double kExactLogitTol = 0;     // llama.cpp's f32 logits are recorded exactly

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

// model: a file name in llamacpp_refs.json; ggml: --numerics ggml; logit_tol: the bound
// on |spool - llama.cpp| (absolute when exact_logits, else relative to 1 + |logit|).
void CheckAgainstLlamaCpp(const std::string& model, bool ggml, bool exact_logits) {
  auto ref = Load(kDir + "/llamacpp_refs.json")["models"][model];
  auto engine = runtime::Engine::Open(kDir + "/" + model, Options(ggml));
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
    const double abs_diff = WorstDiff(logits, want_logits, false), rel_diff = WorstDiff(logits, want_logits, true);
    std::printf("  %s, %s numerics: largest logit difference to llama.cpp %.3g (relative %.3g)\n", model.c_str(),
                ggml ? "ggml" : "default", abs_diff, rel_diff);
    if (exact_logits) EXPECT_LE(abs_diff, kExactLogitTol) << "largest absolute logit difference";
    else EXPECT_LE(rel_diff, kRelTol) << "largest relative logit difference";
    const auto want = c["generated_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Greedy(e, prompt, static_cast<int64_t>(want.size())), want);
  }
}

// Q8_0 weights: llama.cpp's arithmetic reproduced bit for bit, rope_freqs included.
TEST(RopeFreqs, GgmlNumericsEqualLlamaCppQ8) { CheckAgainstLlamaCpp(kQ8, /*ggml=*/true, /*exact_logits=*/true); }
// f32 weights: llama.cpp's f32 GEMM order is not replicated; same ids, logits close.
TEST(RopeFreqs, GgmlNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kF32, /*ggml=*/true, /*exact_logits=*/false); }
TEST(RopeFreqs, DefaultNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kF32, /*ggml=*/false, /*exact_logits=*/false); }

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
