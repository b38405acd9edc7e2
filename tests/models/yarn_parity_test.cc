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

#include <iterator>

#include "converted_reference.h"
#include "models/weights.h"

namespace spool {
namespace {

using namespace testing_converted;

// ctx 128: the model's maximum (4 x the original 32); prompts run past the original context.
const ConvertedFixture kFx{std::string(SPOOL_TEST_FIXTURES) + "/yarn", /*ctx=*/128, /*min_prompt=*/32};
const std::string kF32 = "llama-yarn-f32.gguf";
const std::string kQ8 = "llama-yarn-q8_0.gguf";

TEST(Yarn, FixtureIsYarn) {
  for (const std::string& path : {kFx.dir + "/" + kF32, kFx.hf()}) {
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

TEST(Yarn, GgmlNumericsEqualLlamaCppQ8) { CheckAgainstLlamaCpp(kFx, kQ8, /*ggml=*/true, /*exact=*/true); }
TEST(Yarn, GgmlNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kFx, kF32, /*ggml=*/true, /*exact=*/false); }
TEST(Yarn, DefaultNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kFx, kF32, /*ggml=*/false, /*exact=*/false); }

TEST(Yarn, GgufAndHfFolderMatchTransformers) { CheckAgainstTransformers(kFx, {kFx.dir + "/" + kF32, kFx.hf()}); }

// Negative control: the same Q8_0 file with `llama.rope.scaling.type` rewritten from
// "yarn" to "none" (same length, so every offset stays) is far from llama.cpp, so the
// checks above do see yarn.
TEST(Yarn, WithoutYarnTheLogitsDiffer) {
  auto ref = LoadJson(kFx.dir + "/llamacpp_refs.json")["models"][kQ8]["cases"][0];
  std::ifstream in(kFx.dir + "/" + kQ8, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t key = bytes.find("llama.rope.scaling.type");
  ASSERT_NE(key, std::string::npos);
  const size_t value = bytes.find("yarn", key);
  ASSERT_NE(value, std::string::npos);
  bytes.replace(value, 4, "none");
  const std::string path = testing::TempDir() + "/yarn_off.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  auto engine = runtime::Engine::Open(path, Options(kFx, true));
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
