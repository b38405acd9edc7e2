// The engine's forward pass on a Vulkan device (`--device vulkan[:N]|auto`, issue 17).
//
// The seam: Engine owns either the CPU decoder loop (models::Transformer, the reference)
// or a GpuBackend, chosen once at Open; Engine::Prefill/Step/Truncate/sessions branch on
// which one runs the step and everything above the Engine (generate, the scheduler,
// run/chat/serve/batch, sessions, prefix reuse, sampling) is unchanged. A GpuBackend is
// a Vulkan device plus the whole-model gpu::LlamaDecoder (dense Llama-family models);
// each Sequence holds its own gpu::DeviceKv (its KV cache in VRAM) in place of the CPU
// cache. Weights live in three tiers (gpu/weight_tiers.h): the decoder keeps what
// --vram-budget allows in VRAM, the engine's host plan puts what --mem-budget allows of
// the rest in host-visible RAM (Prepare → host plan → Load), and the other layers are
// read from the model's files each pass; all go through the decoder's VRAM ring. The
// engine's WeightProvider supplies only embedding rows.
//
// Not a parts-level Device boundary (docs/parts/gpu.md "The backend boundary"): the GPU
// decoder is a second decoder loop, so architectures it does not run are refused.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "gpu/device_spec.h"
#include "gpu/llama_decoder.h"
#include "gpu/vulkan_device.h"
#include "kv/kv_cache.h"
#include "models/weight_provider.h"
#include "models/weights.h"

namespace spool::runtime {

struct GpuBackendOptions {
  int64_t ctx = 0;             // tokens per sequence (the engine's context)
  DType kv_dtype = DType::kBF16;
  int64_t page_tokens = 256;   // the CPU's kv_page_tokens: the same attention fold order
  int64_t max_rows = 1;        // largest chunk one device pass carries (longer runs are split)
  int64_t n_kv = 1;            // sequences holding a KV cache at once (VRAM plan)
  uint64_t vram_budget = 0;    // --vram-budget bytes; 0: every layer resident in VRAM
  int64_t kv_hot_tokens = 0;   // --vram-kv-window (gpu::LlamaDecoderOptions::kv_hot_tokens)
  bool trees = false;          // draft-tree steps may run (gpu::LlamaDecoderOptions::trees)
};

class GpuBackend {
 public:
  // Picks and opens the device for `spec` (kVulkan or kAuto) and uploads the weights
  // VRAM holds (read through `provider`, which must outlive the backend).
  //   vulkan:N → that device, or an error: no Vulkan driver / no device N (as
  //     gpu::ResolveDevice), a model the GPU decoder does not run (kUnsupported naming the
  //     architecture and the feature, and that --device cpu runs it), a --vram-budget too
  //     small (kResourceExhausted), device memory.
  //   auto → the first Vulkan device that is not a CPU implementation (lavapipe is far
  //     slower than spool's CPU path; SPOOL_DEVICE_AUTO_CPU_VULKAN=1 accepts one, for
  //     tests) when the model runs on it; otherwise nullptr and *note says why the CPU
  //     runs (no device, only a CPU implementation, the model, or the device's error).
  static Result<std::unique_ptr<GpuBackend>> Open(const gpu::DeviceSpec& spec, const models::ModelWeights& weights,
                                                  models::WeightProvider& provider, const GpuBackendOptions& o,
                                                  std::string* note);
  // Open in two steps, so that the host plan can be made between them (the three weight
  // tiers, issue 17 item 3): Prepare picks and opens the device as Open does and plans
  // VRAM (vram_plan(): which layers VRAM holds) without reading weights; Load reads the
  // weights into their tiers — VRAM, host memory for the layers host_layers marks
  // ([n_layer] or empty: none; the engine's --mem-budget plan), the files for the rest —
  // and opens the decoder. Errors as Open's (Load: the decoder's).
  static Result<std::unique_ptr<GpuBackend>> Prepare(const gpu::DeviceSpec& spec, const models::ModelWeights& weights,
                                                     const GpuBackendOptions& o, std::string* note);
  Status Load(models::WeightProvider& provider, const std::vector<bool>& host_layers);
  // The VRAM plan with the streamed layers split into the host tier (host_layers) and the
  // disk tier, reading only sizes (spool show --plan --device vulkan).
  Result<gpu::VramPlan> TierPlan(const std::vector<bool>& host_layers) const;
  ~GpuBackend();

  // A zeroed KV cache in VRAM for one sequence; it keeps the device alive. When the VRAM
  // plan keeps a window of the KV (vram_plan().kv_windowed()), the older pages go to
  // `cold` (the sequence's empty CPU cache, RAM or disk, outliving the DeviceKv; null: a
  // RAM cache of its own). Errors as gpu::LlamaDecoder::NewKv.
  Result<std::unique_ptr<gpu::DeviceKv>> NewKv(kv::SequenceKv* cold = nullptr);
  // Drops kv's tokens at positions >= n, in VRAM and in its CPU cache.
  Status Truncate(gpu::DeviceKv& kv, int64_t n) { return decoder_->Truncate(kv, n); }
  // Appends `tokens` to kv (see gpu::LlamaDecoder::Run); on failure kv is unchanged.
  Status Run(gpu::DeviceKv& kv, std::span<const int32_t> tokens, float* logits, bool all_logits);
  // Several sequences in one step, one pass over the weights for all of their rows (as
  // many passes as max_rows requires); see gpu::LlamaDecoder::Run. On failure every kv
  // is unchanged.
  Status Run(std::span<const gpu::RunItem> items) { return decoder_->Run(items); }
  // After a draft-tree step from slot `first`: keeps the step's rows `path` (see
  // gpu::LlamaDecoder::KeepTreePath).
  Status KeepTreePath(gpu::DeviceKv& kv, int64_t first, std::span<const int32_t> path) {
    return decoder_->KeepTreePath(kv, first, path);
  }
  // Session save: kv's first n rows of every layer into an empty CPU cache `dst`
  // (committed). Restore: every layer of the committed CPU cache `src` into a new kv
  // (rows a sliding-window layer released are zeros; attention masks them); with a KV
  // window the rows also go to kv's CPU cache, which must not be `src`.
  Status DownloadKv(const gpu::DeviceKv& kv, int64_t n, kv::SequenceKv& dst);
  Status UploadKv(kv::SequenceKv& src, gpu::DeviceKv& kv);

  std::string name() const;  // "vulkan:0 (llvmpipe (LLVM 15.0.6, 256 bits))"
  const gpu::DeviceStats& device_stats() const { return device_->stats(); }
  // Before Load: Prepare's plan (every streamed layer on the disk tier); then the decoder's.
  const gpu::VramPlan& vram_plan() const { return decoder_ ? decoder_->plan() : prepared_plan_; }
  // Bytes moved per weight tier (zeros before Load).
  const gpu::WeightTierStats& tier_stats() const { return decoder_ ? decoder_->tier_stats() : no_tier_stats_; }

 private:
  GpuBackend() = default;
  int index_ = 0;
  const models::ModelWeights* weights_ = nullptr;
  gpu::LlamaDecoderOptions options_;
  gpu::VramPlan prepared_plan_;
  gpu::WeightTierStats no_tier_stats_;
  std::shared_ptr<gpu::VulkanDevice> device_;  // shared with every DeviceKv (freed last)
  std::unique_ptr<gpu::LlamaDecoder> decoder_;
};

}  // namespace spool::runtime
