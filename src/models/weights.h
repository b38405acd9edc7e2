// Where every weight of a model lives, and how weights are grouped for streaming.
//
// Big matrices are organised in *weight groups* that are used together and can be
// read with one batch of I/O: group l < n_layer holds layer l's dense projections
// (attention, then the feed-forward block: a dense MLP, or a mixture of experts' router
// and shared expert);
// group n_layer ("head") holds the output projection (which is token_embd itself when
// embeddings are tied). A mixture of experts' routed experts are not in their layer's
// group: each (layer, expert) is a unit of its own (ExpertRef), read only when a router
// picks it (DESIGN.md, "Experts are the unit of streaming for MoE"). A WeightProvider (runtime/) decides which groups stay resident
// and which are streamed; the forward pass only sees group base pointers.
//
// Small tensors (norm weights, biases) are converted to f32 once at load and kept in
// RAM: they are a few KiB per layer. RMSNorm weights of HF Gemma checkpoints (stored
// as w, applied as 1 + w) are kept as 1 + w, added in f32 as transformers does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/dtype.h"
#include "base/status.h"
#include "formats/model_source.h"
#include "models/config.h"

namespace spool::models {

// A weight matrix y = W x stored in the files: W is [n_out, n_in], rows contiguous.
struct MatrixRef {
  const formats::TensorInfo* info = nullptr;
  DType dtype = DType::kF32;
  int64_t n_out = 0;
  int64_t n_in = 0;
  // Byte offset of this matrix inside its group's buffer; group_offset % kGroupPage ==
  // info->offset % kGroupPage (page-aligned reads land in place, see WeightGroup).
  uint64_t group_offset = 0;
  // MXFP4 in the HF split layout (gpt-oss `*_blocks` + `*_scales`): `info` is the
  // blocks tensor ([.., n_in / 32, 16] bytes), `scales_info` the scales ([.., n_in / 32]
  // E8M0 bytes), placed at scales_offset; null for every other matrix.
  const formats::TensorInfo* scales_info = nullptr;
  uint64_t scales_offset = 0;
  uint64_t row_bytes() const { return info ? info->nbytes / static_cast<uint64_t>(n_out) : 0; }
};

// One SwiGLU MLP: down · (silu(gate · h) ⊙ up · h).
struct SwiGluWeights {
  MatrixRef gate, up, down;                 // [ff, n_embd] x2, [n_embd, ff]
  // gpt-oss HF experts instead of gate/up: one matrix [2·ff, n_embd] whose even rows are
  // the gate's and odd rows the up projection's (transformers' gate_up[..., ::2 / 1::2]).
  MatrixRef gate_up;
};

// A byte range of the model's files and where it lands in a buffer: buf_offset ≡
// offset (mod kGroupPage), so the page-aligned superset read lands in place.
struct FileExtent {
  uint32_t file_index = 0;
  uint64_t offset = 0;                      // in the file
  uint64_t nbytes = 0;
  uint64_t buf_offset = 0;                  // in the unit's buffer
};

// One routed expert as a unit of streaming: its gate, up and down matrices laid out in a
// buffer of `bytes` (a multiple of kGroupPage). Per-expert checkpoints give three
// tensors; fused 3-D ones (HF gate_up_proj/down_proj, GGUF *_exps) give this expert's
// row slices, which are contiguous per matrix, so an expert is always 2-3 extents.
struct ExpertRef {
  std::vector<FileExtent> extents;          // in read order
  uint64_t bytes = 0;
};

// A mixture-of-experts feed-forward block (ModelConfig::moe says the sizes).
struct MoeWeights {
  MatrixRef router;                         // [n_expert, n_embd]
  // [n_expert], each ff = n_ff_expert; group_offset is relative to the expert's own
  // buffer (ExpertRef layout), not to the layer's group.
  std::vector<SwiGluWeights> experts;
  std::vector<ExpertRef> expert_units;      // [n_expert]
  SwiGluWeights shared;                     // ff = n_ff_shared (Qwen2-MoE only)
  MatrixRef shared_router;                  // [1, n_embd] sigmoid gate of the shared expert
  // Fused 3-D checkpoints: the stored tensors; `experts` view row slices of them
  // (their `info` is the fused tensor). Not in the layer's group.
  MatrixRef fused_gate_up;                  // HF: [n_expert · 2 · n_ff_expert, n_embd]
  MatrixRef fused_gate, fused_up;           // GGUF ffn_{gate,up}_exps: [n_expert · n_ff_expert, n_embd]
  MatrixRef fused_down;                     // [n_expert · n_embd, n_ff_expert]
  // gpt-oss: router bias [n_expert]; expert biases [n_expert · ff] (gate, up: the HF
  // interleaved gate_up_proj_bias split into its even / odd entries), [n_expert · n_embd] (down).
  std::vector<float> router_bias, gate_bias, up_bias, down_bias;
};

// A Gated DeltaNet token mixer (ModelConfig::linear says the sizes; models/linear_attention.h).
struct LinearAttnWeights {
  MatrixRef in_qkvz;                        // [qkvz_dim, n_embd]: per key head q, k, v, z (grouped)
  // Or split (what llama.cpp's converter writes): in_qkv [conv_dim, n_embd], the q, k, v
  // channels of all heads in conv order (ungrouped), and in_z [value_dim, n_embd].
  MatrixRef in_qkv, in_z;
  MatrixRef in_ba;                          // [ba_dim, n_embd]: per key head b, a
  // Or (Qwen3.5, LinearAttnSpec::ungrouped) two matrices [n_v_heads, n_embd]: b and a.
  MatrixRef in_b, in_a;
  MatrixRef out;                            // [n_embd, value_dim]
  std::vector<float> conv;                  // [conv_dim, conv_kernel] depthwise causal conv
  std::vector<float> dt_bias;               // [n_v_heads]
  std::vector<float> neg_a;                 // [n_v_heads]: −exp(A_log), in f32 as transformers (GGUF: as stored)
  std::vector<float> norm;                  // [v_head_dim]: gated RMSNorm weight (applied as w, not 1 + w)
  bool split() const { return in_qkv.info != nullptr; }
};

struct LayerWeights {
  // Token mixer (attention; with attn_output_gate wq is [2·q_dim, n_embd]: per head q, gate).
  MatrixRef wq, wk, wv, wo;                 // [q_dim, n_embd], [kv_dim, n_embd] x2, [n_embd, q_dim]
  LinearAttnWeights linear;                 // kLinearAttention layers (wq..wo unused)
  std::vector<float> attn_norm;             // [n_embd]
  std::vector<float> q_norm, k_norm;        // [head_dim] (qk_norm), [q_dim], [kv_dim] (qk_norm_full)
  std::vector<float> bq, bk, bv;            // [q_dim], [kv_dim], [kv_dim] (qkv_bias models only)
  std::vector<float> bo;                    // [n_embd] (o_bias: gpt-oss)
  std::vector<float> sinks;                 // [n_head] (attn_sinks: gpt-oss)
  // Feed-forward block: `dense` or `moe` as the layer's LayerSpec says.
  std::vector<float> post_attn_norm;        // [n_embd] (sandwich_norms only)
  std::vector<float> ffn_norm;              // [n_embd]
  std::vector<float> post_ffn_norm;         // [n_embd] (sandwich_norms only)
  SwiGluWeights dense;                      // ff = n_ff
  MoeWeights moe;
};

// Group buffers are laid out in pages: every matrix keeps its in-page file offset,
// and a group's size is a whole number of pages. A provider that reads the page-aligned
// superset [floor(offset), ceil(offset + nbytes)) of a tensor into
// buffer + floor(group_offset) gets the tensor at buffer + group_offset.
inline constexpr uint64_t kGroupPage = 4096;

struct WeightGroup {
  std::string name;                         // "layer 3", "head"
  std::vector<const MatrixRef*> matrices;   // in read order; offsets below are theirs
  uint64_t bytes = 0;                       // buffer size (a multiple of kGroupPage)
};

// Everything about a model except the big matrices' bytes. Immutable after Load.
class ModelWeights {
 public:
  static Result<std::unique_ptr<ModelWeights>> Load(formats::ModelSource source);

