// bench_gpu_kernels: decode-step kernel speed on a Vulkan device for Llama-3.2-1B and
// Llama-3.1-8B shapes, beside spool's CPU GEMV of the same shape (not a test).
//
//   GEMV: y = W·x for the layer matrices (q/k/v/o, gate/up/down) and the head, per dtype:
//         median wall time of a batch of dispatches, weight bytes / time = GB/s
//   GEMM: the same matrices times --rows M activation rows (prefill: the tiled GEMM)
//         beside the CPU's MatMul
//   upload: host → device-local copies of 256 MiB (or the largest buffer) through the
//           staging buffer, GB/s
//   copy: CopyAsync from a pinned host-visible buffer to device memory on the transfer
//         queue (what the streamed decoder does per layer), GB/s
//
// Usage: bench_gpu_kernels [--device N] [--reps R] [--dtypes bf16,q8_0,q4_0,q4_k,q6_k]
//                          [--shapes 1b,8b] [--rows M] [--json]
// Prints one line per measurement and a JSON object per line with --json.
// docs/benchmarks.md says "not run on a GPU" until this has run on one (lavapipe numbers
// are not GPU numbers and are not reported).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/thread_pool.h"
#include "gpu/kernels.h"
#include "gpu/vulkan_device.h"
#include "tensor/matmul.h"

