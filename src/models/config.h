// Hyper-parameters of a decoder-only transformer, read from GGUF metadata or an HF
// config.json, and the table of supported architectures.
//
// Small variants are flags here (QKV bias, q/k norm, tied embeddings, rope style and
// scaling), not new forward-pass code (STYLE.md: zeux/calm). What differs between layers
// is a LayerSpec per layer: the token mixer (attention) and the feed-forward block
// (dense SwiGLU or a mixture of experts) it runs.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "formats/model_source.h"
#include "tensor/rope.h"  // RopeStyle, RopeScaling

namespace spool::models {

// The parts one decoder layer is made of: x += Mixer(norm(x)); x += Ffn(norm(x))
// (with sandwich_norms: x += norm(Mixer(norm(x))); x += norm(Ffn(norm(x))), Gemma 2/3).
//   kAttention:        causal GQA attention over every earlier position;
//   kSlidingAttention: the same over the last `window` positions only (the query's own
//                      included: key k is seen from position p when p - window < k <= p).
//   kLinearAttention:  Gated DeltaNet (Qwen3-Next; models/linear_attention.h): a causal
//                      conv and a gated delta-rule recurrence; no KV, a fixed-size
//                      recurrent state per sequence (kv/recurrent_state.h).
enum class MixerKind { kAttention, kSlidingAttention, kLinearAttention };
enum class FfnKind { kDense, kMoe };
struct LayerSpec {
  MixerKind mixer = MixerKind::kAttention;
  FfnKind ffn = FfnKind::kDense;
  int64_t window = 0;        // kSlidingAttention: positions seen (> 0); else 0
  // The layer's RoPE (Gemma 3: local layers θ 10K unscaled, global layers θ 1M, linear
  // scaling). ReadModelConfig fills every layer: the model's rope_theta/rope_scaling
  // unless the architecture gives the layer its own.
  float rope_theta = 0.0f;
  RopeScaling rope_scaling;
};

// The feed-forward activation of the dense and expert MLPs: down·(act(gate·h) ⊙ up·h).
enum class FfnAct {
  kSilu,      // SwiGLU
  kGeluTanh,  // GeGLU with the tanh GELU (transformers' gelu_pytorch_tanh; Gemma)
  kSwiGluOai, // gpt-oss: (clamp(up, ±limit) + 1) · g · sigmoid(α g), g = min(gate, limit) (SwiGLUOai)
};

// Mixture-of-experts feed-forward parameters (the layers whose LayerSpec says kMoe).
// Router: probs = softmax(h·Wrᵀ); the n_expert_used largest (ties: lower index first),
// divided by their sum when norm_topk_prob; out = Σ p_e · SwiGLU_e(h)
//   (+ sigmoid(h·wsᵀ) · SwiGLU_shared(h) when n_ff_shared > 0, Qwen2-MoE).
struct MoeSpec {
  int64_t n_expert = 0;       // experts per MoE layer
  int64_t n_expert_used = 0;  // top-k
  int64_t n_ff_expert = 0;    // each expert's intermediate size
  bool norm_topk_prob = false;
  int64_t n_ff_shared = 0;    // shared expert's intermediate size; 0: none
  // gpt-oss: the router has a bias, the top-k are chosen on the logits and their
  // weights are a softmax over those k (RouteTopKSoftmax); experts have biases.
  bool softmax_after_topk = false;
  bool router_bias = false;
  bool expert_bias = false;
};

// Gated DeltaNet sizes (the layers whose LayerSpec says kLinearAttention). Key heads are
// repeated to the value heads: value head h reads key head h / (n_v_heads / n_k_heads)
// (transformers' repeat_interleave), or h % n_k_heads when `v_heads_tiled`.
struct LinearAttnSpec {
  int64_t n_k_heads = 0;
  int64_t n_v_heads = 0;
  int64_t k_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t conv_kernel = 0;   // depthwise causal conv width (4)
  // Qwen3.5 checkpoints: the input projections are four ungrouped matrices (in_proj_qkv
  // [conv_dim] in conv channel order, in_proj_z [value_dim], in_proj_b and in_proj_a
  // [n_v_heads] each) instead of Qwen3-Next's grouped in_proj_qkvz / in_proj_ba.
  bool ungrouped = false;
  // GGUF qwen35/qwen35moe: llama.cpp's converter reordered every value-head tensor from
  // grouped to tiled order (_reorder_v_heads), so value head h reads key head h % n_k_heads.
  bool v_heads_tiled = false;
  int64_t key_head_of(int64_t h) const { return v_heads_tiled ? h % n_k_heads : h / (n_v_heads / n_k_heads); }
  int64_t key_dim() const { return n_k_heads * k_head_dim; }
  int64_t value_dim() const { return n_v_heads * v_head_dim; }
  int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }   // q, k, v channels
  int64_t qkvz_dim() const { return 2 * key_dim() + 2 * value_dim(); }
  int64_t ba_dim() const { return 2 * n_v_heads; }
  // Per sequence and layer: conv inputs [(conv_kernel - 1), conv_dim] + S [n_v_heads, k_head_dim, v_head_dim].
  int64_t conv_state_elems() const { return (conv_kernel - 1) * conv_dim(); }
  int64_t delta_state_elems() const { return n_v_heads * k_head_dim * v_head_dim; }
};

