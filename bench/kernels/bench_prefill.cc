// Prefill kernels against the machine's compute peak (issue 18 items 2 and 3).
//   peak:      f32 FMA (vfmadd231ps zmm) and bf16 dot (vdpbf16ps zmm) GFLOP/s on every
//              thread, 12 independent accumulators per thread (latency hidden).
//   attention: the last 512-query chunk of a C-token prefill at Llama-3.2-1B shapes
//              (32 heads, 8 kv heads, head_dim 64, bf16 KV in 256-token pages), f32 FMA
//              kernel (AttentionFoldPage) vs bf16, a page per call (AttentionFoldPageBf16)
//              and in spans of pages as the engine folds them (AttentionBf16Span). GFLOP/s =
//              4·head_dim·n_head·Σ visible keys / time (Q·Kᵀ and P·V, causal).
//   quantised: m = 512 activation rows × Llama-3.2-1B projection shapes: the tiled integer
//              GEMM (MatMulGemv, m > 1), the same rows one at a time (the per-row GEMV
//              prefill used before), and tiles dequantised to bf16 into oneDNN (MatMulGemm);
//              K-quants also the K-quant prefill GEMM (MatMulKQuantPrefill, gemm_int8_kcol.h).
// Usage: bench_prefill [--threads N] [--seconds S] [--ctx C1,C2,...] [--types q4_k,q6_k,...]
//                      [--only-tiles 1]   (quantised: the tiled kernel only, not the slow alternatives)
//                      [--int8-peak 1]    (also the integer dot peaks: vpdpbusd zmm/ymm, vpmaddubsw+vpdpwssd)
#include <immintrin.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/dtype.h"
#include "base/thread_pool.h"
#include "tensor/attention.h"
#include "tensor/attention_bf16.h"
#include "tensor/matmul.h"

namespace spool {
namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
double SecondsPerCall(double min_seconds, Fn fn) {
  fn();  // warm-up
  int calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < min_seconds) {
    fn();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return elapsed / calls;
}

// ---- compute peak ----------------------------------------------------------------------

constexpr int kAcc = 12;
constexpr int64_t kPeakIters = 2'000'000;

__attribute__((noinline)) float PeakFma(int64_t iters) {
  __m512 a[kAcc];
  for (int i = 0; i < kAcc; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kAcc; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  }
  __m512 s = a[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

#if defined(__AVX512BF16__)
__attribute__((noinline)) float PeakBf16(int64_t iters) {
  __m512 a[kAcc];
  for (int i = 0; i < kAcc; ++i) a[i] = _mm512_setzero_ps();
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(3e-3f));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kAcc; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
  }
  __m512 s = a[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
#endif

// Integer dot peaks (what the quantised tiles are built of), 12 independent chains:
// vpdpbusd on 512- and 256-bit registers (64 / 32 int8 products each), and the pair
// vpmaddubsw + vpdpwssd on 256-bit registers (32 products per pair). "GOP/s" counts a
// product and its add as 2 operations, like GFLOP/s.
template <int kKind>
__attribute__((noinline)) int PeakInt8(int64_t iters) {
  __m512i a[kAcc];
  for (int i = 0; i < kAcc; ++i) a[i] = _mm512_set1_epi32(i);
  const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(5);
  const __m256i x2 = _mm256_set1_epi8(3), y2 = _mm256_set1_epi8(5), s2 = _mm256_set1_epi16(1);  // x2: vpdpbusd ymm
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kAcc; ++i) {
      if constexpr (kKind == 0) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
      else if constexpr (kKind == 1) a[i] = _mm512_castsi256_si512(_mm256_dpbusd_epi32(_mm512_castsi512_si256(a[i]), x2, y2));
      else a[i] = _mm512_castsi256_si512(_mm256_dpwssd_epi32(_mm512_castsi512_si256(a[i]), _mm256_maddubs_epi16(_mm512_castsi512_si256(a[i]), y2), s2));
    }
  }
  __m512i s = a[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_epi32(s, a[i]);
  return _mm512_reduce_add_epi32(s);
}

void BenchPeak(ThreadPool& pool, double seconds) {
  const int n = pool.num_threads();
  volatile float sink = 0;
  auto run = [&](float (*fn)(int64_t)) {
    return SecondsPerCall(seconds, [&] {
      pool.ParallelFor(static_cast<size_t>(n), [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; ++i) sink = sink + fn(kPeakIters);
      });
    });
  };
  const double per_thread_iter = static_cast<double>(kPeakIters) * kAcc * n;
  const double fma = per_thread_iter * 32 / run(PeakFma) / 1e9;  // 16 lanes × 2 flops
  std::printf("peak f32 FMA   %8.1f GFLOP/s (%d threads)\n", fma, n);
#if defined(__AVX512BF16__)
  if (AttentionBf16Supported()) {
    const double bf = per_thread_iter * 64 / run(PeakBf16) / 1e9;  // 16 lanes × 2 pairs × 2 flops
    std::printf("peak bf16 dot  %8.1f GFLOP/s (%d threads)\n", bf, n);
  }
#endif
}

void BenchPeakInt8(ThreadPool& pool, double seconds) {
  const int n = pool.num_threads();
  volatile int sink = 0;
  auto run = [&](int (*fn)(int64_t)) {
    return SecondsPerCall(seconds, [&] {
      pool.ParallelFor(static_cast<size_t>(n), [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; ++i) sink = sink + fn(kPeakIters);
      });
    });
  };
  const double per = static_cast<double>(kPeakIters) * kAcc * n;
  std::printf("peak int8 vpdpbusd zmm      %8.1f GOP/s (%d threads)\n", per * 128 / run(PeakInt8<0>) / 1e9, n);
  std::printf("peak int8 vpdpbusd ymm      %8.1f GOP/s\n", per * 64 / run(PeakInt8<1>) / 1e9);
  std::printf("peak int8 maddubs+dpwssd ymm %7.1f GOP/s\n", per * 64 / run(PeakInt8<2>) / 1e9);
}

