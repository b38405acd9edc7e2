// The GEMVs of whole decode steps, A/B in one process (issue 18): a Llama-3.2-1B-shaped
// stack of layers (q, k, v, o, gate, up, down per layer, then the output head) is run as
// one decode step would run it, m = 1, three ways in turn, step by step, so that the
// machine's noise (the 2-vCPU VM's memory bandwidth moves by 2× within minutes) hits all
// three alike:
//   static — main's m = 1 path before issue 18's second pass, rebuilt here: one fixed
//            block of rows per thread (ThreadPool::ParallelFor, grain 16), DotRow per row;
//   spool  — MatMulGemv as the library has it now;
//   before — (q4_k_m only) main's MatMulGemv at ade2bff, rebuilt here: the same guided
//            claims, DotRow per row with the Q4_K/Q6_K kernels of that commit
//            (kquant_before.h) — the A/B of the Q4_K_M decode pass's kernels;
//   read   — a plain 512-bit read of the same bytes, fixed blocks (the GEMV's speed of light).
// Prints medians of the per-step times, GB/s (weight bytes / step time) and the ratios.
// The output of `static`, `before` and `spool` is compared bit for bit after the first step.
//
//   bench_decode_gemv [--type bf16|q4_k_m] [--layers 6] [--head 1] [--steps 30] [--threads 2]
//
// q4_k_m mimics llama.cpp's Q4_K_M mix: Q4_K everywhere except attn_v, ffn_down of every
// other layer and the output head in Q6_K. Weights are random bytes with valid scales, on
// transparent huge pages as the engine's resident weights.
#include <sys/mman.h>

#include <immintrin.h>

#include <algorithm>
#include <atomic>
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
#include "tensor/vec_dot.h"
#include "kquant_before.h"