struct ModelConfig {
  std::string arch;          // "llama", "mistral", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "mixtral", "olmoe", "gemma2", "gemma3", "gpt-oss", "qwen3next", "qwen35", "qwen35moe"
  std::string hf_class;      // "LlamaForCausalLM", ... (informational)
  int64_t n_layer = 0;
  int64_t n_embd = 0;        // hidden size
  int64_t n_ff = 0;          // dense MLP intermediate size
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
  bool qk_norm_full = false; // with qk_norm, OLMoE: over the whole q / k projection instead
  bool tied_embeddings = false;  // lm_head shares token_embd
  // Qwen3-Next gated attention: the q projection is [n_head, 2·head_dim] per row (each
  // head's query, then its output gate); attention output ×= sigmoid(gate).
  bool attn_output_gate = false;
  // Gemma family (0 / false: off).
  FfnAct ffn_act = FfnAct::kSilu;
  bool sandwich_norms = false;   // post-attention and post-feed-forward RMSNorms too
  bool norm_plus_one = false;    // HF checkpoint stores RMSNorm weights as w, applied as (1 + w)
  float attn_scale = 0.0f;       // score scale; 0: 1/sqrt(head_dim) (Gemma: query_pre_attn_scalar^-0.5)
  float attn_softcap = 0.0f;     // attention logit soft-capping (Gemma 2)
  float final_softcap = 0.0f;    // final logit soft-capping: cap · tanh(logit / cap) (Gemma 2)
  float embd_scale = 0.0f;       // embedding rows × this (Gemma: √n_embd rounded to the weight dtype)
  // gpt-oss (GptOssFromHf / GptOssFromGguf): a learned sink logit per head in every
  // layer's attention softmax (AttentionShape::sinks), a bias on the output projection,
  // and the experts' clamped SwiGLU (ffn_act kSwiGluOai) constants.
  bool attn_sinks = false;
  bool o_bias = false;
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;
  // RoPE, SwiGLU and attention round exactly as llama.cpp's CPU backend
  // (ApplyRopeGgml, SwiGLUGgml, AttentionGgml), so that greedy output matches
  // llama.cpp's token for token. Off by default (spool's own kernels: one pass over the
  // KV pages, memory flat in the context); set by EngineOptions::ggml_numerics
  // (`--numerics ggml`) for GGUF models (their llama3 scaling is the rope_freqs tensor,
  // which ApplyRopeGgml applies as ggml does; yarn goes through its GgmlYarn).
  bool ggml_numerics = false;

