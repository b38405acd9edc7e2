// llama.cpp parity on the tiny trained GGUF models in ../shared/data/models:
// greedy generations and perplexity must equal the reference outputs recorded with
// llama.cpp c392e509 (../shared/data/refs, see its README for the exact commands).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/perplexity.h"

namespace spool {
namespace {

const std::string kData = SPOOL_SHARED_DATA;

std::string ModelPath(const std::string& ref_model) {
  // Reference files name models by their old layout; the file name is what matters.
  return kData + "/models/" + ref_model.substr(ref_model.rfind('/') + 1);
}

runtime::EngineOptions Options(DType kv) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.ctx = 128;  // the references' n_ctx
  o.kv_dtype = kv;
  return o;
}

class GreedyRefs : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(GreedyRefs, MatchLlamaCpp) {
  auto [name, kv] = GetParam();
  std::ifstream f(kData + "/refs/generate-" + name + ".json");
  ASSERT_TRUE(f.good());
  auto ref = nlohmann::json::parse(f);
  auto engine = runtime::Engine::Open(ModelPath(ref["model"]), Options(kv));
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto& e = **engine;
  ASSERT_NE(e.tokenizer(), nullptr);
  ASSERT_FALSE(ref["cases"].empty());
  for (auto& c : ref["cases"]) {
    SCOPED_TRACE(c["prompt"].get<std::string>());
    auto prompt_ids = e.tokenizer()->Encode(c["prompt"].get<std::string>(), c["add_bos"].get<bool>(), false);
    ASSERT_TRUE(prompt_ids.ok()) << prompt_ids.status().message();
    EXPECT_EQ(*prompt_ids, c["prompt_ids"].get<std::vector<int32_t>>());
    runtime::GenerateRequest req;
    req.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    req.sampling = sampling::SamplingParams::Greedy();
    req.max_tokens = ref["n_predict"].get<int64_t>();
    auto seq = e.NewSequence();
    auto res = runtime::Generate(e, *seq, req);
    ASSERT_TRUE(res.ok()) << res.status().message();
    auto want = c["generated_ids"].get<std::vector<int32_t>>();
    // llama.cpp stops at the context limit too; compare what both produced.
    std::vector<int32_t> got = res->ids;
    EXPECT_EQ(got, want);
    EXPECT_EQ(res->text, c["generated_text"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GreedyRefs,
                         ::testing::Combine(::testing::Values("stories260K", "babyllama-tok105"),
                                            ::testing::Values(DType::kF32, DType::kBF16)),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + (std::get<1>(info.param) == DType::kF32 ? "_f32kv" : "_bf16kv");
                           for (auto& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(PerplexityRefs, MatchLlamaCpp) {
  std::ifstream f(kData + "/refs/perplexity.json");
  auto ref = nlohmann::json::parse(f);
  auto text = ReadFileToString(kData + "/refs/" + ref["text_file"].get<std::string>());
  ASSERT_TRUE(text.ok());
  int checked = 0;
  for (auto& run : ref["runs"]) {
    std::string path = ModelPath(run["model"]);
    if (!std::ifstream(path).good()) continue;  // the synthetic 1B model is not shipped
    SCOPED_TRACE(path);
    auto engine = runtime::Engine::Open(path, Options(DType::kF32));
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    auto& e = **engine;
    auto ids = e.tokenizer()->Encode(*text, true, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(static_cast<int64_t>(ids->size()), run["n_tokens"].get<int64_t>());
    auto res = runtime::Perplexity(e, *ids, run["n_ctx"].get<int64_t>(), e.tokenizer()->bos_id());
    ASSERT_TRUE(res.ok()) << res.status().message();
    EXPECT_EQ(res->n_windows, run["n_chunks"].get<int64_t>());
    // f32 KV here; llama.cpp's f32-KV value is recorded alongside. Relative 1e-3 (README).
    const double want = run["ppl_with_f32_kv_cache"].get<double>();
    EXPECT_NEAR(res->ppl, want, 1e-3 * want);
    auto running = run["running_ppl_after_chunk"].get<std::vector<double>>();
    for (size_t i = 0; i < running.size(); ++i) EXPECT_NEAR(res->running_ppl[i], running[i], 2e-3 * running[i]) << i;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

}  // namespace
}  // namespace spool
