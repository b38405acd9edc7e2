// Qwen3.5 / Qwen3.5-MoE (issue 15): Qwen3-Next's layers with Qwen3.5's checkpoints —
// the rows `qwen35` and `qwen35moe` of the architecture table, their multimodal
// checkpoints' text model, and llama.cpp's GGUF conversions (tiled value heads, separate
// ssm_beta / ssm_alpha, rope.dimension_sections).
//
// Logits parity with transformers 5.25.0 is hf_parity_test (qwen35-f32, qwen35-mm-f32 in
// tests/fixtures/models/index.json; the qwen35moe fixture is not committed yet: prompt logits on the prefill and
// decode paths, sequence logits over 80 positions, greedy ids, prefill in chunks of 3).
// Here: what the config reader makes of them, the dense GGUF conversion against
// transformers and spool's own run of the HF folder, and
// malformed checkpoints refused naming the tensor, field or key.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "edited_fixture.h"
#include "formats/gguf.h"
#include "gguf_rewrite.h"
#include "logits_helpers.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool {
namespace {

const std::string kModels = std::string(SPOOL_TEST_FIXTURES) + "/models";
const std::string kGgufDir = std::string(SPOOL_TEST_FIXTURES) + "/qwen35";
const std::string kDenseGguf = kGgufDir + "/qwen35-f32.gguf";

// Bounds, |Δ| / (1 + |logit|) over every position (measured values printed by the tests):
//  - GGUF vs its HF folder through spool: the same kernels; only −exp(A_log) (torch's exp
//    in the converter vs std::exp) can differ by an ulp;
//  - vs transformers / llama.cpp: f32 summation orders (and llama.cpp's l2 norm), as
//    qwen3next_gguf_test.
constexpr double kSameModelBound = 1e-5;
constexpr double kTransformersBound = 2e-4;

nlohmann::json Load(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

runtime::EngineOptions Options(int64_t chunk = 512) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.ctx = 256;
  o.kv_dtype = DType::kF32;
  o.kv_page_tokens = 16;
  o.prefill_chunk = chunk;
  o.load_tokenizer = false;
  return o;
}

std::unique_ptr<runtime::Engine> Open(const std::string& path, int64_t chunk = 512) {
  auto e = runtime::Engine::Open(path, Options(chunk));
  EXPECT_TRUE(e.ok()) << e.status().message();
  return e.ok() ? std::move(*e) : nullptr;
}

using testing_logits::DecodeAll;
using testing_logits::Greedy;
using testing_logits::PrefillAll;
using testing_logits::Worst;

// --- HF checkpoints ------------------------------------------------------------------

TEST(Qwen35, DenseRowDescribesTheHybridLayers) {
  auto e = Open(kModels + "/qwen35-f32");
  ASSERT_TRUE(e);
  const models::ModelConfig& c = e->config();
  EXPECT_EQ(c.arch, "qwen35");
  EXPECT_EQ(c.n_linear_layers(), 3);
  EXPECT_EQ(c.kv_layer(3), 0);
  EXPECT_TRUE(c.linear.ungrouped);
  EXPECT_FALSE(c.linear.v_heads_tiled);
  EXPECT_EQ(c.linear.v_head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);  // head_dim 16 × partial_rotary_factor 0.5
  EXPECT_TRUE(c.attn_output_gate);
  EXPECT_TRUE(c.norm_plus_one);
  EXPECT_FALSE(c.has_moe());  // a dense SwiGLU MLP in every layer
  EXPECT_EQ(c.n_ff, 48);
}

// Qwen3_5ForConditionalGeneration: its text model runs; the vision tower is not read.
TEST(Qwen35, MultimodalCheckpointRunsItsTextModel) {
  const std::string dir = kModels + "/qwen35-mm-f32";
  ASSERT_EQ(Load(dir + "/config.json")["architectures"][0], "Qwen3_5ForConditionalGeneration");
  auto e = Open(dir);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->config().arch, "qwen35");
  EXPECT_EQ(e->config().hf_class, "Qwen3_5ForCausalLM");
  EXPECT_TRUE(e->config().tied_embeddings);
}

