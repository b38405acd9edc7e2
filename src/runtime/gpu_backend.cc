#include "runtime/gpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace spool::runtime {
namespace {

gpu::LlamaDecoderOptions DecoderOptions(const GpuBackendOptions& o) {
  gpu::LlamaDecoderOptions d;
  d.ctx = o.ctx;
  d.kv_dtype = o.kv_dtype;
  d.page_tokens = o.page_tokens;
  d.max_rows = std::clamp<int64_t>(o.max_rows, 1, 4096);
  d.vram_budget = o.vram_budget;
  d.n_kv = std::max<int64_t>(o.n_kv, 1);
  d.kv_hot_tokens = std::max<int64_t>(o.kv_hot_tokens, 0);
  d.own_kv = false;
  d.trees = o.trees;
  return d;
}

// kUnsupported naming the architecture and the feature the GPU decoder lacks.
Status CheckModel(const std::string& device, const models::ModelWeights& w, const gpu::LlamaDecoderOptions& d) {
  Status s = gpu::LlamaDecoder::Supports(w.config(), d);
  if (s.ok()) return s;
  if (s.code() != ErrorCode::kUnsupported) return s.WithContext("--device " + device);
  return Unsupported("--device " + device + ": " + w.source().display_name + " (architecture " + w.config().arch +
                     ") does not run on the GPU yet: " + s.message() + "; --device cpu runs it");
}

bool AcceptCpuVulkan() {
  const char* e = std::getenv("SPOOL_DEVICE_AUTO_CPU_VULKAN");
  return e != nullptr && std::strcmp(e, "1") == 0;
}

}  // namespace

GpuBackend::~GpuBackend() = default;

Result<std::unique_ptr<GpuBackend>> GpuBackend::Open(const gpu::DeviceSpec& spec, const models::ModelWeights& weights,
                                                     models::WeightProvider& provider, const GpuBackendOptions& o,
                                                     std::string* note) {
  SPOOL_ASSIGN_OR_RETURN(std::unique_ptr<GpuBackend> b, Prepare(spec, weights, o, note));
  if (b) SPOOL_TRY(b->Load(provider, {}));
  return b;
}

Result<std::unique_ptr<GpuBackend>> GpuBackend::Prepare(const gpu::DeviceSpec& spec,
                                                        const models::ModelWeights& weights,
                                                        const GpuBackendOptions& o, std::string* note) {
  const gpu::LlamaDecoderOptions d = DecoderOptions(o);
  int index = spec.index;
  if (spec.kind == gpu::DeviceSpec::Kind::kAuto) {
    auto fallback = [&](const std::string& why) -> Result<std::unique_ptr<GpuBackend>> {
      if (note) *note = "--device auto: " + why + ": using the CPU";
      return std::unique_ptr<GpuBackend>();
    };
    auto devs = gpu::ListDevices();
    if (!devs.ok()) return fallback("no Vulkan device (" + devs.status().message() + ")");
    index = -1;
    for (size_t i = 0; i < devs->size() && index < 0; ++i)
      if ((*devs)[i].type != "CPU" || AcceptCpuVulkan()) index = static_cast<int>(i);
    if (index < 0) {
      if (devs->empty()) return fallback("no Vulkan device (the Vulkan loader lists none)");
      return fallback("vulkan:0 (" + (*devs)[0].name +
                      ") is a CPU implementation of Vulkan, slower than spool's CPU path (--device vulkan uses it)");
    }
    const std::string name = "vulkan:" + std::to_string(index);
    if (Status s = CheckModel(name, weights, d); !s.ok()) return fallback(s.message());
    auto b = Prepare(gpu::DeviceSpec{gpu::DeviceSpec::Kind::kVulkan, index}, weights, o, note);
    if (!b.ok()) return fallback(b.status().message());
    return b;
  }
  SPOOL_CHECK(spec.kind == gpu::DeviceSpec::Kind::kVulkan);
  const std::string name = gpu::DeviceSpecName(spec);
  SPOOL_TRY(CheckModel(name, weights, d));
  SPOOL_TRY(gpu::ResolveDevice(spec, nullptr).status());
  auto dev = gpu::VulkanDevice::Open(index);
  if (!dev.ok()) return dev.status().WithContext("--device " + name);
  std::unique_ptr<GpuBackend> b(new GpuBackend());
  b->index_ = index;
  b->weights_ = &weights;
  b->options_ = d;
  b->device_ = std::shared_ptr<gpu::VulkanDevice>(std::move(dev.value()));
  auto plan = gpu::LlamaDecoder::Plan(*b->device_, weights, d);
  if (!plan.ok()) return plan.status().WithContext("--device " + name);
  b->prepared_plan_ = std::move(plan.value());
  return b;
}