  const ModelConfig& config() const { return config_; }
  // Numerics switches the engine sets before building its Transformer (ggml_numerics).
  ModelConfig& mutable_config() { return config_; }
  const formats::ModelSource& source() const { return source_; }
  const LayerWeights& layer(int64_t l) const { return layers_[l]; }
  const MatrixRef& token_embd() const { return token_embd_; }  // [n_vocab, n_embd]
  const MatrixRef& output() const { return output_; }          // [n_vocab, n_embd] (== token_embd if tied)
  const std::vector<float>& output_norm() const { return output_norm_; }

  int n_groups() const { return static_cast<int>(groups_.size()); }
  int head_group() const { return static_cast<int>(config_.n_layer); }
  const WeightGroup& group(int g) const { return groups_[g]; }
  uint64_t total_matrix_bytes() const;  // sum of group sizes and expert buffer sizes
  // Routed experts: layer l's expert e (l must be an MoE layer).
  const ExpertRef& expert(int64_t l, int64_t e) const {
    SPOOL_CHECK(l >= 0 && l < config_.n_layer && e >= 0 && e < static_cast<int64_t>(layers_[l].moe.expert_units.size()));
    return layers_[l].moe.expert_units[e];
  }
  int64_t n_moe_layers() const;
  uint64_t max_expert_bytes() const { return max_expert_bytes_; }  // largest ExpertRef::bytes; 0 without MoE
  uint64_t n_params() const;            // every stored element (embedding counted once)

 private:
  ModelWeights() = default;
  Status Init();
  Status InitMoe(int64_t l);
  Status InitGptOssMoe(int64_t l);  // weights_gptoss.cc: biases; HF MXFP4 blocks/scales
  Status InitLinear(int64_t l);

  formats::ModelSource source_;
  ModelConfig config_;
  std::vector<LayerWeights> layers_;
  MatrixRef token_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<WeightGroup> groups_;
  uint64_t max_expert_bytes_ = 0;
};

// Reads a small tensor (any dtype, dequantised) into f32. Used for norms and biases.
Result<std::vector<float>> ReadTensorF32(const formats::ModelSource& src, const formats::TensorInfo& info);

}  // namespace spool::models
