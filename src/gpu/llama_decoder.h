// A first whole-model forward pass on a Vulkan device (issue 17, stages 1-2): the
// kernels of gpu/kernels.h composed into the steps of a dense Llama-family model, the KV
// cache in device memory (f32 or bf16), one sequence, logits copied to the host for
// sampling. Step() decodes one token (GEMV); Prefill() runs a multi-token prompt in
// chunks of up to max_rows tokens through the tiled GEMM.
//
// Weights: with no VRAM budget every layer is resident in device memory. With a budget
// smaller than the model (`vram_budget`, what `--vram-budget` will set), the plan
// (VramPlan) keeps the fixed buffers (KV cache, activations, output head, norms) and a
// double-buffered ring of two layer slots, then makes the first layers resident while
// they fit; every other layer is streamed at each step: read through the
// WeightProvider into one of two host-visible staging buffers, copied on the transfer
// queue (VulkanDevice::CopyAsync) into its ring slot while the device computes the
// previous layer (compute is flushed per streamed layer, so the copy of layer l+1
// overlaps the compute of layer l). Streamed and resident runs use the same kernels on
// the same bytes: logits bit-identical (tests/gpu/llama_decoder_test.cc).
//
// KV caches: Step()/Prefill() use the decoder's own cache (one sequence; tests and
// bench/gpu). The engine (runtime/gpu_backend.h, `--device vulkan`) keeps one DeviceKv
// per sequence (NewKv) and runs them through Run(); nothing else differs.
//
// It is a second copy of the decoder loop (the CPU's is models::Transformer), which the
// backend boundary of docs/parts/gpu.md would replace (Transformer calling a Device).
//
// Supported: attention (full or sliding window, optional score soft-capping) × dense
// SwiGLU layers, RMSNorm, RoPE of either pairing with any scaling RopeFrequencies
// computes (linear, llama3, GGUF rope_freqs, yarn's mscale), weights f32/f16/bf16/
// Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q5_K/Q6_K, spool numerics; per layer, the QKV parts of
// layer_parts.h (QKV bias: Qwen2; per-head q/k RMSNorm: Qwen3). Refused with kUnsupported,
// naming the feature: q/k norm over the whole projection, the attention output gate, output
// bias, sandwich norms, GeGLU, MoE, final soft-capping, embedding scale, --numerics ggml,
// other weight types, head_dim > 256.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "gpu/kernels.h"
#include "gpu/layer_parts.h"
#include "gpu/vulkan_device.h"
#include "models/weight_provider.h"
#include "models/weights.h"