// A copy of fixture `name` whose model.safetensors header is rewritten by `edit` (the data
// bytes stay: dropping an entry or reshaping one to the same byte count keeps the file valid).
std::string EditedSafetensors(const std::string& name, const std::string& tag,
                              const std::function<void(nlohmann::ordered_json&)>& edit) {
  const std::string dir = testing::EditedFixture(name, "q35st_" + tag, [](nlohmann::ordered_json&) {});
  const std::string path = dir + "/model.safetensors";
  std::ifstream in(path, std::ios::binary);
  std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  auto header = nlohmann::ordered_json::parse(file.substr(8, n));
  edit(header);
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  const uint64_t hn = h.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&hn), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  out.write(file.data() + 8 + n, static_cast<std::streamsize>(file.size() - 8 - n));
  return dir;
}

TEST(Qwen35Malformed, MissingOrMisshapedTensorsAreNamed) {
  struct Case {
    const char* tag;
    const char* fixture;
    std::function<void(nlohmann::ordered_json&)> edit;
    const char* want;
  };
  const Case cases[] = {
      {"no_b", "qwen35-f32", [](auto& h) { h.erase("model.layers.1.linear_attn.in_proj_b.weight"); },
       "missing tensor 'model.layers.1.linear_attn.in_proj_b.weight'"},
      {"no_qkv", "qwen35-f32", [](auto& h) { h.erase("model.layers.0.linear_attn.in_proj_qkv.weight"); },
       "missing tensor 'model.layers.0.linear_attn.in_proj_qkv.weight'"},
      {"a_shape", "qwen35-f32", [](auto& h) { h["model.layers.2.linear_attn.in_proj_a.weight"]["shape"] = {2, 128}; },
       "tensor 'model.layers.2.linear_attn.in_proj_a.weight' has shape [2, 128], expected [4, 64]"},
      {"z_shape", "qwen35-f32", [](auto& h) { h["model.layers.0.linear_attn.in_proj_z.weight"]["shape"] = {64, 32}; },
       "tensor 'model.layers.0.linear_attn.in_proj_z.weight' has shape [64, 32], expected [32, 64]"},
      {"mm_text", "qwen35-mm-f32",
       [](auto& h) {
         for (auto it = h.begin(); it != h.end();)
           it = it.key().rfind("model.language_model.", 0) == 0 ? h.erase(it) : std::next(it);
       },
       "without text-model tensors"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tag);
    const std::string dir = EditedSafetensors(c.fixture, c.tag, c.edit);
    auto e = runtime::Engine::Open(dir, Options());
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find(c.want), std::string::npos) << e.status().message();
    std::filesystem::remove_all(dir);
  }
}

TEST(Qwen35Malformed, BadConfigsAreRefused) {
  struct Case {
    const char* tag;
    const char* fixture;
    std::function<void(nlohmann::ordered_json&)> edit;
    const char* want;
  };
  const Case cases[] = {
      {"sec_sum", "qwen35-f32", [](auto& j) { j["rope_parameters"]["mrope_section"] = {2, 2, 1}; },
       "mrope_section [2, 2, 1] sums to 5, expected rotated dims / 2 = 4"},
      {"sec_len", "qwen35-f32", [](auto& j) { j["rope_parameters"]["mrope_section"] = {2, 2}; },
       "mrope_section must be an array of 3 integers"},
      {"sec_neg", "qwen35-f32", [](auto& j) { j["rope_parameters"]["mrope_section"] = {5, -1, 0}; },
       "must hold non-negative integers"},
      {"sec_default", "qwen35-f32", [](auto& j) { j["rope_parameters"].erase("mrope_section"); },
       "[11, 11, 10] sums to 32, expected rotated dims / 2 = 4"},
      {"interleaved", "qwen35-f32", [](auto& j) { j["rope_parameters"]["mrope_interleaved"] = "yes"; },
       "mrope_interleaved must be a boolean"},
      {"types", "qwen35-f32", [](auto& j) { j["layer_types"][0] = "sliding_attention"; }, "layer_types[0]"},
      {"v_heads", "qwen35-f32", [](auto& j) { j["linear_num_value_heads"] = 3; }, "multiple of key heads"},
      {"dense_ff", "qwen35-f32", [](auto& j) { j.erase("intermediate_size"); }, "missing field 'intermediate_size'"},
      {"mm_text_config", "qwen35-mm-f32", [](auto& j) { j.erase("text_config"); },
       "Qwen3_5ForConditionalGeneration without a 'text_config' object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tag);
    const std::string dir = testing::EditedFixture(c.fixture, std::string("q35_") + c.tag, c.edit);
    auto e = runtime::Engine::Open(dir, Options());
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find(c.want), std::string::npos) << e.status().message();
    std::filesystem::remove_all(dir);
  }
}