namespace spool {
namespace {

using Clock = std::chrono::steady_clock;

struct Matrix {
  DType t;
  int64_t n_out, n_in;
  AlignedBuffer w;
  size_t bytes;
};

// Random bytes; f16/bf16 scale fields set to small finite values so dots stay finite.
Matrix MakeMatrix(DType t, int64_t n_out, int64_t n_in, std::mt19937& rng) {
  Matrix m{t, n_out, n_in, {}, *DTypeBytes(t, static_cast<uint64_t>(n_out * n_in))};
  constexpr size_t kHuge = size_t{2} << 20;
  m.w.Reset(m.bytes, kHuge);
  madvise(m.w.data(), (m.bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
  uint8_t* b = m.w.data();
  for (size_t i = 0; i < m.bytes; i += 4) {
    const uint32_t r = rng();
    std::memcpy(b + i, &r, std::min<size_t>(4, m.bytes - i));
  }
  const uint16_t d = F32ToF16(0.01f);
  if (t == DType::kBF16) {
    uint16_t* p = m.w.as<uint16_t>();
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for (int64_t i = 0; i < n_out * n_in; ++i) p[i] = F32ToBF16(nd(rng));
  } else if (t == DType::kQ4_K) {  // 144-byte blocks: d, dmin first
    for (size_t off = 0; off < m.bytes; off += 144) {
      std::memcpy(b + off, &d, 2);
      std::memcpy(b + off + 2, &d, 2);
    }
  } else if (t == DType::kQ6_K) {  // 210-byte blocks: d last
    for (size_t off = 0; off < m.bytes; off += 210) std::memcpy(b + off + 208, &d, 2);
  }
  return m;
}

float ReadRows(const uint8_t* base, size_t row_bytes, size_t begin, size_t end) {
  __m512 acc = _mm512_setzero_ps();
  const size_t e = end * row_bytes;
  size_t i = begin * row_bytes;
  for (; i + 64 <= e; i += 64) acc = _mm512_add_ps(acc, _mm512_loadu_ps(reinterpret_cast<const float*>(base + i)));
  return _mm512_reduce_add_ps(acc);
}

// main's m = 1 GEMV before this change: activation prepared once, fixed split, DotRow.
void StaticGemv(ThreadPool& pool, AlignedBuffer& act, const Matrix& m, const float* x, float* y) {
  const ActFormat fmt = ActFormatFor(m.t);
  const size_t act_bytes = ActRowBytes(fmt, m.n_in);
  if (act.size() < act_bytes) act.Reset(act_bytes, 64);
  PrepareActivationRow(fmt, x, act.data(), m.n_in);
  const size_t row_bytes = m.bytes / static_cast<size_t>(m.n_out);
  pool.ParallelFor(
      static_cast<size_t>(m.n_out),
      [&](size_t b, size_t e, int) {
        for (size_t r = b; r < e; ++r) y[r] = DotRow(m.t, m.w.data() + r * row_bytes, act.data(), m.n_in);
      },
      /*grain=*/16);
}

// main's m = 1 quantised GEMV at ade2bff: guided claims (as ParallelRowsGuided: each claim
// 1/(2·threads) of the rows left, at least 16 KiB), DotRow per row, the old K-quant kernels.
void BeforeGemv(ThreadPool& pool, AlignedBuffer& act, const Matrix& m, const float* x, float* y) {
  const ActFormat fmt = ActFormatFor(m.t);
  const size_t act_bytes = ActRowBytes(fmt, m.n_in);
  if (act.size() < act_bytes) act.Reset(act_bytes, 64);
  PrepareActivationRow(fmt, x, act.data(), m.n_in);
  const size_t row_bytes = m.bytes / static_cast<size_t>(m.n_out), n = static_cast<size_t>(m.n_out);
  const size_t threads = static_cast<size_t>(pool.num_threads());
  const size_t min_rows = std::max<size_t>(1, (size_t{16} << 10) / row_bytes);
  auto rows = [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) y[r] = bench_before::DotBefore(m.t, m.w.data() + r * row_bytes, act.data(), m.n_in);
  };
  if (threads <= 1 || n < 2 * min_rows) return rows(0, n);
  std::atomic<size_t> next{0};
  pool.ParallelFor(threads, [&](size_t, size_t, int) {
    size_t cur = next.load(std::memory_order_relaxed);
    for (;;) {
      size_t take;
      do {
        if (cur >= n) return;
        take = std::min(n - cur, std::max(min_rows, (n - cur) / (2 * threads)));
      } while (!next.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed));
      rows(cur, cur + take);
      cur = next.load(std::memory_order_relaxed);
    }
  });
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  std::string type = "bf16";
  int layers = 6, steps = 30, threads = 2;
  bool head = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--type") == 0) type = argv[i + 1];
    else if (std::strcmp(argv[i], "--layers") == 0) layers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--head") == 0) head = std::atoi(argv[i + 1]) != 0;
    else if (std::strcmp(argv[i], "--steps") == 0) steps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  }
  const bool kq = type == "q4_k_m";
  if (!kq && type != "bf16") {
    std::fprintf(stderr, "--type: expected bf16 or q4_k_m, got %s\n", type.c_str());
    return 2;
  }
  const int64_t D = 2048, KV = 512, FF = 8192, V = 128256;
  std::mt19937 rng(7);
  std::vector<Matrix> ms;
  for (int l = 0; l < layers; ++l) {
    const DType base = kq ? DType::kQ4_K : DType::kBF16, six = kq ? DType::kQ6_K : DType::kBF16;
    ms.push_back(MakeMatrix(base, D, D, rng));                       // q
    ms.push_back(MakeMatrix(base, KV, D, rng));                      // k
    ms.push_back(MakeMatrix(six, KV, D, rng));                       // v
    ms.push_back(MakeMatrix(base, D, D, rng));                       // o
    ms.push_back(MakeMatrix(base, FF, D, rng));                      // gate
    ms.push_back(MakeMatrix(base, FF, D, rng));                      // up
    ms.push_back(MakeMatrix(l % 2 == 0 ? six : base, D, FF, rng));  // down
  }
  if (head) ms.push_back(MakeMatrix(kq ? DType::kQ6_K : DType::kBF16, V, D, rng));
  size_t total = 0;
  for (const Matrix& m : ms) total += m.bytes;
  std::vector<float> x(FF), y_static(V), y_spool(V), y_before(V);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  ThreadPool pool(threads);
  MatMulContext ctx;
  AlignedBuffer act;
  std::vector<float> sums(threads);
  std::vector<double> t_static, t_spool, t_read, t_before;
  bool same = true;
  for (int s = 0; s <= steps; ++s) {  // step 0 warms up (page faults) and checks the bits
    auto t0 = Clock::now();
    for (const Matrix& m : ms) StaticGemv(pool, act, m, x.data(), y_static.data());
    auto t1 = Clock::now();
    for (const Matrix& m : ms) {
      MatMulGemv(ctx, pool, {m.t, m.w.data(), m.n_out, m.n_in}, x.data(), 1, y_spool.data());
      if (s == 0) {
        StaticGemv(pool, act, m, x.data(), y_static.data());
        same = same && std::memcmp(y_static.data(), y_spool.data(), m.n_out * sizeof(float)) == 0;
        if (kq) {
          BeforeGemv(pool, act, m, x.data(), y_before.data());
          same = same && std::memcmp(y_before.data(), y_spool.data(), m.n_out * sizeof(float)) == 0;
        }
      }
    }
    auto t2 = Clock::now();
    for (const Matrix& m : ms) {
      const size_t row_bytes = m.bytes / static_cast<size_t>(m.n_out);
      pool.ParallelFor(
          static_cast<size_t>(m.n_out), [&](size_t b, size_t e, int ti) { sums[ti] += ReadRows(m.w.data(), row_bytes, b, e); },
          /*grain=*/16);
    }
    auto t3 = Clock::now();
    if (kq)
      for (const Matrix& m : ms) BeforeGemv(pool, act, m, x.data(), y_before.data());
    auto t4 = Clock::now();
    if (s == 0) continue;
    if (kq) t_before.push_back(std::chrono::duration<double>(t4 - t3).count());
    t_static.push_back(std::chrono::duration<double>(t1 - t0).count());
    t_spool.push_back(std::chrono::duration<double>(t2 - t1).count());
    t_read.push_back(std::chrono::duration<double>(t3 - t2).count());
  }
  const double a = Median(t_static), b = Median(t_spool), r = Median(t_read);
  const double bf = kq ? Median(t_before) : 0.0;
  std::printf("{\"type\": \"%s\", \"layers\": %d, \"head\": %d, \"threads\": %d, \"steps\": %d, \"weight_gb\": %.3f, "
              "\"static_ms\": %.2f, \"spool_ms\": %.2f, \"read_ms\": %.2f, \"static_gb_s\": %.1f, \"spool_gb_s\": %.1f, "
              "\"read_gb_s\": %.1f, \"spool_over_static\": %.3f, \"spool_of_read\": %.3f, \"static_of_read\": %.3f, "
              "\"before_ms\": %.2f, \"spool_over_before\": %.3f, \"bit_identical\": %s, \"check\": %g}\n",
              type.c_str(), layers, head ? 1 : 0, threads, steps, total / 1e9, a * 1e3, b * 1e3, r * 1e3, total / a / 1e9,
              total / b / 1e9, total / r / 1e9, a / b, r / b, r / a, bf * 1e3, kq ? bf / b : 0.0, same ? "true" : "false",
              static_cast<double>(sums[0]));
  return same ? 0 : 1;
}

}  // namespace
}  // namespace spool

int main(int argc, char** argv) { return spool::Main(argc, argv); }