namespace spool::gpu {

struct LlamaDecoderOptions {
  int64_t ctx = 0;               // KV cache capacity in tokens
  DType kv_dtype = DType::kF32;  // kF32 or kBF16
  int64_t page_tokens = 256;     // the CPU engine's kv_page_tokens (same attention fold order)
  int64_t max_rows = 1;          // the most tokens one Prefill chunk carries (buffers sized for it)
  uint64_t vram_budget = 0;      // device bytes for weights + KV + activations; 0: all resident
  // KV caches the plan counts (sequences held at once: the engine's max_sequences).
  int64_t n_kv = 1;
  // Open allocates the decoder's own KV cache (Step/Prefill); false: only NewKv caches.
  bool own_kv = true;
};

// One sequence's KV cache in device memory: K and V of every layer, [n_layer, ctx,
// kv_dim] each in the decoder's kv_dtype, and how many positions hold tokens. Rows past
// n_tokens are scratch (Truncate is `n_tokens = n`).
struct DeviceKv {
  std::shared_ptr<void> keep_alive;  // held by its owner's choice (the device), freed last
  Buffer k, v;
  int64_t n_tokens = 0;
};

// Where the weights live under a VRAM budget (LlamaDecoder::Plan).
struct VramPlan {
  uint64_t budget = 0;         // 0: no budget
  uint64_t fixed_bytes = 0;    // KV cache + activations + Q8 scratch + RoPE tables + head + norms
  uint64_t kv_bytes = 0;        // n_kv caches
  uint64_t kv_seq_bytes = 0;    // one sequence's K and V
  uint64_t head_bytes = 0;     // output matrix
  uint64_t layer_bytes = 0;    // every layer's matrices (each padded to the offset alignment)
  uint64_t largest_layer = 0;
  uint64_t ring_bytes = 0;     // 2 × largest_layer when any layer streams, else 0
  int n_resident = 0;          // layers 0 .. n_resident-1 resident, the rest streamed
  int n_streamed = 0;
  uint64_t resident_layer_bytes = 0;  // the resident layers' share of layer_bytes
  uint64_t device_bytes() const;  // fixed + ring + resident layers
  std::string ToString() const;
};

class LlamaDecoder {
 public:
  // Plans the placement (reading only sizes) and uploads the resident weights (read
  // through `provider`, released after the upload); allocates the KV cache, the ring
  // and the staging buffers. `weights` and `provider` must outlive the decoder (streamed
  // layers and embedding rows are read through the provider at each step).
  // Errors: a VRAM budget too small for the fixed buffers and two layer slots
  // (kResourceExhausted naming the bytes needed and given), device allocation failures
  // (kResourceExhausted), unsupported features (kUnsupported).
  static Result<std::unique_ptr<LlamaDecoder>> Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                    models::WeightProvider& provider, const LlamaDecoderOptions& o);
  static Result<std::unique_ptr<LlamaDecoder>> Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                    models::WeightProvider& provider, int64_t ctx, DType kv_dtype,
                                                    int64_t page_tokens = 256);

  // The placement Open would choose (no device memory is touched).
  static Result<VramPlan> Plan(const VulkanDevice& dev, const models::ModelWeights& weights,
                               const LlamaDecoderOptions& o);

  // Runs `token` at position n_tokens() and appends it to the KV cache.
  // logits: [n_vocab]. Errors: a full context (kResourceExhausted), an out-of-range
  // token (kInvalidArgument), device errors.
  Status Step(int32_t token, float* logits);

  // Runs `tokens` at positions n_tokens().. in chunks of at most max_rows (tiled GEMM
  // for m > 1), appends them to the KV cache and writes the logits of the last one.
  // logits: [n_vocab]. Errors as Step (the whole prompt must fit the context).
  Status Prefill(std::span<const int32_t> tokens, float* logits);

  // A KV cache for Run (zeroed, n_tokens 0). Errors: device allocation (kResourceExhausted
  // naming "K cache" / "V cache").
  Result<std::unique_ptr<DeviceKv>> NewKv();

  // Runs `tokens` at positions kv.n_tokens.. (chunks of at most max_rows) and appends
  // them to kv. logits: [n_vocab] of the last token, or [tokens.size(), n_vocab] when
  // all_logits (each row's head is a GEMV, as a decode step's). On failure kv.n_tokens
  // is unchanged. Errors as Prefill.
  Status Run(DeviceKv& kv, std::span<const int32_t> tokens, float* logits, bool all_logits);

  // Rows [0, n) of `layer`'s K and V of kv, in the cache dtype (session save/restore):
  // k, v: [n, kv_dim] elements of kv_dtype. Errors: n beyond the context, device errors.
  Status ReadKv(const DeviceKv& kv, int64_t layer, int64_t n, void* k, void* v);
  Status WriteKv(DeviceKv& kv, int64_t layer, int64_t n, const void* k, const void* v);

  int64_t n_tokens() const { return own_kv_ ? own_kv_->n_tokens : 0; }
  const LlamaDecoderOptions& options() const { return opts_; }
  VulkanDevice& device() { return dev_; }

  // kOk when Open would accept the model and options; else the kUnsupported /
  // kInvalidArgument Open returns, naming the feature (QKV bias, q/k norm, ...).
  static Status Supports(const models::ModelConfig& c, const LlamaDecoderOptions& o);
  uint64_t device_bytes() const { return device_bytes_; }  // weights + KV + scratch + ring
  const VramPlan& plan() const { return plan_; }

 private:
  static constexpr int kMats = 7;  // wq, wk, wv, wo, gate, up, down
  struct Layer {
    std::array<WeightBuffer, kMats> mats;  // buffer null for a streamed layer (set per step)
    std::array<uint64_t, kMats> host_offset;  // each matrix's offset in the provider's group
    uint64_t bytes = 0;                       // packed size (offsets aligned)
    int buffer = -1;                          // index into layer_buffers_ (resident), else -1
    Buffer attn_norm, ffn_norm;
    int rope_table;  // index into rope_tables_ (layers with the same frequencies share)
    // The architecture's steps between the Q/K/V projections and RoPE (layer_parts.h).
    std::vector<std::unique_ptr<QkvPart>> qkv_parts;
  };
  LlamaDecoder(VulkanDevice& dev, const models::ModelWeights& w, models::WeightProvider& p)
      : dev_(dev), k_(dev), w_(w), provider_(p) {}
  Result<Buffer> UploadF32(const std::vector<float>& v, const char* what);
  // Runs n tokens (ids already range-checked) at positions kv.n_tokens.. through every
  // layer; logits of the last row (or of every row, all_logits) when `logits` is not null.
  Status Forward(DeviceKv& kv, const int32_t* ids, int64_t n, float* logits, bool all_logits = false);
  Status CheckRun(const DeviceKv& kv, std::span<const int32_t> tokens) const;
  Status Stage(int layer, int slot);  // streamed layer → staging[slot] → ring[slot] (async)

  VulkanDevice& dev_;
  Kernels k_;
  const models::ModelWeights& w_;
  models::WeightProvider& provider_;
  LlamaDecoderOptions opts_;
  VramPlan plan_;
  std::vector<GpuKvPage> pages_;  // this step's page table (scratch)
  uint64_t device_bytes_ = 0;
  std::vector<Buffer> layer_buffers_;  // resident layers' matrices, one buffer per layer
  Buffer output_buffer_;
  std::vector<Layer> layers_;
  WeightBuffer output_{};
  Buffer output_norm_;
  std::vector<std::vector<float>> inv_freqs_;  // distinct RoPE frequency sets
  std::vector<float> mscales_;
  std::vector<Buffer> rope_tables_;
  std::unique_ptr<DeviceKv> own_kv_;  // Step/Prefill's cache (options own_kv)
  Buffer x_, h_, q_, kn_, vn_, att_, o_, gate_, up_, last_, logits_;
  std::vector<float> host_rows_;
  // Streaming: the ring's two VRAM slots, their host-visible staging buffers, the copy
  // into each slot and the compute submission that last read it.
  Buffer ring_[2], staging_[2];
  SubmissionId slot_copy_[2] = {0, 0}, slot_use_[2] = {0, 0};
  int slot_layer_[2] = {-1, -1};
};

}  // namespace spool::gpu