// ---- attention -------------------------------------------------------------------------

void BenchAttention(ThreadPool& pool, double seconds, int64_t ctx) {
  const int64_t nh = 32, nkv = 8, d = 64, n_q = 512, page = 256, row = nkv * d;
  const AttentionShape shape{nh, nkv, d, 1.0f / 8.0f};
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<uint16_t> k(ctx * row), v(ctx * row);
  for (auto& x : k) x = F32ToBF16(nd(rng));
  for (auto& x : v) x = F32ToBF16(nd(rng));
  std::vector<float> q(n_q * nh * d), out(q.size());
  for (auto& x : q) x = nd(rng);
  std::vector<int64_t> pos(n_q);
  double keys = 0;
  for (int64_t i = 0; i < n_q; ++i) keys += static_cast<double>((pos[i] = ctx - n_q + i) + 1);
  const double flops = 4.0 * d * nh * keys;
  AttentionState st;
  AttentionBf16Span span;
  enum class Kernel { kF32, kBf16Page, kBf16Span };
  auto run = [&](Kernel kernel) {
    return SecondsPerCall(seconds, [&] {
      st.Reset(n_q, shape);
      if (kernel == Kernel::kBf16Span) span.Begin(shape, pos.data(), n_q);
      for (int64_t t0 = 0; t0 < ctx; t0 += page) {
        const KvPageView pv{DType::kBF16, k.data() + t0 * row, v.data() + t0 * row, std::min(page, ctx - t0), t0};
        if (kernel == Kernel::kBf16Span) {  // as the engine's prefill (transformer.cc)
          if (!span.Add(pool, pv)) {
            span.Fold(pool, q.data(), st);
            span.Add(pool, pv);
          }
        } else if (kernel == Kernel::kBf16Page) {
          AttentionFoldPageBf16(pool, shape, q.data(), pos.data(), n_q, pv, st);
        } else {
          AttentionFoldPage(pool, shape, q.data(), pos.data(), n_q, pv, st);
        }
      }
      if (kernel == Kernel::kBf16Span) span.Fold(pool, q.data(), st);
      AttentionFinalize(shape, st, out.data());
    });
  };
  const double f32 = run(Kernel::kF32);
  std::printf("attention f32  ctx %6lld  512 queries  %8.1f ms  %7.1f GFLOP/s\n", static_cast<long long>(ctx),
              f32 * 1e3, flops / f32 / 1e9);
  if (AttentionBf16Supported()) {
    const double bf = run(Kernel::kBf16Page);
    std::printf("attention bf16 ctx %6lld  512 queries  %8.1f ms  %7.1f GFLOP/s  (%.2fx f32; a page per call)\n",
                static_cast<long long>(ctx), bf * 1e3, flops / bf / 1e9, f32 / bf);
    const double sp = run(Kernel::kBf16Span);
    std::printf("attention bf16 ctx %6lld  512 queries  %8.1f ms  %7.1f GFLOP/s  (%.2fx f32; spans of %lld keys)\n",
                static_cast<long long>(ctx), sp * 1e3, flops / sp / 1e9, f32 / sp,
                static_cast<long long>(AttentionBf16Span::kDefaultMaxKeys));
  }
}

// ---- quantised prefill matmuls ----------------------------------------------------------

AlignedBuffer RandomQ(DType t, int64_t n, std::mt19937& rng) {
  const size_t bytes = *DTypeBytes(t, static_cast<uint64_t>(n));
  AlignedBuffer b(bytes, 64);
  for (size_t i = 0; i < bytes; ++i) b.data()[i] = static_cast<uint8_t>(rng());
  // Valid small f16 scales in every block (d, and m / dmin where the type has one).
  const size_t blk = *DTypeBytes(t, GetDTypeInfo(t).block_elems);
  const bool has_m = t == DType::kQ4_1 || t == DType::kQ5_1 || t == DType::kQ4_K || t == DType::kQ5_K;
  const size_t d_at = t == DType::kQ6_K ? blk - 2 : 0;  // Q6_K stores d last
  for (size_t off = 0; off < bytes; off += blk) {
    const uint16_t d = F32ToF16(0.01f), m = F32ToF16(-0.08f);
    std::memcpy(b.data() + off + d_at, &d, 2);
    if (has_m) std::memcpy(b.data() + off + 2, &m, 2);
  }
  return b;
}

