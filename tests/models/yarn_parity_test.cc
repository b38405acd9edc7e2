// YaRN rope scaling on real converter output: tests/fixtures/yarn, written by
// tools/gen_yarn_fixture.py — a tiny random Llama-shaped model (yarn factor 4 over an
// original context of 32, theta 10000, head_dim 32, tied embeddings, GQA) saved as an HF
// folder and converted by llama.cpp's convert_hf_to_gguf.py to f32 and Q8_0 GGUFs
// (`llama.rope.scaling.type = yarn`, factor, original_context_length, yarn_beta_fast/slow),
// with llama-cpp-python 0.3.36's outputs on both GGUFs and transformers' outputs on the HF
// folder recorded. The prompt is 35 tokens (past the original context) and the 32 greedy
// tokens run on to position 66.
//
// Checked (KV cache f32 everywhere, as the references):
//  - `--numerics ggml`, Q8_0 GGUF: prompt ids, 32 greedy ids and every prompt logit
//    identical to llama.cpp's (recorded as exact f32 values; no tolerance);
//  - `--numerics ggml` and default numerics, f32 GGUF: ids identical to llama.cpp's,
//    logits within 2e-4 · (1 + |logit|);
//  - default numerics on the f32 GGUF and the HF folder against transformers, same bound,
//    same greedy ids.
//  - negative control: the Q8_0 GGUF with its scaling type rewritten to "none" is far
//    from llama.cpp's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "models/weights.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool {
namespace {

const std::string kDir = std::string(SPOOL_TEST_FIXTURES) + "/yarn";
const std::string kF32 = "llama-yarn-f32.gguf";
const std::string kQ8 = "llama-yarn-q8_0.gguf";
const std::string kHf = kDir + "/hf";
constexpr double kRelTol = 2e-4;  // |a - b| / (1 + |b|), summation order only

nlohmann::json Load(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

runtime::EngineOptions Options(bool ggml) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.ctx = 128;  // the model's maximum (4 x the original 32)
  o.kv_dtype = DType::kF32;
  o.ggml_numerics = ggml;
  o.kv_page_tokens = 16;  // several pages
  return o;
}

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
  req.ignore_eos = true;  // neither reference stops at EOS (llama-cpp-python's generate, eos_token_id=None)
  auto seq = e.NewSequence();
  auto res = runtime::Generate(e, *seq, req);
  EXPECT_TRUE(res.ok()) << res.status().message();
  return res.ok() ? res->ids : std::vector<int32_t>{};
}

TEST(Yarn, FixtureIsYarn) {
  for (const std::string& path : {kDir + "/" + kF32, kHf}) {
    SCOPED_TRACE(path);
    auto src = formats::OpenModelSource(path);
    ASSERT_TRUE(src.ok()) << src.status().message();
    auto w = models::ModelWeights::Load(std::move(*src));
    ASSERT_TRUE(w.ok()) << w.status().message();
    const RopeScaling& s = (*w)->config().rope_scaling;
    EXPECT_EQ(s.kind, RopeScaling::Kind::kYarn);
    EXPECT_EQ(s.factor, 4.0f);
    EXPECT_EQ(s.original_max_position, 32);
    EXPECT_NEAR(s.attention_factor, 0.1 * std::log(4.0) + 1, 1e-6);
  }
}

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
    ASSERT_GT(prompt.size(), 32u) << "the prompt should run past the original context";
    auto ids = e.tokenizer()->Encode(c["prompt"].get<std::string>(), /*add_bos=*/true, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, prompt);
    const auto want_logits = c["prompt_logits"].get<std::vector<std::vector<float>>>();
    ASSERT_EQ(want_logits.at(0).size(), static_cast<size_t>(e.n_vocab()));
    const auto logits = PromptLogits(e, prompt);
    const double abs_diff = WorstDiff(logits, want_logits, false), rel_diff = WorstDiff(logits, want_logits, true);
    std::printf("  %s, %s numerics: largest logit difference to llama.cpp %.3g (relative %.3g)\n", model.c_str(),
                ggml ? "ggml" : "default", abs_diff, rel_diff);
    if (exact_logits) EXPECT_EQ(abs_diff, 0.0) << "largest absolute logit difference";
    else EXPECT_LE(rel_diff, kRelTol) << "largest relative logit difference";
    const auto want = c["generated_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Greedy(e, prompt, static_cast<int64_t>(want.size())), want);
  }
}

TEST(Yarn, GgmlNumericsEqualLlamaCppQ8) { CheckAgainstLlamaCpp(kQ8, /*ggml=*/true, /*exact_logits=*/true); }
TEST(Yarn, GgmlNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kF32, /*ggml=*/true, /*exact_logits=*/false); }
TEST(Yarn, DefaultNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kF32, /*ggml=*/false, /*exact_logits=*/false); }

TEST(Yarn, GgufAndHfFolderMatchTransformers) {
  auto ref = Load(kHf + "/reference.json");
  for (const std::string& path : {kDir + "/" + kF32, kHf}) {
    SCOPED_TRACE(path);
    auto engine = runtime::Engine::Open(path, Options(false));
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    for (auto& c : ref["cases"]) {
      const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
      const auto want_logits = c["logits"].get<std::vector<std::vector<float>>>();
      ASSERT_EQ(want_logits.at(0).size(), static_cast<size_t>((*engine)->n_vocab()));
      const double rel = WorstDiff(PromptLogits(**engine, prompt), want_logits, true);
      std::printf("  %s: largest relative logit difference to transformers %.3g\n", path.c_str(), rel);
      EXPECT_LE(rel, kRelTol);
      const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
      EXPECT_EQ(Greedy(**engine, prompt, static_cast<int64_t>(want.size())), want);
    }
  }
}

// Negative control: the same Q8_0 file with `llama.rope.scaling.type` rewritten from
// "yarn" to "none" (same length, so every offset stays) is far from llama.cpp, so the
// checks above do see yarn.
TEST(Yarn, WithoutYarnTheLogitsDiffer) {
  auto ref = Load(kDir + "/llamacpp_refs.json")["models"][kQ8]["cases"][0];
  std::ifstream in(kDir + "/" + kQ8, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t key = bytes.find("llama.rope.scaling.type");
  ASSERT_NE(key, std::string::npos);
  const size_t value = bytes.find("yarn", key);
  ASSERT_NE(value, std::string::npos);
  bytes.replace(value, 4, "none");
  const std::string path = testing::TempDir() + "/yarn_off.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  auto engine = runtime::Engine::Open(path, Options(true));
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  EXPECT_EQ((*engine)->config().rope_scaling.kind, RopeScaling::Kind::kNone);
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const double diff =
      WorstDiff(PromptLogits(**engine, prompt), ref["prompt_logits"].get<std::vector<std::vector<float>>>(), false);
  std::printf("  yarn off: largest logit difference to llama.cpp %.3g\n", diff);
  EXPECT_GT(diff, 0.05);
}

}  // namespace
}  // namespace spool
