// Model config validation: malformed or unsupported configs give clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>

#include "formats/model_source.h"
#include "models/config.h"
#include "models/weights.h"
#include "edited_fixture.h"

namespace spool {
namespace {

namespace fs = std::filesystem;

// Copies llama-mha-f32 and rewrites its config.json with `edit` applied.
std::string EditedModel(const std::string& name, const std::function<void(nlohmann::ordered_json&)>& edit) {
  return testing::EditedFixture("llama-mha-f32", "cfg_" + name, edit);
}

Status LoadStatus(const std::string& dir) {
  auto src = formats::OpenModelSource(dir);
  if (!src.ok()) return src.status();
  auto w = models::ModelWeights::Load(std::move(*src));
  return w.ok() ? Status::Ok() : w.status();
}

TEST(ModelConfig, FixtureLoads) {
  auto d = EditedModel("ok", [](auto&) {});
  EXPECT_TRUE(LoadStatus(d).ok()) << LoadStatus(d).message();
}

TEST(ModelConfig, UnknownArchitecture) {
  auto d = EditedModel("arch", [](auto& j) { j["architectures"] = {"GPTNeoXForCausalLM"}; });
  Status st = LoadStatus(d);
  EXPECT_EQ(st.code(), ErrorCode::kUnsupported);
  EXPECT_NE(st.message().find("GPTNeoXForCausalLM"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("supported"), std::string::npos);
}

TEST(ModelConfig, MissingField) {
  auto d = EditedModel("missing", [](auto& j) { j.erase("hidden_size"); });
  Status st = LoadStatus(d);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidFile);
  EXPECT_NE(st.message().find("hidden_size"), std::string::npos) << st.message();
}

TEST(ModelConfig, WrongType) {
  auto d = EditedModel("type", [](auto& j) { j["num_hidden_layers"] = "three"; });
  EXPECT_EQ(LoadStatus(d).code(), ErrorCode::kInvalidFile);
}

TEST(ModelConfig, HeadsNotDividing) {
  auto d = EditedModel("heads", [](auto& j) { j["num_key_value_heads"] = 3; });
  Status st = LoadStatus(d);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidFile);
}

TEST(ModelConfig, AbsurdSizes) {
  auto d = EditedModel("absurd", [](auto& j) { j["num_hidden_layers"] = 1000000; });
  EXPECT_EQ(LoadStatus(d).code(), ErrorCode::kInvalidFile);
}

TEST(ModelConfig, ShapeMismatchNamesTensor) {
  auto d = EditedModel("shape", [](auto& j) { j["intermediate_size"] = 100; });
  Status st = LoadStatus(d);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidFile);
  EXPECT_NE(st.message().find("mlp"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("expected"), std::string::npos) << st.message();
}

TEST(ModelConfig, MoreLayersThanTensors) {
  auto d = EditedModel("layers", [](auto& j) { j["num_hidden_layers"] = 5; });
  Status st = LoadStatus(d);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidFile);
  EXPECT_NE(st.message().find("missing tensor"), std::string::npos) << st.message();
}

TEST(ModelConfig, UnsupportedRopeScaling) {
  auto d = EditedModel("rope", [](auto& j) { j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 4.0}}; });
  EXPECT_EQ(LoadStatus(d).code(), ErrorCode::kUnsupported);
}

// transformers' yarn fields: defaults resolved as _compute_yarn_parameters does.
Result<models::ModelConfig> YarnConfig(const nlohmann::ordered_json& rope_scaling, const std::string& name) {
  auto d = EditedModel("yarn_" + name, [&](auto& j) {
    j["max_position_embeddings"] = 128;
    j["rope_scaling"] = rope_scaling;
  });
  auto src = formats::OpenModelSource(d);
  if (!src.ok()) return src.status();
  return models::ReadModelConfig(*src);
}

TEST(ModelConfig, YarnDefaults) {
  auto r = YarnConfig({{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32}}, "defaults");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kYarn);
  EXPECT_EQ(r->rope_scaling.factor, 4.0f);
  EXPECT_EQ(r->rope_scaling.original_max_position, 32);
  EXPECT_EQ(r->rope_scaling.beta_fast, 32.0f);
  EXPECT_EQ(r->rope_scaling.beta_slow, 1.0f);
  EXPECT_TRUE(r->rope_scaling.truncate);
  EXPECT_FLOAT_EQ(r->rope_scaling.attention_factor, static_cast<float>(0.1 * std::log(4.0) + 1));
  // No factor: max_position_embeddings / original; the old "type" key; no original: the max.
  r = YarnConfig({{"type", "yarn"}, {"original_max_position_embeddings", 64}}, "implicit");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.factor, 2.0f);
  r = YarnConfig({{"rope_type", "yarn"}, {"factor", 4.0}}, "noorig");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.original_max_position, 128);
  // Explicit attention_factor wins; else mscale / mscale_all_dim when both are set.
  r = YarnConfig({{"rope_type", "yarn"}, {"factor", 4.0}, {"attention_factor", 0.75}, {"truncate", false}}, "attn");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.attention_factor, 0.75f);
  EXPECT_FALSE(r->rope_scaling.truncate);
  r = YarnConfig({{"rope_type", "yarn"}, {"factor", 4.0}, {"mscale", 0.5}, {"mscale_all_dim", 1.0}}, "mscale");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FLOAT_EQ(r->rope_scaling.attention_factor,
                  static_cast<float>((0.05 * std::log(4.0) + 1) / (0.1 * std::log(4.0) + 1)));
}

TEST(ModelConfig, MalformedYarnRefused) {
  struct Case {
    const char* name;
    nlohmann::ordered_json rope_scaling;
    const char* field;
  } cases[] = {
      {"factor0", {{"rope_type", "yarn"}, {"factor", 0.0}, {"original_max_position_embeddings", 32}}, "factor"},
      {"factorneg", {{"rope_type", "yarn"}, {"factor", -4.0}, {"original_max_position_embeddings", 32}}, "factor"},
      // (JSON has no NaN: Python writes `NaN`, which the JSON parser refuses; a string here.)
      {"factorstr", {{"rope_type", "yarn"}, {"factor", "four"}, {"original_max_position_embeddings", 32}}, "factor"},
      {"orig0", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 0}}, "original_max_position_embeddings"},
      {"orighuge", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 1 << 30}}, "original_max_position_embeddings"},
      {"origfloat", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32.5}}, "original_max_position_embeddings"},
      {"betas", {{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", 1.0}, {"beta_slow", 32.0}}, "beta_fast"},
      {"betaneg", {{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_slow", -1.0}}, "beta_slow"},
      {"attn", {{"rope_type", "yarn"}, {"factor", 4.0}, {"attention_factor", -1.0}}, "attention_factor"},
      {"truncate", {{"rope_type", "yarn"}, {"factor", 4.0}, {"truncate", "yes"}}, "truncate"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = YarnConfig(c.rope_scaling, c.name);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidFile) << r.status().message();
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace spool