void BenchQuant(ThreadPool& pool, MatMulContext& ctx, double seconds, DType t, const char* name, int64_t n_out,
                int64_t n_in, bool only_tiles) {
  const int64_t m = 512;
  std::mt19937 rng(5);
  AlignedBuffer w = RandomQ(t, n_out * n_in, rng);
  std::normal_distribution<float> nd;
  std::vector<float> x(m * n_in), y(m * n_out);
  for (auto& v : x) v = nd(rng);
  const WeightView wv{t, w.data(), n_out, n_in};
  const double flops = 2.0 * m * n_out * n_in;
  const double tiled = SecondsPerCall(seconds, [&] { MatMulGemv(ctx, pool, wv, x.data(), m, y.data()); });
  // K-quants: also the prefill GEMM MatMul takes for them (llama.cpp's prefill numerics).
  const bool kq = GemvMaxRows(t) == kGemvMaxRowsKQuant;
  const double kcol =
      kq ? SecondsPerCall(seconds, [&] { MatMulKQuantPrefill(ctx, pool, wv, x.data(), m, y.data()); }) : 0.0;
  if (kq)
    std::printf("%-5s %-8s [%5lld x %5lld] m=512  k-quant prefill GEMM %7.1f ms %6.1f GFLOP/s  (%.2fx int8 tiles)\n",
                DTypeName(t).data(), name, static_cast<long long>(n_out), static_cast<long long>(n_in), kcol * 1e3,
                flops / kcol / 1e9, tiled / kcol);
  if (only_tiles) {
    std::printf("%-5s %-8s [%5lld x %5lld] m=512  int8 tiles %7.1f ms %6.1f GFLOP/s\n", DTypeName(t).data(), name,
                static_cast<long long>(n_out), static_cast<long long>(n_in), tiled * 1e3, flops / tiled / 1e9);
    return;
  }
  const double per_row = SecondsPerCall(seconds, [&] {
    for (int64_t i = 0; i < m; ++i) MatMulGemv(ctx, pool, wv, x.data() + i * n_in, 1, y.data() + i * n_out);
  });
  const double gemm = SecondsPerCall(seconds, [&] { MatMulGemm(ctx, pool, wv, x.data(), m, y.data()); });
  std::printf("%-5s %-8s [%5lld x %5lld] m=512  int8 tiles %7.1f ms %6.1f GFLOP/s | per-row GEMV %7.1f ms %6.1f | "
              "bf16 tiles+oneDNN %7.1f ms %6.1f\n",
              DTypeName(t).data(), name, static_cast<long long>(n_out), static_cast<long long>(n_in), tiled * 1e3,
              flops / tiled / 1e9, per_row * 1e3, flops / per_row / 1e9, gemm * 1e3, flops / gemm / 1e9);
}

int Main(int argc, char** argv) {
  int threads = 2;
  double seconds = 1.0;
  std::vector<int64_t> ctxs = {4096, 8192};
  std::vector<DType> types = {DType::kQ4_1, DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K};
  bool only_tiles = false, int8_peak = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
    else if (std::strcmp(argv[i], "--only-tiles") == 0) only_tiles = std::atoi(argv[i + 1]) != 0;
    else if (std::strcmp(argv[i], "--int8-peak") == 0) int8_peak = std::atoi(argv[i + 1]) != 0;
    else if (std::strcmp(argv[i], "--types") == 0) {
      types.clear();
      std::string list = argv[i + 1];
      for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        const std::string name = list.substr(at, comma - at);
        at = comma + 1;
        if (name.empty()) continue;
        const auto t = DTypeFromName(name);
        if (!t) {
          std::fprintf(stderr, "bench_prefill: --types: unknown type '%s'\n", name.c_str());
          return 2;
        }
        types.push_back(*t);
      }
    } else if (std::strcmp(argv[i], "--ctx") == 0) {
      ctxs.clear();
      for (const char* p = argv[i + 1]; *p;) {
        char* end;
        ctxs.push_back(std::strtoll(p, &end, 10));
        p = *end ? end + 1 : end;
      }
    }
  }
  ThreadPool pool(threads);
  MatMulContext ctx;
  BenchPeak(pool, seconds);
  if (int8_peak) BenchPeakInt8(pool, seconds);
  for (int64_t c : ctxs) BenchAttention(pool, seconds, c);
  for (DType t : types) {
    BenchQuant(pool, ctx, seconds, t, "q/o", 2048, 2048, only_tiles);
    BenchQuant(pool, ctx, seconds, t, "gate/up", 8192, 2048, only_tiles);
    BenchQuant(pool, ctx, seconds, t, "down", 2048, 8192, only_tiles);
  }
  BenchPeak(pool, seconds);  // again: the peak drifts with the machine's load
  return 0;
}

}  // namespace
}  // namespace spool

int main(int argc, char** argv) { return spool::Main(argc, argv); }
