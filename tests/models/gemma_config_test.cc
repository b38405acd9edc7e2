// Gemma 2/3 and sliding-window configs: what config.json says becomes per-layer specs
// (window, RoPE), and malformed or unsupported keys are clear errors naming the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "formats/model_source.h"
#include "models/config.h"
#include "models/weights.h"
#include "edited_fixture.h"

namespace spool {
namespace {

namespace fs = std::filesystem;
using models::MixerKind;

// Copies fixture `name` and rewrites its config.json with `edit` applied.
std::string Edited(const std::string& name, const std::string& tag,
                   const std::function<void(nlohmann::ordered_json&)>& edit) {
  return testing::EditedFixture(name, "gemma_" + tag, edit);
}

Result<std::unique_ptr<models::ModelWeights>> Load(const std::string& dir) {
  auto src = formats::OpenModelSource(dir);
  if (!src.ok()) return src.status();
  return models::ModelWeights::Load(std::move(*src));
}

void ExpectError(const std::string& dir, ErrorCode code, const std::string& needle) {
  auto w = Load(dir);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), code) << w.status().message();
  EXPECT_NE(w.status().message().find(needle), std::string::npos) << w.status().message();
}

void ExpectGemma3Layers(const models::ModelConfig& c) {
  ASSERT_EQ(c.n_layer, 6);
  for (int64_t l = 0; l < 6; ++l) {
    const auto& s = c.layers[l];
    SCOPED_TRACE(l);
    if (l < 5) {
      EXPECT_EQ(s.mixer, MixerKind::kSlidingAttention);
      EXPECT_EQ(s.window, 4);
      EXPECT_EQ(s.rope_theta, 10000.0f);
      EXPECT_EQ(s.rope_scaling.kind, RopeScaling::Kind::kNone);
    } else {
      EXPECT_EQ(s.mixer, MixerKind::kAttention);
      EXPECT_EQ(s.window, 0);
      EXPECT_EQ(s.rope_theta, 1000000.0f);
      EXPECT_EQ(s.rope_scaling.kind, RopeScaling::Kind::kLinear);
      EXPECT_EQ(s.rope_scaling.factor, 8.0f);
    }
  }
}

