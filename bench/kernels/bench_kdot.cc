// K-quant row dots, A/B in one process (issue 18, Q4_K_M decode): the library's DotRows
// (what MatMulGemv runs for m = 1) for Q4_K / Q6_K against frozen copies of the kernels main had before this change
// (vec_dot.cc at ade2bff), call by call in alternating rounds so the VM's noise hits
// both alike. Two regimes:
//   --rows small (default 256 rows × 2048: ~300-420 KiB, L2-resident): the kernel's
//     compute rate, one thread — what bounds a GEMV once memory is fast;
//   --rows large (e.g. 32768): a DRAM-sized matrix, rows split over --threads.
// Every result of both variants is compared bit for bit (the new kernels must not change
// a single bit: decode's numerics and llama.cpp's block order stay as they were).
//
//   bench_kdot [--type q4_k|q6_k] [--rows 256] [--n 2048] [--rounds 15] [--reps 20] [--threads 1]
//
// Prints one JSON line: medians of the rounds' GB/s (weight bytes / time) per variant.
#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/dtype.h"
#include "base/thread_pool.h"
#include "tensor/quant_blocks.h"
#include "tensor/quantize_act.h"
#include "tensor/vec_dot.h"
#include "kquant_before.h"

namespace spool {
namespace {

using namespace quant;
using Clock = std::chrono::steady_clock;

using bench_before::DotBefore;

// The library's DotRow behind a call the compiler cannot inline (as MatMulGemv called it).
[[gnu::noinline]] float DotRowCall(DType t, const void* w, const void* a, int64_t n) { return DotRow(t, w, a, n); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  std::string type = "q4_k";
  int64_t rows = 256, n = 2048;
  int rounds = 15, reps = 20, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--type") == 0) type = argv[i + 1];
    else if (std::strcmp(argv[i], "--rows") == 0) rows = std::atoll(argv[i + 1]);
    else if (std::strcmp(argv[i], "--n") == 0) n = std::atoll(argv[i + 1]);
    else if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  }
  if ((type != "q4_k" && type != "q6_k" && type != "q8_0" && type != "q4_1") || n <= 0 || n % 256 != 0 || rows <= 0) {
    std::fprintf(stderr, "expected --type q4_k|q6_k|q8_0|q4_1, --n a positive multiple of 256, --rows > 0\n");
    return 2;
  }
  const DType t = type == "q4_k" ? DType::kQ4_K : type == "q6_k" ? DType::kQ6_K : type == "q8_0" ? DType::kQ8_0 : DType::kQ4_1;
  // q8_0 / q4_1: their kernels did not change; "before" is the library's DotRow called per
  // row (main's m = 1 loop), "lib" DotRows — the A/B of the row loop alone.
  const bool kquant = t == DType::kQ4_K || t == DType::kQ6_K;
  const size_t row_bytes = *DTypeBytes(t, static_cast<uint64_t>(n)), bytes = row_bytes * static_cast<size_t>(rows);
  AlignedBuffer w(bytes, 64);
  std::mt19937 rng(11);
  for (size_t i = 0; i < bytes; i += 4) {
    const uint32_t r = rng();
    std::memcpy(w.data() + i, &r, std::min<size_t>(4, bytes - i));
  }
  const uint16_t d = F32ToF16(0.01f);
  const size_t blk = t == DType::kQ4_K ? 144 : t == DType::kQ6_K ? 210 : t == DType::kQ8_0 ? 34 : 20;
  for (size_t off = 0; off < bytes; off += blk) {
    if (t == DType::kQ8_0 || t == DType::kQ4_1) {
      std::memcpy(w.data() + off, &d, 2);
      if (t == DType::kQ4_1) std::memcpy(w.data() + off + 2, &d, 2);
    } else if (t == DType::kQ4_K) {
      std::memcpy(w.data() + off, &d, 2);
      std::memcpy(w.data() + off + 2, &d, 2);
    } else {
      std::memcpy(w.data() + off + 208, &d, 2);
    }
  }
  std::vector<float> x(static_cast<size_t>(n));
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  const ActFormat fmt = ActFormatFor(t);
  AlignedBuffer act(ActRowBytes(fmt, n), 64);
  PrepareActivationRow(fmt, x.data(), act.data(), n);

  std::vector<float> y_before(static_cast<size_t>(rows)), y_lib(static_cast<size_t>(rows));
  ThreadPool pool(threads);
  auto run = [&](bool lib, float* y) {
    pool.ParallelFor(static_cast<size_t>(rows), [&](size_t b, size_t e, int) {
      if (lib) return DotRows(t, w.data() + b * row_bytes, row_bytes, act.data(), n, static_cast<int64_t>(e - b), y + b);
      for (size_t r = b; r < e; ++r)
        y[r] = kquant ? DotBefore(t, w.data() + r * row_bytes, act.data(), n) : DotRowCall(t, w.data() + r * row_bytes, act.data(), n);
    });
  };
  run(false, y_before.data());
  run(true, y_lib.data());
  const bool same = std::memcmp(y_before.data(), y_lib.data(), y_lib.size() * sizeof(float)) == 0;
  std::vector<double> gb_before, gb_lib;
  for (int r = 0; r < rounds; ++r) {
    for (int v = 0; v < 2; ++v) {
      const bool lib = (r + v) % 2 == 1;  // alternate which goes first
      const auto t0 = Clock::now();
      for (int k = 0; k < reps; ++k) run(lib, lib ? y_lib.data() : y_before.data());
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      (lib ? gb_lib : gb_before).push_back(static_cast<double>(bytes) * reps / s / 1e9);
    }
  }
  const double b = Median(gb_before), l = Median(gb_lib);
  std::printf("{\"type\": \"%s\", \"rows\": %lld, \"n\": %lld, \"threads\": %d, \"rounds\": %d, \"mib\": %.2f, "
              "\"before_gb_s\": %.2f, \"lib_gb_s\": %.2f, \"lib_over_before\": %.3f, \"bit_identical\": %s}\n",
              type.c_str(), static_cast<long long>(rows), static_cast<long long>(n), threads, rounds, bytes / 1048576.0, b, l,
              l / b, same ? "true" : "false");
  return same ? 0 : 1;
}

}  // namespace
}  // namespace spool

int main(int argc, char** argv) { return spool::Main(argc, argv); }
