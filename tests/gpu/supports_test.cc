// LlamaDecoder::Supports is complete (label malformed): every ModelConfig feature the GPU
// decoder's skeleton does not compute is refused with kUnsupported naming its config
// field, on the real fixtures of every architecture (each feature it has, listed at once)
// and on a dense Llama config with one feature switched on at a time; the architectures
// the decoder runs are accepted; `--device auto` falls back to the CPU naming the reason.
// The config part needs no device; the engine part skips without one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "formats/model_source.h"
#include "gpu/llama_decoder.h"
#include "gpu_test_util.h"
#include "models/config.h"
#include "runtime/engine.h"

namespace spool::gpu {
namespace {

const std::string kFix = SPOOL_TEST_FIXTURES;

models::ModelConfig Config(const std::string& path) {
  auto src = formats::OpenModelSource(path);
  SPOOL_CHECK_MSG(src.ok(), src.status().message().c_str());
  auto c = models::ReadModelConfig(*src);
  SPOOL_CHECK_MSG(c.ok(), c.status().message().c_str());
  return *c;
}

LlamaDecoderOptions Options() {
  LlamaDecoderOptions o;
  o.ctx = 64;
  return o;
}

struct Case {
  std::string path;                 // under tests/fixtures
  std::vector<std::string> named;   // every feature the message must name; empty: accepted
};

TEST(GpuSupports, FixturesOfEveryArchitecture) {
  const std::vector<Case> cases = {
      {"models/llama-mha-f32", {}},
      {"models/llama-gqa-tied-bf16", {}},
      {"models/llama3-scaled-sharded-bf16", {}},
      {"models/mistral-gqa-f16", {}},
      {"models/qwen2-bias-tied-f32", {}},
      {"models/qwen3-qknorm-bf16", {}},
      {"converted/qwen3-qknorm-bf16.gguf", {}},
      {"models/gemma2-softcap-f32",
       {"sandwich_norms", "ffn_act: tanh GELU", "final_softcap", "embd_scale"}},
      {"models/gemma3-swa-bf16", {"sandwich_norms", "ffn_act: tanh GELU", "embd_scale"}},
      {"converted/gemma2-softcap-f32.gguf", {"sandwich_norms", "final_softcap", "embd_scale"}},
      {"models/mixtral-bf16", {"mixture of experts (2 of 2 layers' ffn is moe)"}},
      {"models/qwen2-moe-shared-f32", {"mixture of experts"}},
      {"models/qwen3-moe-f32", {"mixture of experts"}},
      {"models/olmoe-mha-f32", {"qk_norm_full", "mixture of experts"}},
      {"gptoss/gptoss-h64-mxfp4",
       {"o_bias", "ffn_act: swiglu_oai", "attn_sinks", "mixture of experts"}},
      {"models/qwen3next-f32", {"attn_output_gate", "linear_attention", "mixture of experts"}},
      {"models/qwen35-f32", {"attn_output_gate", "linear_attention"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    const models::ModelConfig cfg = Config(kFix + "/" + c.path);
    Status s = LlamaDecoder::Supports(cfg, Options());
    if (c.named.empty()) {
      EXPECT_TRUE(s.ok()) << s.message();
      continue;
    }
    ASSERT_EQ(s.code(), ErrorCode::kUnsupported) << s.message();
    for (const std::string& n : c.named) EXPECT_NE(s.message().find(n), std::string::npos) << n << " in: " << s.message();
    EXPECT_NE(s.message().find("not supported on the GPU yet"), std::string::npos) << s.message();
  }
}

// One feature at a time on a config the decoder runs: each is refused by its own name.
TEST(GpuSupports, EachFeatureAloneIsRefusedByName) {
  const models::ModelConfig base = Config(kFix + "/models/llama-mha-f32");
  ASSERT_TRUE(LlamaDecoder::Supports(base, Options()).ok());
  struct Flip {
    const char* named;
    void (*set)(models::ModelConfig&);
  };
  const Flip flips[] = {
      {"sandwich_norms", [](models::ModelConfig& c) { c.sandwich_norms = true; }},
      {"ffn_act: tanh GELU", [](models::ModelConfig& c) { c.ffn_act = models::FfnAct::kGeluTanh; }},
      {"ffn_act: swiglu_oai", [](models::ModelConfig& c) { c.ffn_act = models::FfnAct::kSwiGluOai; }},
      {"final_softcap", [](models::ModelConfig& c) { c.final_softcap = 30.0f; }},
      {"embd_scale", [](models::ModelConfig& c) { c.embd_scale = 8.0f; }},
      {"attn_sinks", [](models::ModelConfig& c) { c.attn_sinks = true; }},
      {"ggml_numerics", [](models::ModelConfig& c) { c.ggml_numerics = true; }},
      {"head_dim 320 > 256", [](models::ModelConfig& c) { c.head_dim = 320; }},
      {"qk_norm_full", [](models::ModelConfig& c) { c.qk_norm = c.qk_norm_full = true; }},
      {"attn_output_gate", [](models::ModelConfig& c) { c.attn_output_gate = true; }},
      {"o_bias", [](models::ModelConfig& c) { c.o_bias = true; }},
      {"1 of 3 layers' ffn is moe", [](models::ModelConfig& c) { c.layers[1].ffn = models::FfnKind::kMoe; }},
      {"1 of 3 layers' mixer is linear_attention",
       [](models::ModelConfig& c) { c.layers[0].mixer = models::MixerKind::kLinearAttention; }},
  };
  ASSERT_EQ(base.n_layer, 3);
  for (const Flip& f : flips) {
    SCOPED_TRACE(f.named);
    models::ModelConfig c = base;
    f.set(c);
    Status s = LlamaDecoder::Supports(c, Options());
    ASSERT_EQ(s.code(), ErrorCode::kUnsupported) << s.message();
    EXPECT_NE(s.message().find(f.named), std::string::npos) << s.message();
  }
  // Implemented variants stay accepted: sliding windows, score soft-capping, a score
  // scale, partial RoPE, QKV bias, per-head q/k norm, norm_plus_one (applied at load).
  models::ModelConfig c = base;
  c.layers[0].mixer = models::MixerKind::kSlidingAttention;
  c.layers[0].window = 8;
  c.attn_softcap = 50.0f;
  c.attn_scale = 0.25f;
  c.rope_dim = c.head_dim / 2;
  c.qkv_bias = c.qk_norm = c.norm_plus_one = true;
  EXPECT_TRUE(LlamaDecoder::Supports(c, Options()).ok());
  // Options: a KV type the attention kernel lacks.
  LlamaDecoderOptions o = Options();
  o.kv_dtype = DType::kQ8_0;
  EXPECT_EQ(LlamaDecoder::Supports(base, o).code(), ErrorCode::kUnsupported);
}

// --device auto on models the GPU does not run: the CPU, with the reason in the note.
TEST(GpuSupports, AutoFallsBackToTheCpuNamingTheFeature) {
  GPU_TEST_DEVICE(dev);
  ::setenv("SPOOL_DEVICE_AUTO_CPU_VULKAN", "1", 1);
  for (const auto& [path, named] : std::vector<std::pair<std::string, std::string>>{
           {"models/qwen3-moe-f32", "mixture of experts"},
           {"models/qwen35-f32", "linear_attention"},
           {"models/gemma3-swa-bf16", "embd_scale"}}) {
    SCOPED_TRACE(path);
    runtime::EngineOptions o;
    o.threads = 1;
    o.ctx = 32;
    o.load_tokenizer = false;
    o.device.kind = DeviceSpec::Kind::kAuto;
    auto e = runtime::Engine::Open(kFix + "/" + path, o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    EXPECT_EQ((*e)->device_name(), "cpu");
    EXPECT_NE((*e)->device_note().find(named), std::string::npos) << (*e)->device_note();
    EXPECT_NE((*e)->device_note().find("using the CPU"), std::string::npos) << (*e)->device_note();
    o.device.kind = DeviceSpec::Kind::kVulkan;
    auto v = runtime::Engine::Open(kFix + "/" + path, o);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), ErrorCode::kUnsupported);
    EXPECT_NE(v.status().message().find(named), std::string::npos) << v.status().message();
  }
  ::unsetenv("SPOOL_DEVICE_AUTO_CPU_VULKAN");
}

}  // namespace
}  // namespace spool::gpu