TEST(GemmaConfig, Gemma3Fixture) {
  auto w = Load(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16");
  ASSERT_TRUE(w.ok()) << w.status().message();
  const auto& c = (*w)->config();
  EXPECT_EQ(c.arch, "gemma3");
  ExpectGemma3Layers(c);
  EXPECT_TRUE(c.sandwich_norms && c.norm_plus_one && c.qk_norm && c.tied_embeddings);
  EXPECT_EQ(c.ffn_act, models::FfnAct::kGeluTanh);
  EXPECT_EQ(c.attention_scale(), static_cast<float>(std::pow(24.0, -0.5)));
  EXPECT_EQ(c.embd_scale, 9.8125f) << "sqrt(96) rounded to bf16, the embedding's dtype";
  EXPECT_EQ(c.attn_softcap, 0.0f);
  EXPECT_EQ(c.final_softcap, 0.0f);
  EXPECT_EQ(c.kv_tokens(0, 100), 4);
  EXPECT_EQ(c.kv_tokens(5, 100), 100);
  EXPECT_EQ(c.kv_tokens(0, 3), 3);
}

// Hub checkpoints write the older keys: rope_theta, rope_local_base_freq, rope_scaling,
// sliding_window_pattern and no layer_types.
TEST(GemmaConfig, Gemma3LegacyKeys) {
  auto d = Edited("gemma3-swa-bf16", "legacy", [](auto& j) {
    j.erase("rope_parameters");
    j.erase("layer_types");
    j["rope_theta"] = 1000000.0;
    j["rope_local_base_freq"] = 10000.0;
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
    j["sliding_window_pattern"] = 6;
  });
  auto w = Load(d);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ExpectGemma3Layers((*w)->config());
}

TEST(GemmaConfig, Gemma2Defaults) {
  auto w = Load(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma2-softcap-f32");
  ASSERT_TRUE(w.ok()) << w.status().message();
  const auto& c = (*w)->config();
  EXPECT_EQ(c.attn_softcap, 2.0f);
  EXPECT_EQ(c.final_softcap, 5.0f);
  EXPECT_FALSE(c.qk_norm);
  for (int64_t l = 0; l < c.n_layer; ++l)
    EXPECT_EQ(c.layers[l].mixer, l % 2 == 0 ? MixerKind::kSlidingAttention : MixerKind::kAttention) << l;
  // Missing soft-capping keys take Gemma2Config's defaults (50, 30); null means none.
  auto d = Edited("gemma2-softcap-f32", "g2def", [](auto& j) {
    j.erase("attn_logit_softcapping");
    j["final_logit_softcapping"] = nullptr;
    j.erase("layer_types");
  });
  auto w2 = Load(d);
  ASSERT_TRUE(w2.ok()) << w2.status().message();
  EXPECT_EQ((*w2)->config().attn_softcap, 50.0f);
  EXPECT_EQ((*w2)->config().final_softcap, 0.0f);
  EXPECT_EQ((*w2)->config().layers[0].mixer, MixerKind::kSlidingAttention);
  EXPECT_EQ((*w2)->config().layers[1].mixer, MixerKind::kAttention);
}

// A window at least as long as the context is accepted: it acts as full attention
// (the mask is exact; tensor/attention_test WindowBeyondContextIsFullAttention).
TEST(GemmaConfig, WindowLongerThanContextIsAccepted) {
  auto d = Edited("gemma3-swa-bf16", "wide", [](auto& j) { j["sliding_window"] = 1 << 20; });
  auto w = Load(d);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->config().layers[0].window, 1 << 20);
  EXPECT_EQ((*w)->config().kv_tokens(0, 256), 256);
}

TEST(GemmaConfig, MalformedKeys) {
  const std::string g3 = "gemma3-swa-bf16";
  ExpectError(Edited(g3, "lt_len", [](auto& j) { j["layer_types"] = {"sliding_attention"}; }), ErrorCode::kInvalidFile,
              "layer_types");
  ExpectError(Edited(g3, "lt_val", [](auto& j) { j["layer_types"][2] = "local"; }), ErrorCode::kInvalidFile,
              "layer_types[2]");
  ExpectError(Edited(g3, "lt_type", [](auto& j) { j["layer_types"] = "sliding_attention"; }), ErrorCode::kInvalidFile,
              "layer_types");
  ExpectError(Edited(g3, "sw0", [](auto& j) { j["sliding_window"] = 0; }), ErrorCode::kInvalidFile, "sliding_window");
  ExpectError(Edited(g3, "sws", [](auto& j) { j["sliding_window"] = "4"; }), ErrorCode::kInvalidFile, "sliding_window");
  ExpectError(Edited(g3, "swnull", [](auto& j) { j["sliding_window"] = nullptr; }), ErrorCode::kInvalidFile,
              "sliding_window is null");
  ExpectError(Edited(g3, "pattern", [](auto& j) {
                j.erase("layer_types");
                j["sliding_window_pattern"] = 0;
              }),
              ErrorCode::kInvalidFile, "sliding_window_pattern");
  ExpectError(Edited(g3, "qpas", [](auto& j) { j["query_pre_attn_scalar"] = -1; }), ErrorCode::kInvalidFile,
              "query_pre_attn_scalar");
  ExpectError(Edited(g3, "cap", [](auto& j) { j["final_logit_softcapping"] = "x"; }), ErrorCode::kInvalidFile,
              "final_logit_softcapping");
  ExpectError(Edited(g3, "act", [](auto& j) { j["hidden_activation"] = "gelu"; }), ErrorCode::kUnsupported,
              "hidden_activation");
  ExpectError(Edited(g3, "yarn", [](auto& j) { j["rope_parameters"]["full_attention"]["rope_type"] = "yarn"; }),
              ErrorCode::kUnsupported, "rope_parameters.full_attention");
  ExpectError(Edited(g3, "nofactor", [](auto& j) { j["rope_parameters"]["full_attention"].erase("factor"); }),
              ErrorCode::kInvalidFile, "factor");
  ExpectError(Edited(g3, "theta", [](auto& j) { j["rope_parameters"]["sliding_attention"]["rope_theta"] = "big"; }),
              ErrorCode::kInvalidFile, "rope_parameters.sliding_attention.rope_theta");
  ExpectError(Edited(g3, "bidir", [](auto& j) { j["use_bidirectional_attention"] = true; }), ErrorCode::kUnsupported,
              "use_bidirectional_attention");
  // The multimodal class is read through its text_config and language_model tensors
  // (models/multimodal.h): without them, a clear error.
  ExpectError(Edited(g3, "mm", [](auto& j) { j["architectures"] = {"Gemma3ForConditionalGeneration"}; }),
              ErrorCode::kInvalidFile, "without a 'text_config' object");
  ExpectError(Edited(g3, "mm_array",
                     [](auto& j) {
                       j["architectures"] = {"Gemma3ForConditionalGeneration"};
                       j["text_config"] = {1, 2};
                     }),
              ErrorCode::kInvalidFile, "text_config");
  ExpectError(Edited(g3, "mm_notext",
                     [](auto& j) {
                       auto text = j;
                       j["architectures"] = {"Gemma3ForConditionalGeneration"};
                       j["text_config"] = text;
                     }),
              ErrorCode::kInvalidFile, "without text-model tensors");
}

// Mistral's sliding_window applies to every layer; null means none.
TEST(GemmaConfig, MistralSlidingWindow) {
  auto d = Edited("mistral-gqa-f16", "mistral", [](auto& j) { j["sliding_window"] = 3; });
  auto w = Load(d);
  ASSERT_TRUE(w.ok()) << w.status().message();
  for (const auto& s : (*w)->config().layers) {
    EXPECT_EQ(s.mixer, MixerKind::kSlidingAttention);
    EXPECT_EQ(s.window, 3);
  }
  ExpectError(Edited("mistral-gqa-f16", "mistral_bad", [](auto& j) { j["sliding_window"] = -3; }),
              ErrorCode::kInvalidFile, "sliding_window");
  auto none = Load(std::string(SPOOL_TEST_FIXTURES) + "/models/mistral-gqa-f16");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)->config().layers[0].mixer, MixerKind::kAttention);
}

}  // namespace
}  // namespace spool