Result<gpu::VramPlan> GpuBackend::TierPlan(const std::vector<bool>& host_layers) const {
  gpu::LlamaDecoderOptions d = options_;
  d.host_layers = host_layers;
  auto p = gpu::LlamaDecoder::Plan(*device_, *weights_, d);
  if (!p.ok()) return p.status().WithContext("--device vulkan:" + std::to_string(index_));
  return p;
}

Status GpuBackend::Load(models::WeightProvider& provider, const std::vector<bool>& host_layers) {
  SPOOL_CHECK(decoder_ == nullptr);
  gpu::LlamaDecoderOptions d = options_;
  d.host_layers = host_layers;
  auto dec = gpu::LlamaDecoder::Open(*device_, *weights_, provider, d);
  if (!dec.ok()) return dec.status().WithContext("--device vulkan:" + std::to_string(index_));
  decoder_ = std::move(dec.value());
  return Status::Ok();
}

Result<std::unique_ptr<gpu::DeviceKv>> GpuBackend::NewKv(kv::SequenceKv* cold) {
  auto kv = decoder_->NewKv(cold);
  if (!kv.ok()) return kv.status();
  kv.value()->keep_alive = device_;
  return kv;
}

Status GpuBackend::Run(gpu::DeviceKv& kv, std::span<const int32_t> tokens, float* logits, bool all_logits) {
  return decoder_->Run(kv, tokens, logits, all_logits);
}

Status GpuBackend::DownloadKv(const gpu::DeviceKv& kv, int64_t n, kv::SequenceKv& dst) {
  const kv::KvLayout& L = dst.layout();
  SPOOL_CHECK(dst.n_tokens() == 0 && n <= kv.n_tokens);
  std::vector<uint8_t> k(static_cast<size_t>(n) * L.row_bytes()), v(k.size());
  for (int64_t l = 0; l < L.n_layer; ++l) {
    SPOOL_TRY(decoder_->ReadKv(kv, l, n, k.data(), v.data()));
    SPOOL_TRY(dst.WriteRaw(l, 0, n, k.data(), v.data()));
  }
  return dst.Commit(n);
}

Status GpuBackend::UploadKv(kv::SequenceKv& src, gpu::DeviceKv& kv) {
  const kv::KvLayout& L = src.layout();
  const int64_t n = src.n_tokens();
  const uint64_t row = L.row_bytes();
  std::vector<uint8_t> k(static_cast<size_t>(n) * row), v(k.size());
  for (int64_t l = 0; l < L.n_layer; ++l) {
    std::fill(k.begin(), k.end(), 0);
    std::fill(v.begin(), v.end(), 0);
    SPOOL_TRY(src.ForEachPage(l, n, [&](const KvPageView& p) {
      const int64_t rows = std::min(p.n_tokens, n - p.first_pos);
      if (rows <= 0 || p.first_pos < 0) return;
      std::memcpy(k.data() + static_cast<size_t>(p.first_pos) * row, p.k, static_cast<size_t>(rows) * row);
      std::memcpy(v.data() + static_cast<size_t>(p.first_pos) * row, p.v, static_cast<size_t>(rows) * row);
    }));
    SPOOL_TRY(decoder_->WriteKv(kv, l, n, k.data(), v.data()));
  }
  kv.n_tokens = n;
  return Status::Ok();
}

std::string GpuBackend::name() const { return "vulkan:" + std::to_string(index_) + " (" + device_->info().name + ")"; }

}  // namespace spool::runtime
