// bench_gpu_decode: whole-model prefill and decode speed of the stage-2 GPU decoder
// (gpu/llama_decoder.h) with every weight resident in VRAM and streamed under smaller
// VRAM budgets, with the device's counters (not a test; bench/gpu/run.sh).
//
//   for each budget (0 = all resident, then each --vram-budget):
//     prefill of --prompt-tokens tokens (chunks of --rows): tok/s
//     greedy decode of -n tokens: tok/s
//     DeviceStats of the run as JSON: device time, streamed bytes, copy GB/s
//   and whether the streamed run's logits equal the resident run's bit for bit.
//
// Usage: bench_gpu_decode MODEL [--device N] [--vram-budget SIZE|FRACTION]... [--prompt-tokens P]
//                              [-n N] [--rows M] [--ctx C] [--json]
// A FRACTION (0 < f < 1) is that share of the whole model's device footprint (weights + KV +
// activations); a SIZE is bytes ("2G", "512M"). Weights are read from host RAM
// (ResidentWeights) each step for streamed layers: the disk tier is not on the GPU path yet.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/strings.h"
#include "gpu/llama_decoder.h"
#include "gpu/vulkan_device.h"
#include "runtime/engine.h"
#include "runtime/resident_weights.h"
#include "tensor/ops.h"

