// Hyper-parameters of a decoder-only transformer, read from GGUF metadata or an HF
// config.json, and the table of supported architectures.
//
// Small variants are flags here (QKV bias, per-head q/k norm, tied embeddings, rope
// style and scaling), not new forward-pass code (STYLE.md: zeux/calm).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "formats/model_source.h"
#include "tensor/rope.h"  // RopeStyle, RopeScaling

namespace spool::models {


struct ModelConfig {
  std::string arch;          // "llama", "mistral", "qwen2", "qwen3"
  std::string hf_class;      // "LlamaForCausalLM", ... (informational)
  int64_t n_layer = 0;
  int64_t n_embd = 0;        // hidden size
  int64_t n_ff = 0;          // MLP intermediate size
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;      // usually n_embd / n_head (Qwen3 may differ)
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;   // the model's maximum context
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int64_t rope_dim = 0;      // dimensions rotated per head (== head_dim for these archs)
  RopeStyle rope_style = RopeStyle::kNeox;  // GGUF llama: kInterleaved
  RopeScaling rope_scaling;
  bool qkv_bias = false;     // Qwen2
  bool qk_norm = false;      // Qwen3: RMSNorm over each head's q and k before RoPE
  bool tied_embeddings = false;  // lm_head shares token_embd
  // RoPE, SwiGLU and attention round exactly as llama.cpp's CPU backend
  // (ApplyRopeGgml, SwiGLUGgml, AttentionGgml), so that greedy output matches
  // llama.cpp's token for token. Off by default (spool's own kernels: one pass over the
  // KV pages, memory flat in the context); set by EngineOptions::ggml_numerics
  // (`--numerics ggml`) for GGUF models (their llama3 scaling is the rope_freqs tensor,
  // which ApplyRopeGgml applies as ggml does; yarn goes through its GgmlYarn).
  bool ggml_numerics = false;

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
  // InvalidFile naming the first inconsistent field (zero sizes, heads not dividing, ...).
  Status Validate(const std::string& source) const;
};

// Reads the config of any supported model. Unsupported architectures → kUnsupported
// naming the architecture and listing the supported ones.
Result<ModelConfig> ReadModelConfig(const formats::ModelSource& src);

// Tensor roles of one layer / the whole model, and their names in each format.
enum class TensorRole {
  kTokenEmbd, kOutputNorm, kOutput,
  kAttnNorm, kWq, kWk, kWv, kWo, kBq, kBk, kBv, kQNorm, kKNorm,
  kFfnNorm, kWGate, kWUp, kWDown,
};
// Name of `role` for layer `layer` (ignored for whole-model roles) in the source's format.
std::string TensorName(formats::ModelSource::Kind kind, TensorRole role, int64_t layer);
const char* RoleName(TensorRole role);

}  // namespace spool::models
