// The per-layer parts of the GPU decoder that differ between architectures (issue 17):
// steps chosen once per layer from the model config at LlamaDecoder::Open, each owning its
// device vectors, so the decoder's layer is a fixed skeleton (norm → Q/K/V → [parts] →
// RoPE → attention → O → FFN) plus a list of parts rather than `if (config)` branches in
// the forward pass. The next architecture adds a part (and its row in
// QkvPartsFor's table below), not a branch.
//
// QKV parts run between the Q/K/V projections and RoPE, in the order models::Transformer
// applies them (AttentionMixer): bias add (Qwen2), then the per-head q/k RMSNorm (Qwen3).
// Each records the same kernels, in the same order, as the CPU's reference steps:
//   QkvBias       q += bq, k += bk, v += bv per row     Kernels::AddBias (bit-identical to Add per row)
//   QkHeadNorm    RmsNorm over each head of q and k     Kernels::RmsNorm with rows = tokens × heads
//
// Not parts yet (refused by QkvPartsSupport with kUnsupported naming them): q/k norm over the
// whole projection (OLMoE, `qk_norm_full`), the attention output gate (Qwen3-Next) and
// output-projection bias (gpt-oss) — all only in architectures the GPU refuses for other
// reasons (MoE, linear attention) today.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "gpu/kernels.h"
#include "gpu/vulkan_device.h"
#include "models/config.h"
#include "models/weights.h"

namespace spool::gpu {

// One chunk's projections, [n] rows each, as the decoder's buffers hold them.
struct QkvRows {
  const Buffer& q;  // [n, n_head, head_dim] f32
  const Buffer& k;  // [n, n_head_kv, head_dim] f32
  const Buffer& v;  // [n, n_head_kv, head_dim] f32
  int64_t n;
};

// A step between the Q/K/V projections and RoPE. Record() only records dispatches (no
// host waits); its vectors live in device memory for the decoder's lifetime.
class QkvPart {
 public:
  virtual ~QkvPart() = default;
  virtual const char* name() const = 0;
  // Errors: shape errors from Kernels (a bug: the decoder sized the buffers), device errors.
  virtual Status Record(Kernels& k, const QkvRows& rows) const = 0;
};

// kOk when every QKV step config `c` asks for has a part; else kUnsupported naming it
// ("GPU decoder: q/k norm over the whole projection is not supported on the GPU yet").
Status QkvPartsSupport(const models::ModelConfig& c);
// The QKV features of `c` that have no part, each named with its config field (empty:
// every one has a part); LlamaDecoder::Supports lists them beside the other refusals.
std::vector<std::string> QkvPartsMissing(const models::ModelConfig& c);

// Device bytes the parts of one layer hold (the VRAM plan counts them as fixed).
uint64_t QkvPartsBytes(const models::ModelConfig& c);

// The parts of layer `layer`, in the CPU's order, their vectors uploaded from L.
// Errors: QkvPartsSupport's; a vector of the wrong length (kInvalidArgument naming the
// layer, the vector, expected vs actual); device allocation or upload failures.
Result<std::vector<std::unique_ptr<QkvPart>>> MakeQkvParts(VulkanDevice& dev, const models::ModelConfig& c,
                                                          const models::LayerWeights& L, int64_t layer);

}  // namespace spool::gpu