namespace {

using namespace spool;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

gpu::DeviceStats Minus(gpu::DeviceStats a, const gpu::DeviceStats& b) {
  a.dispatches -= b.dispatches;
  a.submits -= b.submits;
  a.flushes -= b.flushes;
  a.upload_bytes -= b.upload_bytes;
  a.download_bytes -= b.download_bytes;
  a.upload_seconds -= b.upload_seconds;
  a.download_seconds -= b.download_seconds;
  a.sync_seconds -= b.sync_seconds;
  a.device_seconds -= b.device_seconds;
  a.copy_bytes -= b.copy_bytes;
  a.copies -= b.copies;
  a.copy_seconds -= b.copy_seconds;
  a.copy_wait_seconds -= b.copy_wait_seconds;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_gpu_decode MODEL [--device N] [--vram-budget SIZE|FRACTION]... "
                         "[--prompt-tokens P] [-n N] [--rows M] [--ctx C] [--json]\n");
    return 2;
  }
  const std::string model = argv[1];
  int device = 0;
  int64_t prompt_tokens = 128, n_decode = 64, rows = 64, ctx = 512;
  std::vector<std::string> budgets;
  bool json = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--device") device = std::atoi(next().c_str());
    else if (a == "--vram-budget") budgets.push_back(next());
    else if (a == "--prompt-tokens") prompt_tokens = std::max(1, std::atoi(next().c_str()));
    else if (a == "-n") n_decode = std::max(0, std::atoi(next().c_str()));
    else if (a == "--rows") rows = std::max(1, std::atoi(next().c_str()));
    else if (a == "--ctx") ctx = std::max(2, std::atoi(next().c_str()));
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "bench_gpu_decode: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (budgets.empty()) budgets = {"0.25"};
  ctx = std::max(ctx, prompt_tokens + n_decode);

  runtime::EngineOptions eo;
  eo.ctx = ctx;
  auto engine = runtime::Engine::Open(model, eo);
  if (!engine.ok()) {
    std::fprintf(stderr, "bench_gpu_decode: %s\n", engine.status().message().c_str());
    return 1;
  }
  const models::ModelWeights& w = (*engine)->weights();
  auto provider = runtime::ResidentWeights::Load(w);
  if (!provider.ok()) {
    std::fprintf(stderr, "bench_gpu_decode: %s\n", provider.status().message().c_str());
    return 1;
  }
  auto dev = gpu::VulkanDevice::Open(device);
  if (!dev.ok()) {
    std::fprintf(stderr, "bench_gpu_decode: %s\n", dev.status().message().c_str());
    return 1;
  }
  gpu::VulkanDevice& d = **dev;
  std::printf("# device %d: %s (%s); model %s\n", device, d.info().name.c_str(), d.info().driver.c_str(), model.c_str());

  const int64_t V = w.config().n_vocab;
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  for (int64_t i = 0; i < prompt_tokens; ++i) prompt[static_cast<size_t>(i)] = static_cast<int32_t>(1 + (i * 7919) % (V - 1));

  gpu::LlamaDecoderOptions base;
  base.ctx = ctx;
  base.page_tokens = eo.kv_page_tokens;
  base.max_rows = rows;
  auto whole = gpu::LlamaDecoder::Plan(d, w, base);
  if (!whole.ok()) {
    std::fprintf(stderr, "bench_gpu_decode: %s\n", whole.status().message().c_str());
    return 1;
  }
  const uint64_t footprint = whole->fixed_bytes + whole->layer_bytes;
  std::vector<uint64_t> budget_bytes = {0};
  for (const std::string& b : budgets) {
    const double f = std::atof(b.c_str());
    if (f > 0 && f < 1 && b.find_first_not_of("0123456789.") == std::string::npos) {
      budget_bytes.push_back(static_cast<uint64_t>(f * static_cast<double>(footprint)));
    } else {
      auto s = ParseSize(b);
      if (!s.ok()) {
        std::fprintf(stderr, "bench_gpu_decode: --vram-budget '%s': %s\n", b.c_str(), s.status().message().c_str());
        return 2;
      }
      budget_bytes.push_back(s.value());
    }
  }

  std::vector<float> reference;  // the resident run's logits, every step
  for (uint64_t budget : budget_bytes) {
    gpu::LlamaDecoderOptions o = base;
    o.vram_budget = budget;
    auto dec = gpu::LlamaDecoder::Open(d, w, **provider, o);
    if (!dec.ok()) {
      std::printf("budget %llu: %s\n", (unsigned long long)budget, dec.status().message().c_str());
      continue;
    }
    std::printf("# %s\n", (*dec)->plan().ToString().c_str());
    std::vector<float> logits(static_cast<size_t>(V)), all;
    const gpu::DeviceStats s0 = d.stats();
    auto t0 = Clock::now();
    if (Status s = (*dec)->Prefill(prompt, logits.data()); !s.ok()) {
      std::fprintf(stderr, "prefill: %s\n", s.message().c_str());
      return 1;
    }
    const double prefill_s = Since(t0);
    all.insert(all.end(), logits.begin(), logits.end());
    t0 = Clock::now();
    for (int64_t i = 0; i < n_decode; ++i) {
      const int32_t next = static_cast<int32_t>(Argmax(logits.data(), V));
      if (Status s = (*dec)->Step(next, logits.data()); !s.ok()) {
        std::fprintf(stderr, "decode: %s\n", s.message().c_str());
        return 1;
      }
      all.insert(all.end(), logits.begin(), logits.end());
    }
    const double decode_s = Since(t0);
    const gpu::DeviceStats ds = Minus(d.stats(), s0);
    if (budget == 0) reference = all;
    const bool same = reference.size() == all.size() && std::memcmp(reference.data(), all.data(), all.size() * 4) == 0;
    if (json) {
      std::printf("{\"what\":\"decoder\",\"vram_budget\":%llu,\"device_bytes\":%llu,\"resident_layers\":%d,"
                  "\"streamed_layers\":%d,\"prompt_tokens\":%lld,\"prefill_s\":%.6f,\"decode_tokens\":%lld,"
                  "\"decode_s\":%.6f,\"logits_equal_resident\":%s,\"device\":%s}\n",
                  (unsigned long long)budget, (unsigned long long)(*dec)->device_bytes(), (*dec)->plan().n_resident,
                  (*dec)->plan().n_streamed, (long long)prompt_tokens, prefill_s, (long long)n_decode, decode_s,
                  same ? "true" : "false", gpu::DeviceStatsJson(ds).c_str());
    } else {
      std::printf("budget %-12llu prefill %lld tok: %8.1f tok/s   decode %lld tok: %7.2f tok/s   streamed %.2f GB at %.2f GB/s"
                  "   device %.3f s   logits = resident: %s\n",
                  (unsigned long long)budget, (long long)prompt_tokens, prompt_tokens / prefill_s, (long long)n_decode,
                  n_decode / std::max(decode_s, 1e-9), ds.copy_bytes / 1e9,
                  ds.copy_seconds > 0 ? ds.copy_bytes / ds.copy_seconds / 1e9 : 0.0, ds.device_seconds,
                  same ? "yes" : "NO");
      std::printf("  stats %s\n", gpu::DeviceStatsJson(ds).c_str());
    }
  }
  return 0;
}
