// Shared checks for fixtures made by llama.cpp's own converter (tools/gen_rope_freqs_fixture.py,
// tools/gen_yarn_fixture.py): a directory holding an HF folder `hf/` with transformers'
// reference.json, GGUF conversions of it, and llamacpp_refs.json with llama-cpp-python's
// prompt logits and greedy ids for each GGUF.
//   - llama.cpp: greedy ids identical; prompt logits bit-identical where `exact` (Q8_0 with
//     --numerics ggml), else within kRelTol · (1 + |logit|) (llama.cpp's f32 GEMM order is
//     not replicated);
//   - transformers: the same bound and the same greedy ids, on the GGUF and the HF folder.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "logits_helpers.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool::testing_converted {

constexpr double kRelTol = 2e-4;  // |a - b| / (1 + |b|), summation order only

struct ConvertedFixture {
  std::string dir;         // tests/fixtures/<name>
  int64_t ctx = 256;       // engine context (at most the model's maximum)
  size_t min_prompt = 0;   // each case's prompt must be longer (e.g. past yarn's original context)
  std::string hf() const { return dir + "/hf"; }
};

inline nlohmann::json LoadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

inline runtime::EngineOptions Options(const ConvertedFixture& fx, bool ggml) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.ctx = fx.ctx;
  o.kv_dtype = DType::kF32;
  o.ggml_numerics = ggml;
  o.kv_page_tokens = 16;  // several pages even for short prompts
  return o;
}

// Largest |got - want| (absolute, or relative to 1 + |want|) over all prompt positions.
// got: [positions, vocab] row-major; want: one row per position.
inline double WorstDiff(const std::vector<float>& got, const std::vector<std::vector<float>>& want, bool relative) {
  double worst = 0;
  const size_t V = want.at(0).size();
  for (size_t t = 0; t < want.size(); ++t)
    for (size_t v = 0; v < V; ++v) {
      const double d = std::abs(static_cast<double>(got[t * V + v]) - want[t][v]);
      worst = std::max(worst, relative ? d / (1 + std::abs(want[t][v])) : d);
    }
  return worst;
}

// Logits of every prompt position ([prompt.size(), n_vocab]) and n greedy tokens (EOS does
// not stop them: neither reference stops at EOS): the shared helpers of logits_helpers.h.
inline std::vector<float> PromptLogits(runtime::Engine& e, const std::vector<int32_t>& prompt) {
  return testing_logits::PrefillAll(e, prompt);
}
using testing_logits::Greedy;

// How close spool must come to llama.cpp. rel_tol bounds |Δlogit| / (1 + |logit|);
// tie_margin > 0 lets the greedy path branch at a step where llama.cpp's best-vs-second
// margin is below it (ids must be identical before that, and at every step with a larger
// margin), for arithmetic that differs by more than summation order: llama.cpp rounds
// activations to f16/bf16 for f16/bf16 weights and requantises them to Q8 for quantised
// weights, where one ulp upstream can flip a rounding (spool's default numerics).
struct LlamaCppBounds {
  double rel_tol = kRelTol;
  double tie_margin = 0;
};

// model: a GGUF file name in llamacpp_refs.json; ggml: --numerics ggml; exact: logits
// bit-identical (else within bounds.rel_tol).
inline void CheckAgainstLlamaCpp(const ConvertedFixture& fx, const std::string& model, bool ggml, bool exact,
                                 const LlamaCppBounds& bounds = {}) {
  auto ref = LoadJson(fx.dir + "/llamacpp_refs.json")["models"][model];
  auto engine = runtime::Engine::Open(fx.dir + "/" + model, Options(fx, ggml));
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto& e = **engine;
  ASSERT_NE(e.tokenizer(), nullptr);
  ASSERT_FALSE(ref["cases"].empty());
  for (auto& c : ref["cases"]) {
    SCOPED_TRACE(c["prompt"].get<std::string>());
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    ASSERT_GT(prompt.size(), fx.min_prompt);
    auto ids = e.tokenizer()->Encode(c["prompt"].get<std::string>(), /*add_bos=*/true, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(*ids, prompt);
    const auto want_logits = c["prompt_logits"].get<std::vector<std::vector<float>>>();
    ASSERT_EQ(want_logits.at(0).size(), static_cast<size_t>(e.n_vocab()));
    const auto logits = PromptLogits(e, prompt);
    const double abs_diff = WorstDiff(logits, want_logits, false), rel_diff = WorstDiff(logits, want_logits, true);
    std::printf("  %s, %s numerics: largest logit difference to llama.cpp %.3g (relative %.3g)\n", model.c_str(),
                ggml ? "ggml" : "default", abs_diff, rel_diff);
    if (exact) EXPECT_EQ(abs_diff, 0.0) << "largest absolute logit difference";
    else EXPECT_LE(rel_diff, bounds.rel_tol) << "largest relative logit difference";
    const auto want = c["generated_ids"].get<std::vector<int32_t>>();
    const auto got = Greedy(e, prompt, static_cast<int64_t>(want.size()));
    if (bounds.tie_margin <= 0) {
      EXPECT_EQ(got, want);
      continue;
    }
    const auto margins = c["greedy_margins"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size());
    size_t same = 0;
    for (; same < want.size() && got[same] == want[same]; ++same) {
    }
    if (same < want.size())
      EXPECT_LT(margins.at(same), bounds.tie_margin)
          << "greedy ids differ at step " << same << " where llama.cpp's margin is " << margins.at(same);
    std::printf("  %s: identical greedy ids: %zu of %zu\n", model.c_str(), same, want.size());
  }
}

// Each of `paths` (a GGUF and the HF folder) against transformers' reference.json.
inline void CheckAgainstTransformers(const ConvertedFixture& fx, const std::vector<std::string>& paths) {
  auto ref = LoadJson(fx.hf() + "/reference.json");
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    auto engine = runtime::Engine::Open(path, Options(fx, false));
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

}  // namespace spool::testing_converted