  std::vector<LayerSpec> layers;  // [n_layer]
  // GGUF multi-token-prediction blocks stored after the n_layer trunk blocks
  // (`nextn_predict_layers`; block_count = n_layer + this): not run, their tensors ignored.
  int64_t n_nextn_layers = 0;
  MoeSpec moe;                    // meaningful when some layer's ffn is kMoe
  LinearAttnSpec linear;          // meaningful when some layer's mixer is kLinearAttention
  // Tokens per chunk of the chunked delta rule in prefill steps (a parameter: any value
  // >= 1 gives the recurrence's result within the tolerance tests state).
  int64_t delta_chunk = 64;

  bool has_moe() const;
  bool has_linear() const;   // some layer is kLinearAttention
  int64_t n_linear_layers() const;
  // The KV cache holds the attention layers only (linear layers keep a recurrent state):
  // layer l's slot in it, −1 for a linear layer; and how many slots there are.
  int64_t kv_layer(int64_t l) const;
  int64_t n_kv_layers() const { return n_layer - n_linear_layers(); }
  int64_t max_ff() const;    // widest feed-forward intermediate of any part (scratch sizing)
  int64_t q_dim() const { return n_head * head_dim; }
  int64_t wq_rows() const { return attn_output_gate ? 2 * q_dim() : q_dim(); }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
  float attention_scale() const { return attn_scale > 0 ? attn_scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }
  // Tokens of KV a layer's attention ever reads back at context `ctx`: its window
  // (sliding layers), none (linear-attention layers: recurrent state instead) or the
  // whole context.
  int64_t kv_tokens(int64_t layer, int64_t ctx) const;
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
  kPostAttnNorm, kPostFfnNorm,  // sandwich norms (Gemma 2/3)
  kBo, kSinks,                  // gpt-oss: output-projection bias, attention sinks [n_head]
  // Gated DeltaNet (Qwen3-Next linear-attention layers).
  kSsmInQkvz, kSsmInBa, kSsmConv, kSsmDtBias, kSsmALog, kSsmNorm, kSsmOut,
  // The split input projection of llama.cpp's converter (GGUF attn_qkv: q, k, v channels
  // of all heads, ungrouped; attn_gate: z), instead of the grouped kSsmInQkvz.
  kSsmInQkv, kSsmInZ,
  // Qwen3.5's b and a projections, [n_v_heads, n_embd] each, instead of the grouped kSsmInBa.
  kSsmInB, kSsmInA,
  // Mixture of experts (HF names depend on the architecture: see weights.cc).
  kFfnRouter, kShexpGate, kShexpUp, kShexpDown, kShexpRouter,
};
// Name of `role` for layer `layer` (ignored for whole-model roles) in the source's format.
std::string TensorName(formats::ModelSource::Kind kind, TensorRole role, int64_t layer);
// As above, for architectures whose HF names differ (Gemma's sandwich norms:
// pre_feedforward_layernorm is the feed-forward norm, post_attention_layernorm the
// post-attention one).
std::string TensorName(const ModelConfig& c, formats::ModelSource::Kind kind, TensorRole role, int64_t layer);
const char* RoleName(TensorRole role);

// HF names of a mixture-of-experts layer's tensors, which differ per architecture
// (Mixtral: block_sparse_moe.experts.{e}.w1/w3/w2). Per-expert layout: one 2-D tensor
// per expert and projection (what save_pretrained writes). Fused layout: all experts in
// one 3-D tensor, gate_up_proj [n_expert, 2·n_ff_expert, n_embd] (gate rows first) and
// down_proj [n_expert, n_embd, n_ff_expert]; `expert` is ignored for those.
enum class ExpertTensor { kRouter, kGate, kUp, kDown, kFusedRouter, kFusedGateUp, kFusedDown };
std::string HfExpertTensorName(const ModelConfig& c, ExpertTensor t, int64_t layer, int64_t expert);

}  // namespace spool::models