namespace {

using namespace spool;
using Clock = std::chrono::steady_clock;

struct Shape {
  const char* name;
  int64_t n_out, n_in;
};
// Llama-3.2-1B: hidden 2048, 32/8 heads of 64, ff 8192, vocab 128256.
// Llama-3.1-8B: hidden 4096, 32/8 heads of 128, ff 14336, vocab 128256.
std::vector<Shape> Shapes(const std::string& which) {
  if (which == "1b")
    return {{"1b attn_q/o", 2048, 2048}, {"1b attn_k/v", 512, 2048}, {"1b ffn_gate/up", 8192, 2048},
            {"1b ffn_down", 2048, 8192}, {"1b output", 128256, 2048}};
  return {{"8b attn_q/o", 4096, 4096}, {"8b attn_k/v", 1024, 4096}, {"8b ffn_gate/up", 14336, 4096},
          {"8b ffn_down", 4096, 14336}, {"8b output", 128256, 4096}};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int device = 0, reps = 7;
  std::string dtypes = "bf16,q8_0,q4_0,q4_k,q6_k", shapes = "1b,8b";
  int64_t rows = 64;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--device") device = std::atoi(next().c_str());
    else if (a == "--reps") reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--dtypes") dtypes = next();
    else if (a == "--shapes") shapes = next();
    else if (a == "--rows") rows = std::max(0, std::atoi(next().c_str()));
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: bench_gpu_kernels [--device N] [--reps R] [--dtypes ...] [--shapes 1b,8b] [--rows M] [--json]\n");
      return 2;
    }
  }
  auto dev = gpu::VulkanDevice::Open(device);
  if (!dev.ok()) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", dev.status().message().c_str());
    return 1;
  }
  gpu::VulkanDevice& d = **dev;
  gpu::Kernels k(d);
  std::printf("# device %d: %s (%s)\n", device, d.info().name.c_str(), d.info().driver.c_str());
  auto fused = k.FusedFma();
  std::printf("# fused fma: %s, f64: %s\n", fused.ok() && fused.value() ? "yes" : "no",
              d.info().shader_float64 ? "yes" : "no");

  // Upload bandwidth.
  {
    const uint64_t bytes = std::min<uint64_t>(uint64_t{256} << 20, d.info().max_buffer_bytes & ~uint64_t{4095});
    std::vector<uint8_t> host(bytes, 1);
    auto b = d.Allocate(bytes, gpu::MemoryKind::kDevice, "upload bench");
    if (b.ok()) {
      std::vector<double> t;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        if (!d.Upload(b.value(), 0, host.data(), bytes).ok()) return 1;
        t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      const double s = Median(t);
      if (json) std::printf("{\"what\":\"upload\",\"bytes\":%llu,\"seconds\":%.6f}\n", (unsigned long long)bytes, s);
      else std::printf("upload %.0f MiB host->device: %.3f s, %.2f GB/s\n", bytes / 1048576.0, s, bytes / s / 1e9);
    } else {
      std::printf("upload: %s\n", b.status().message().c_str());
    }
  }

  // Asynchronous copies from pinned host memory (the streamed decoder's path).
  {
    const uint64_t bytes = std::min<uint64_t>(uint64_t{256} << 20, d.info().max_buffer_bytes & ~uint64_t{4095});
    auto h = d.Allocate(bytes, gpu::MemoryKind::kHostVisible, "copy bench source");
    auto b = d.Allocate(bytes, gpu::MemoryKind::kDevice, "copy bench destination");
    if (h.ok() && b.ok()) {
      std::memset(h.value().data(), 1, bytes);
      std::vector<double> t;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        auto id = d.CopyAsync(h.value(), 0, b.value(), 0, bytes);
        if (!id.ok() || !d.WaitCopy(id.value()).ok()) return 1;
        t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      const double s = Median(t);
      if (json) std::printf("{\"what\":\"copy\",\"bytes\":%llu,\"seconds\":%.6f}\n", (unsigned long long)bytes, s);
      else std::printf("copy %.0f MiB pinned host->device (transfer queue): %.3f s, %.2f GB/s\n", bytes / 1048576.0, s, bytes / s / 1e9);
    } else {
      std::printf("copy: %s\n", (h.ok() ? b.status() : h.status()).message().c_str());
    }
  }

  std::mt19937 rng(1);
  ThreadPool pool(0);
  MatMulContext mm;
  for (const std::string& dt_name : Split(dtypes)) {
    auto dt = DTypeFromName(dt_name);
    if (!dt || !gpu::MatVecSupports(*dt)) {
      std::printf("%s: not a GPU MatVec type\n", dt_name.c_str());
      continue;
    }
    for (const std::string& which : Split(shapes)) {
      for (const Shape& sh : Shapes(which)) {
        const uint64_t wbytes = *DTypeBytes(*dt, static_cast<uint64_t>(sh.n_out * sh.n_in));
        std::vector<uint8_t> w(wbytes);
        for (size_t i = 0; i < w.size(); i += 2) {  // small finite f16/bf16 values and scales
          const uint16_t h = *dt == DType::kBF16 ? F32ToBF16(0.01f) : F32ToF16(0.01f);
          std::memcpy(&w[i], &h, std::min<size_t>(2, w.size() - i));
        }
        std::vector<float> x(static_cast<size_t>(sh.n_in), 0.5f), y(static_cast<size_t>(sh.n_out));
        auto wb = d.Allocate(wbytes, gpu::MemoryKind::kDevice, sh.name);
        if (!wb.ok()) {
          std::printf("%s %s: %s\n", sh.name, dt_name.c_str(), wb.status().message().c_str());
          continue;
        }
        auto xb = d.Allocate(x.size() * 4, gpu::MemoryKind::kDevice, "x").value();
        auto yb = d.Allocate(y.size() * 4, gpu::MemoryKind::kDevice, "y").value();
        if (!d.Upload(wb.value(), 0, w.data(), wbytes).ok() || !d.Upload(xb, 0, x.data(), x.size() * 4).ok()) return 1;
        const gpu::WeightBuffer wv{&wb.value(), 0, *dt, sh.n_out, sh.n_in};
        const int batch = 10;  // dispatches per submission
        std::vector<double> tg, tc;
        for (int r = 0; r < reps; ++r) {
          const auto t0 = Clock::now();
          for (int i = 0; i < batch; ++i)
            if (!k.MatVec(wv, xb, yb, 1).ok()) return 1;
          if (!d.Sync().ok()) return 1;
          tg.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / batch);
          const auto t1 = Clock::now();
          MatMulGemv(mm, pool, WeightView{*dt, w.data(), sh.n_out, sh.n_in}, x.data(), 1, y.data());
          tc.push_back(std::chrono::duration<double>(Clock::now() - t1).count());
        }
        const double g = Median(tg), c = Median(tc);
        if (json)
          std::printf("{\"what\":\"gemv\",\"shape\":\"%s\",\"dtype\":\"%s\",\"bytes\":%llu,\"gpu_s\":%.7f,\"cpu_s\":%.7f}\n",
                      sh.name, dt_name.c_str(), (unsigned long long)wbytes, g, c);
        else
          std::printf("%-16s %-5s %8.1f MiB  gpu %8.3f ms %7.1f GB/s   cpu %8.3f ms %7.1f GB/s   gpu/cpu %.2fx\n",
                      sh.name, dt_name.c_str(), wbytes / 1048576.0, g * 1e3, wbytes / g / 1e9, c * 1e3,
                      wbytes / c / 1e9, c / g);
        if (rows > 1) {  // prefill: M rows at once
          std::vector<float> xm(static_cast<size_t>(rows * sh.n_in), 0.5f), ym(static_cast<size_t>(rows * sh.n_out));
          auto xmb = d.Allocate(xm.size() * 4, gpu::MemoryKind::kDevice, "x rows");
          auto ymb = d.Allocate(ym.size() * 4, gpu::MemoryKind::kDevice, "y rows");
          if (!xmb.ok() || !ymb.ok()) {
            std::printf("%s %s gemm: %s\n", sh.name, dt_name.c_str(),
                        (xmb.ok() ? ymb.status() : xmb.status()).message().c_str());
            continue;
          }
          if (!d.Upload(xmb.value(), 0, xm.data(), xm.size() * 4).ok()) return 1;
          std::vector<double> tgm, tcm;
          for (int r = 0; r < reps; ++r) {
            const auto t0 = Clock::now();
            if (!k.MatMul(wv, xmb.value(), ymb.value(), rows).ok() || !d.Sync().ok()) return 1;
            tgm.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
            const auto t1 = Clock::now();
            MatMul(mm, pool, WeightView{*dt, w.data(), sh.n_out, sh.n_in}, xm.data(), rows, ym.data());
            tcm.push_back(std::chrono::duration<double>(Clock::now() - t1).count());
          }
          const double gm = Median(tgm), cm = Median(tcm);
          const double flop = 2.0 * static_cast<double>(rows) * static_cast<double>(sh.n_out * sh.n_in);
          if (json)
            std::printf("{\"what\":\"gemm\",\"shape\":\"%s\",\"dtype\":\"%s\",\"rows\":%lld,\"gpu_s\":%.7f,\"cpu_s\":%.7f}\n",
                        sh.name, dt_name.c_str(), (long long)rows, gm, cm);
          else
            std::printf("%-16s %-5s m=%-4lld gpu %8.3f ms %7.1f GFLOP/s   cpu %8.3f ms %7.1f GFLOP/s   gpu/cpu %.2fx\n",
                        sh.name, dt_name.c_str(), (long long)rows, gm * 1e3, flop / gm / 1e9, cm * 1e3,
                        flop / cm / 1e9, cm / gm);
        }
      }
    }
  }
  return 0;
}