// --- GGUF (llama.cpp's qwen35 / qwen35moe; tools/gen_qwen35_gguf_fixtures.py) --------

TEST(Qwen35Gguf, ConfigEqualsTheHfFolders) {
  for (const char* name : {"qwen35-f32"}) {
    SCOPED_TRACE(name);
    auto g = Open(kGgufDir + "/" + name + ".gguf"), h = Open(kModels + "/" + name);
    ASSERT_TRUE(g && h);
    const models::ModelConfig &a = g->config(), &b = h->config();
    EXPECT_EQ(a.arch, b.arch);
    EXPECT_TRUE(a.linear.ungrouped);
    EXPECT_TRUE(a.linear.v_heads_tiled);  // the converter's _reorder_v_heads
    EXPECT_EQ(a.linear.n_v_heads, b.linear.n_v_heads);
    EXPECT_EQ(a.linear.v_head_dim, b.linear.v_head_dim);
    EXPECT_EQ(a.rope_dim, b.rope_dim);
    EXPECT_EQ(a.n_linear_layers(), b.n_linear_layers());
    EXPECT_EQ(a.has_moe(), b.has_moe());
    EXPECT_EQ(a.moe.norm_topk_prob, b.moe.norm_topk_prob);
    EXPECT_EQ(a.moe.n_ff_shared, b.moe.n_ff_shared);
  }
}

// The tiled value-head order and every converter transform, read back exactly: the GGUF
// gives the HF folder's logits (prefill and decode path) through spool.
TEST(Qwen35Gguf, GgufEqualsTheHfFolderThroughSpool) {
  for (const char* name : {"qwen35-f32"}) {
    SCOPED_TRACE(name);
    const auto ids = Load(kModels + "/" + name + "/reference.json")["sequence_ids"].get<std::vector<int32_t>>();
    auto g = Open(kGgufDir + "/" + name + ".gguf"), h = Open(kModels + "/" + name);
    ASSERT_TRUE(g && h);
    const double pre = Worst(PrefillAll(*g, ids), PrefillAll(*h, ids));
    const double dec = Worst(DecodeAll(*g, ids), DecodeAll(*h, ids));
    std::printf("%s GGUF vs its HF folder (spool both): prefill %.3g, decode path %.3g (bound %.0e)\n", name, pre, dec,
                kSameModelBound);
    EXPECT_LT(pre, kSameModelBound);
    EXPECT_LT(dec, kSameModelBound);
  }
}

