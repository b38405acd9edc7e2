// A first whole-model decode on a Vulkan device (issue 17, stage 1): the kernels of
// gpu/kernels.h composed into one decode step of a dense Llama-family model, every
// weight resident in device memory, the KV cache in device memory (f32 or bf16), one
// sequence, one token per step, logits copied to the host for sampling.
//
// A prototype: it proves that the kernels compose into the CPU's forward pass (greedy
// ids identical, logits within a stated tolerance: tests/gpu/llama_decoder_test.cc).
// It is a second copy of the decoder loop, which the backend boundary of
// docs/parts/gpu.md replaces (models::Transformer calling a Device); until then it is
// not reachable from the engine or the CLI.
//
// Supported: attention (full or sliding window, optional score soft-capping) × dense
// SwiGLU layers, RMSNorm, RoPE of either pairing with any scaling RopeFrequencies
// computes (linear, llama3, GGUF rope_freqs, yarn's mscale), weights f32/f16/bf16/
// Q8_0/Q4_0/Q4_1, spool numerics. Refused with kUnsupported, naming the feature: QKV bias,
// q/k norm, sandwich norms, GeGLU, MoE, final soft-capping, embedding scale,
// --numerics ggml, other weight types, head_dim > 256.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "gpu/kernels.h"
#include "gpu/vulkan_device.h"
#include "models/weight_provider.h"
#include "models/weights.h"

namespace spool::gpu {

class LlamaDecoder {
 public:
  // Uploads every weight group (read through `provider`, released after the upload)
  // and allocates the KV cache for `ctx` tokens. `weights` and `provider` must outlive
  // the decoder (embedding rows are read through the provider each step). Attention
  // folds the KV in pages of `page_tokens` (the CPU engine's kv_page_tokens, so that
  // both fold in the same order).
  static Result<std::unique_ptr<LlamaDecoder>> Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                    models::WeightProvider& provider, int64_t ctx, DType kv_dtype,
                                                    int64_t page_tokens = 256);

  // Runs `token` at position n_tokens() and appends it to the KV cache.
  // logits: [n_vocab]. Errors: a full context (kResourceExhausted), an out-of-range
  // token (kInvalidArgument), device errors.
  Status Step(int32_t token, float* logits);

  int64_t n_tokens() const { return n_tokens_; }
  uint64_t device_bytes() const { return device_bytes_; }  // weights + KV + scratch

 private:
  struct Layer {
    WeightBuffer wq, wk, wv, wo, gate, up, down;
    Buffer attn_norm, ffn_norm;
    int rope_table;  // index into rope_tables_ (layers with the same frequencies share)
  };
  LlamaDecoder(VulkanDevice& dev, const models::ModelWeights& w, models::WeightProvider& p)
      : dev_(dev), k_(dev), w_(w), provider_(p) {}
  Result<WeightBuffer> UploadMatrix(const models::MatrixRef& m, const uint8_t* group, const char* what);
  Result<Buffer> UploadF32(const std::vector<float>& v, const char* what);

  VulkanDevice& dev_;
  Kernels k_;
  const models::ModelWeights& w_;
  models::WeightProvider& provider_;
  int64_t ctx_ = 0;
  DType kv_dtype_ = DType::kF32;
  int64_t n_tokens_ = 0;
  int64_t page_tokens_ = 256;
  std::vector<GpuKvPage> pages_;  // this step's page table (scratch)
  uint64_t device_bytes_ = 0;
  std::vector<Buffer> matrices_;  // owns every weight matrix's buffer
  std::vector<Layer> layers_;
  WeightBuffer output_{};
  Buffer output_norm_;
  std::vector<std::vector<float>> inv_freqs_;  // distinct RoPE frequency sets
  std::vector<float> mscales_;
  std::vector<Buffer> rope_tables_;
  Buffer kcache_, vcache_;  // [n_layer, ctx, kv_dim] of kv_dtype
  Buffer x_, h_, q_, kn_, vn_, att_, o_, gate_, up_, logits_;
  std::vector<float> host_row_;
};

}  // namespace spool::gpu
