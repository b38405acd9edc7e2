// Model config validation: malformed or unsupported configs give clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats/model_source.h"
#include "models/config.h"
#include "models/weights.h"

namespace spool {
namespace {

namespace fs = std::filesystem;

// Copies a fixture model folder and rewrites its config.json with `edit` applied.
std::string EditedModel(const std::string& name, const std::function<void(nlohmann::ordered_json&)>& edit) {
  fs::path src = fs::path(SPOOL_TEST_FIXTURES) / "models" / "llama-mha-f32";
  fs::path dst = fs::temp_directory_path() / ("spool_cfg_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (auto& e : fs::directory_iterator(src)) fs::copy(e.path(), dst / e.path().filename());
  std::ifstream f(dst / "config.json");
  auto j = nlohmann::ordered_json::parse(f);
  edit(j);
  std::ofstream(dst / "config.json") << j.dump();
  return dst.string();
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
  auto d = EditedModel("rope", [](auto& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; });
  EXPECT_EQ(LoadStatus(d).code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace spool
