// Micro-benchmarks of spool_tensor's matmuls at Llama-3.2-1B shapes.
//   GEMV (m=1): GB/s = weight bytes / time. Copies of the weights are cycled so the
//   working set (>= 256 MiB) exceeds the last-level cache: this measures DRAM streaming.
//   Each GEMV call alternates with a plain read of another copy (same threads, same row
//   split): "gemv/read" is the GEMV's fraction of the bandwidth it could have (issue 18).
//   GEMM (m=512, bf16): GFLOP/s = 2·m·n_out·n_in / time.
// Usage: bench_kernels [--threads N] [--seconds S] [--gemv-only 1]
#include <sys/mman.h>

#include <immintrin.h>

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
#include "tensor/matmul.h"

namespace spool {
namespace {

using Clock = std::chrono::steady_clock;

// Random stored weights: random bytes, then valid small f16/bf16 scale fields.
AlignedBuffer RandomWeights(DType t, int64_t n_out, int64_t n_in, std::mt19937& rng) {
  const size_t bytes = *DTypeBytes(t, static_cast<uint64_t>(n_out * n_in));
  // On transparent huge pages, as the engine's resident weights (runtime/streaming_weights.cc).
  constexpr size_t kHuge = size_t{2} << 20;
  AlignedBuffer b(bytes, kHuge);
  madvise(b.data(), (bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
  for (size_t i = 0; i < bytes; i += 4) {
    const uint32_t r = rng();
    std::memcpy(b.data() + i, &r, std::min<size_t>(4, bytes - i));
  }
  if (t == DType::kBF16) {
    uint16_t* p = b.as<uint16_t>();
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for (int64_t i = 0; i < n_out * n_in; ++i) p[i] = F32ToBF16(nd(rng));
  } else if (t == DType::kQ8_0 || t == DType::kQ4_K) {  // finite f16 scales (d; Q4_K: d, dmin)
    const size_t block = t == DType::kQ8_0 ? 34 : 144;
    for (size_t off = 0; off < bytes; off += block) {
      const uint16_t d = F32ToF16(0.01f);
      std::memcpy(b.data() + off, &d, 2);
      if (t == DType::kQ4_K) std::memcpy(b.data() + off + 2, &d, 2);
    }
  } else if (t == DType::kQ4_1) {  // d and m of each 20-byte block
    for (size_t off = 0; off < bytes; off += 20) {
      const uint16_t d = F32ToF16(0.01f), m = F32ToF16(-0.08f);
      std::memcpy(b.data() + off, &d, 2);
      std::memcpy(b.data() + off + 2, &m, 2);
    }
  }
  return b;
}

struct Result {
  double seconds_per_call;
  int calls;
};

template <typename Fn>
Result TimeIt(double min_seconds, Fn fn) {
  fn(0);  // warm-up (oneDNN primitive creation, page faults)
  int calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < min_seconds) {
    fn(++calls);
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return {elapsed / calls, calls};
}

// Reads rows [begin, end) of `row_bytes` each with 512-bit loads, front to back: the
// access pattern bench/engine/bench_gemv_bw found fastest (one stream per thread).
float ReadRows(const uint8_t* base, size_t row_bytes, size_t begin, size_t end) {
  __m512 acc = _mm512_setzero_ps();
  const size_t b = begin * row_bytes, e = end * row_bytes;
  size_t i = b;
  for (; i + 64 <= e; i += 64) acc = _mm512_add_ps(acc, _mm512_loadu_ps(reinterpret_cast<const float*>(base + i)));
  float tail = 0;
  for (; i < e; ++i) tail += base[i];
  return _mm512_reduce_add_ps(acc) + tail;
}

// m = 1 GEMVs are timed call by call, alternating with a plain read of the same bytes
// split over the same threads (the GEMV's own speed of light on this buffer, in the
// same seconds, so machine noise hits both): prints both medians and their ratio.
void BenchGemv(ThreadPool& pool, MatMulContext& ctx, DType t, const char* name, int64_t n_out, int64_t n_in,
               double seconds, int64_t m = 1) {
  std::mt19937 rng(1);
  const size_t bytes = *DTypeBytes(t, static_cast<uint64_t>(n_out * n_in));
  const int copies = static_cast<int>(std::max<size_t>(1, (256u << 20) / bytes + 1));
  std::vector<AlignedBuffer> w;
  for (int i = 0; i < copies; ++i) w.push_back(RandomWeights(t, n_out, n_in, rng));
  std::vector<float> x(m * n_in), y(m * n_out);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  if (m == 1) {
    const size_t row_bytes = bytes / static_cast<size_t>(n_out);
    std::vector<double> t_gemv, t_read;
    std::vector<float> sums(pool.num_threads());
    int call = 0;
    const auto start = Clock::now();
    while (std::chrono::duration<double>(Clock::now() - start).count() < seconds || t_gemv.size() < 5) {
      const uint8_t* wb = w[call++ % copies].data();
      auto t0 = Clock::now();
      MatMulGemv(ctx, pool, {t, wb, n_out, n_in}, x.data(), 1, y.data());
      auto t1 = Clock::now();
      const uint8_t* rb = w[call++ % copies].data();
      pool.ParallelFor(static_cast<size_t>(n_out),
                       [&](size_t b, size_t e, int ti) { sums[ti] += ReadRows(rb, row_bytes, b, e); }, /*grain=*/16);
      auto t2 = Clock::now();
      t_gemv.push_back(std::chrono::duration<double>(t1 - t0).count());
      t_read.push_back(std::chrono::duration<double>(t2 - t1).count());
    }
    std::sort(t_gemv.begin(), t_gemv.end());
    std::sort(t_read.begin(), t_read.end());
    const double g = t_gemv[t_gemv.size() / 2], rd = t_read[t_read.size() / 2];
    std::printf("gemv %-5s %-10s [%6lld x %5lld] m=1   %8.1f us  %6.1f GB/s  read %6.1f GB/s  gemv/read %.2f  (%zu calls, check %g)\n",
                DTypeName(t).data(), name, static_cast<long long>(n_out), static_cast<long long>(n_in), g * 1e6,
                static_cast<double>(bytes) / g / 1e9, static_cast<double>(bytes) / rd / 1e9, rd / g, t_gemv.size(),
                static_cast<double>(sums[0]));
    return;
  }
  const Result r = TimeIt(seconds, [&](int call) {
    MatMulGemv(ctx, pool, {t, w[call % copies].data(), n_out, n_in}, x.data(), m, y.data());
  });
  std::printf("gemv %-5s %-10s [%6lld x %5lld] m=%-3lld %8.1f us  %6.1f GB/s  %7.1f GFLOP/s\n", DTypeName(t).data(), name,
              static_cast<long long>(n_out), static_cast<long long>(n_in), static_cast<long long>(m),
              r.seconds_per_call * 1e6, static_cast<double>(bytes) / r.seconds_per_call / 1e9,
              2.0 * m * n_out * n_in / r.seconds_per_call / 1e9);
}

void BenchGemm(ThreadPool& pool, MatMulContext& ctx, DType t, const char* name, int64_t n_out, int64_t n_in,
               int64_t m, double seconds) {
  std::mt19937 rng(2);
  AlignedBuffer w = RandomWeights(t, n_out, n_in, rng);
  std::vector<float> x(m * n_in), y(m * n_out);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  const Result r = TimeIt(seconds, [&](int) { MatMulGemm(ctx, pool, {t, w.data(), n_out, n_in}, x.data(), m, y.data()); });
  std::printf("gemm %-5s %-10s [%6lld x %5lld] m=%lld %8.1f ms  %7.1f GFLOP/s\n", DTypeName(t).data(), name,
              static_cast<long long>(n_out), static_cast<long long>(n_in), static_cast<long long>(m),
              r.seconds_per_call * 1e3, 2.0 * m * n_out * n_in / r.seconds_per_call / 1e9);
}

int Main(int argc, char** argv) {
  int threads = 2;
  double seconds = 1.0;
  bool gemv_only = false;  // stop after the m = 1 GEMVs
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
    else if (std::strcmp(argv[i], "--gemv-only") == 0) gemv_only = std::atoi(argv[i + 1]) != 0;
  }
  ThreadPool pool(threads);
  MatMulContext ctx;
  std::printf("threads=%d (Llama-3.2-1B shapes: dim 2048, kv 512, ffn 8192)\n", threads);
  struct Shape {
    const char* name;
    int64_t n_out, n_in;
  };
  const Shape shapes[] = {{"q/o", 2048, 2048}, {"k/v", 512, 2048}, {"gate/up", 8192, 2048}, {"down", 2048, 8192}};
  for (DType t : {DType::kBF16, DType::kQ8_0, DType::kQ4_K, DType::kQ4_1})
    for (const Shape& s : shapes) BenchGemv(pool, ctx, t, s.name, s.n_out, s.n_in, seconds);
  // Llama-3.1-8B decode shapes (dim 4096, kv 1024, ffn 14336).
  const Shape shapes_8b[] = {{"8b q/o", 4096, 4096}, {"8b k/v", 1024, 4096}, {"8b gate/up", 14336, 4096},
                             {"8b down", 4096, 14336}};
  for (DType t : {DType::kBF16, DType::kQ8_0, DType::kQ4_K})
    for (const Shape& s : shapes_8b) BenchGemv(pool, ctx, t, s.name, s.n_out, s.n_in, seconds);
  if (gemv_only) return 0;
  // Batched decode (one step of m sequences): the float GEMV reads each weight once.
  for (int64_t m : {4, 16, 64}) BenchGemv(pool, ctx, DType::kBF16, "gate/up", 8192, 2048, seconds, m);
  // Llama-3.1-8B shapes (dim 4096, ffn 14336): the batch benchmark's compute-bound steps.
  for (int64_t m : {1, 16, 64}) {
    BenchGemv(pool, ctx, DType::kBF16, "8b up", 14336, 4096, seconds, m);
    BenchGemv(pool, ctx, DType::kBF16, "8b down", 4096, 14336, seconds, m);
  }
  for (DType t : {DType::kBF16, DType::kQ4_1})
    for (const Shape& s : shapes) BenchGemm(pool, ctx, t, s.name, s.n_out, s.n_in, 512, seconds);
  // Small prefill chunks (many short prompts in one step): GEMM vs the batched GEMV.
  for (int64_t m : {9, 16, 32, 64, 128}) {
    BenchGemm(pool, ctx, DType::kBF16, "8b up", 14336, 4096, m, seconds);
    BenchGemv(pool, ctx, DType::kBF16, "8b up", 14336, 4096, seconds, m);
  }
  return 0;
}

}  // namespace
}  // namespace spool

int main(int argc, char** argv) { return spool::Main(argc, argv); }