TEST(Qwen35Gguf, MatchesTransformers) {
  for (const char* name : {"qwen35-f32"}) {
    SCOPED_TRACE(name);
    const auto ref = Load(kModels + "/" + name + "/reference.json");
    const auto ids = ref["sequence_ids"].get<std::vector<int32_t>>();
    const auto want = ref["sequence_logits"].get<std::vector<std::vector<float>>>();
    auto e = Open(kGgufDir + "/" + name + ".gguf");
    ASSERT_TRUE(e);
    const int64_t V = e->n_vocab();
    const double pre = Worst(PrefillAll(*e, ids), want, V);
    const double dec = Worst(DecodeAll(*e, ids), want, V);
    std::printf("%s GGUF vs transformers over %zu positions: prefill %.3g, decode path %.3g (bound %.0e)\n", name,
                ids.size(), pre, dec, kTransformersBound);
    EXPECT_LT(pre, kTransformersBound);
    EXPECT_LT(dec, kTransformersBound);
    const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
    const auto greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Greedy(*e, prompt, static_cast<int64_t>(greedy.size())), greedy);
    auto chunked = Open(kGgufDir + "/" + name + ".gguf", 7);  // prefill in steps of 7 tokens
    ASSERT_TRUE(chunked);
    EXPECT_EQ(Greedy(*chunked, prompt, static_cast<int64_t>(greedy.size())), greedy) << "prefill chunks of 7";
  }
}

formats::GgufValue Sections(std::vector<int64_t> v) {
  formats::GgufValue x;
  x.type = formats::GgufType::kArray;
  x.array_type = formats::GgufType::kI32;
  for (int64_t s : v) {
    formats::GgufValue e;
    e.type = formats::GgufType::kI32;
    e.scalar = s;
    x.array.push_back(e);
  }
  return x;
}

TEST(Qwen35GgufMalformed, ConversionsAreRefusedNamingTheTensorOrKey) {
  const std::string sec_key = "qwen35.rope.dimension_sections";
  auto keep = [](const std::string&, formats::GgufValue&) { return true; };
  auto none = [](const std::string&) { return false; };
  struct Case {
    const char* tag;
    std::function<bool(const std::string&, formats::GgufValue&)> edit;
    std::vector<std::pair<std::string, formats::GgufValue>> extra;
    std::function<bool(const std::string&)> drop;
    std::vector<testing::NewTensor> add;
    const char* want;
  };
  const std::vector<float> zeros(64 * 2, 0.0f);
  std::vector<uint8_t> bytes(zeros.size() * 4);
  std::memcpy(bytes.data(), zeros.data(), bytes.size());
  const Case cases[] = {
      {"no_beta", keep, {}, [](const std::string& n) { return n == "blk.1.ssm_beta.weight"; }, {},
       "missing tensor 'blk.1.ssm_beta.weight'"},
      {"alpha_shape", keep, {}, [](const std::string& n) { return n == "blk.0.ssm_alpha.weight"; },
       {{"blk.0.ssm_alpha.weight", {2, 64}, bytes}},
       "tensor 'blk.0.ssm_alpha.weight' has shape [2, 64], expected [4, 64]"},
      {"no_sections", [&](const std::string& k, formats::GgufValue&) { return k != sec_key; }, {}, none, {},
       "missing key 'qwen35.rope.dimension_sections'"},
      {"sec_len", [&](const std::string& k, formats::GgufValue& v) { if (k == sec_key) v = Sections({2, 1, 1}); return true; },
       {}, none, {}, "must be an array of 4 integers, got 3 values"},
      {"sec_sum", [&](const std::string& k, formats::GgufValue& v) { if (k == sec_key) v = Sections({4, 1, 1, 0}); return true; },
       {}, none, {}, "sums to 6, expected 1 to rope.dimension_count / 2 (4)"},
      {"sec_4th", [&](const std::string& k, formats::GgufValue& v) { if (k == sec_key) v = Sections({1, 1, 1, 1}); return true; },
       {}, none, {}, "rotated pair 3 takes llama.cpp's 4th M-RoPE position"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tag);
    const std::string path = testing::RewriteGguf(kDenseGguf, std::string("q35-") + c.tag, c.edit, c.extra, c.drop, c.add);
    auto e = runtime::Engine::Open(path, Options());
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find(c.want), std::string::npos) << e.status().message();
    std::filesystem::remove(path);
  }
}

}  // namespace
}  // namespace spool
