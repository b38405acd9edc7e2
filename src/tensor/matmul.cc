#include "tensor/matmul.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "base/check.h"
#include "tensor/gemm_int8.h"
#include "tensor/gemm_int8_kcol.h"
#include "tensor/matmul_internal.h"
#include "tensor/vec_dot.h"

namespace spool {

MatMulContext::MatMulContext() : impl_(std::make_unique<Impl>()) {}
MatMulContext::~MatMulContext() = default;

void EnsureSize(AlignedBuffer& buf, size_t bytes) {
  if (buf.size() < bytes) buf.Reset(bytes, 64);
}

namespace {
void CheckShapes(const WeightView& w, int64_t m) {
  const DTypeInfo& info = GetDTypeInfo(w.dtype);
  SPOOL_CHECK(w.dtype != DType::kI32 && w.dtype != DType::kU8);
  SPOOL_CHECK(w.n_out >= 0 && w.n_in >= 0 && m >= 0);
  SPOOL_CHECK_MSG(w.n_in % info.block_elems == 0, "n_in must be a whole number of blocks");
  SPOOL_CHECK(w.scales == nullptr || w.dtype == DType::kMXFP4);
  if (w.scales == nullptr)  // the split MXFP4 layout is bytes, any alignment
    SPOOL_CHECK(reinterpret_cast<uintptr_t>(w.data) % (w.dtype == DType::kF32 ? 4 : 2) == 0);
}
// ---- float weights, several activation rows per weight-row read -------------------
//
// Batched GEMV for f32/bf16/f16 weights (a decode step of m sequences): register tiles
// of 4 weight rows × 3 activation rows, so each weight chunk is loaded and widened once
// per 3 sequences and each activation chunk once per 4 weight rows. Every (weight row, activation
// row) dot uses exactly DotRow's float order (two accumulators over 32-element steps,
// masked tail into the first, then acc0 + acc1 and simd::ReduceAdd), so results are
// bit-identical to DotRow and independent of m (tests/tensor/matmul_test.cc).

inline __m512 WidenF32(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
inline __m512 WidenBF16(const uint16_t* p, __mmask16 mask) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
inline __m512 WidenF16(const uint16_t* p, __mmask16 mask) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p)); }

// out[r·RX + i] = w_r · x_i for RW weight rows (stride w_stride elements) and RX
// activation rows (stride x_stride), n elements. Each loaded weight chunk serves RX
// activation rows and each activation chunk RW weight rows (2·RW·RX accumulators live in
// registers), so the loads per FMA stay low enough for L2-resident activations.
template <typename T, __m512 (*Widen)(const T*, __mmask16), int RW, int RX>
void DotTile(const T* w, int64_t w_stride, const float* x, int64_t x_stride, int64_t n, float* out) {
  __m512 a0[RW][RX], a1[RW][RX];
#pragma GCC unroll 4
  for (int r = 0; r < RW; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < RX; ++i) a0[r][i] = a1[r][i] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    __m512 w0[RW], w1[RW];
#pragma GCC unroll 4
    for (int r = 0; r < RW; ++r) {
      w0[r] = Widen(w + r * w_stride + j, 0xFFFF);
      w1[r] = Widen(w + r * w_stride + j + 16, 0xFFFF);
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; ++i) {
      const __m512 x0 = _mm512_loadu_ps(x + i * x_stride + j), x1 = _mm512_loadu_ps(x + i * x_stride + j + 16);
#pragma GCC unroll 4
      for (int r = 0; r < RW; ++r) {
        a0[r][i] = _mm512_fmadd_ps(w0[r], x0, a0[r][i]);
        a1[r][i] = _mm512_fmadd_ps(w1[r], x1, a1[r][i]);
      }
    }
  }
  for (; j < n; j += 16) {
    const int64_t left = n - j;
    const __mmask16 mask = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
#pragma GCC unroll 4
    for (int r = 0; r < RW; ++r) {
      const __m512 w0 = Widen(w + r * w_stride + j, mask);
#pragma GCC unroll 4
      for (int i = 0; i < RX; ++i)
        a0[r][i] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(mask, x + i * x_stride + j), a0[r][i]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < RW; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < RX; ++i) out[r * RX + i] = simd::ReduceAdd(_mm512_add_ps(a0[r][i], a1[r][i]));
}

// y[i, r] for weight rows [begin, end) and all m activation rows, in tiles of 4 weight
// rows × 3 activation rows (edges with smaller tiles: same per-pair arithmetic).
template <typename T, __m512 (*Widen)(const T*, __mmask16)>
void GemvFloatRows(const WeightView& w, const float* x, int64_t m, float* y, size_t begin, size_t end) {
  const T* wdata = static_cast<const T*>(w.data);
  const int64_t k = w.n_in, n_out = w.n_out;
  constexpr int RW = 4, RX = 3;
  float tile[RW * RX];
  auto store = [&](int64_t r0, int64_t i0, int rw, int rx) {
    for (int r = 0; r < rw; ++r)
      for (int i = 0; i < rx; ++i) y[(i0 + i) * n_out + r0 + r] = tile[r * rx + i];
  };
  auto rows_of = [&](int64_t r0, int rw) {
    int64_t i0 = 0;
    for (; i0 + RX <= m; i0 += RX) {
      if (rw == RW) DotTile<T, Widen, RW, RX>(wdata + r0 * k, k, x + i0 * k, k, k, tile);
      else DotTile<T, Widen, 1, RX>(wdata + r0 * k, k, x + i0 * k, k, k, tile);
      store(r0, i0, rw, RX);
    }
    const int rest = static_cast<int>(m - i0);
    if (rest == 2) {
      if (rw == RW) DotTile<T, Widen, RW, 2>(wdata + r0 * k, k, x + i0 * k, k, k, tile);
      else DotTile<T, Widen, 1, 2>(wdata + r0 * k, k, x + i0 * k, k, k, tile);
      store(r0, i0, rw, 2);
    } else if (rest == 1) {
      if (rw == RW) DotTile<T, Widen, RW, 1>(wdata + r0 * k, k, x + i0 * k, k, k, tile);
      else DotTile<T, Widen, 1, 1>(wdata + r0 * k, k, x + i0 * k, k, k, tile);
      store(r0, i0, rw, 1);
    }
  };
  int64_t r0 = static_cast<int64_t>(begin);
  for (; r0 + RW <= static_cast<int64_t>(end); r0 += RW) rows_of(r0, RW);
  for (; r0 < static_cast<int64_t>(end); ++r0) rows_of(r0, 1);
}

// m = 1 with float weights: rows longer than this many elements (an f32 activation row
// past 16 KiB: the down projection's 32 KiB fills L1 and is re-read from L2 for every
// weight row) take GemvFloatRows' 4-row tiles, which load each activation chunk once per
// 4 weight rows; shorter rows take DotRow one at a time. Both are DotRow's arithmetic
// (DotTile with one activation row), so the choice changes no bits.
inline constexpr int64_t kFloatTileMinIn = 4096;

// Rows [0, n) of a GEMV over the pool's threads, handed out in guided chunks (each claim
// takes 1/(2·threads) of the rows still left, at least kGuidedMinChunkBytes of work) from
// one atomic counter instead of one fixed block per thread. Decode GEMVs are memory-bound
// and short (a 2 MiB k/v projection is ~60 µs), so a thread that starts late (woken from
// its spin) or runs slow (a busy sibling on the VM) would leave the other idle at the end
// of a fixed split; with claims the faster thread takes more rows. Which thread computes a
// row changes nothing in its result (each row is one DotRow call), so the numerics stay
// row-independent. `row_work_bytes`: bytes read per row (the chunk floor is counted in it).
inline constexpr size_t kGuidedMinChunkBytes = 16 << 10;
template <typename Fn>
void ParallelRowsGuided(ThreadPool& pool, size_t n, size_t row_work_bytes, const Fn& fn) {
  const size_t threads = static_cast<size_t>(pool.num_threads());
  const size_t min_rows = std::max<size_t>(1, kGuidedMinChunkBytes / std::max<size_t>(1, row_work_bytes));
  if (threads <= 1 || n < 2 * min_rows) return fn(0, n);
  std::atomic<size_t> next{0};
  pool.ParallelFor(threads, [&](size_t, size_t, int) {
    size_t cur = next.load(std::memory_order_relaxed);
    for (;;) {
      size_t take;
      do {
        if (cur >= n) return;
        take = std::min(n - cur, std::max(min_rows, (n - cur) / (2 * threads)));
      } while (!next.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed));
      fn(cur, cur + take);
      cur = next.load(std::memory_order_relaxed);
    }
  });
}

// The m activation rows in the format the integer kernels read (ctx's act buffer), or x
// itself for float weights. Each row is quantised on its own (the same bytes whichever
// thread does it); a prefill chunk's rows are split over the pool, a decode step's few
// rows stay on the caller's thread.
const uint8_t* PrepareRows(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m,
                           ActFormat fmt, size_t act_bytes) {
  if (fmt == ActFormat::kF32) return reinterpret_cast<const uint8_t*>(x);
  EnsureSize(ctx.impl().act, act_bytes * static_cast<size_t>(m));
  uint8_t* buf = ctx.impl().act.data();
  auto prepare = [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i)
      PrepareActivationRow(fmt, x + static_cast<int64_t>(i) * w.n_in, buf + i * act_bytes, w.n_in);
  };
  if (m >= 8) pool.ParallelFor(static_cast<size_t>(m), prepare);
  else prepare(0, static_cast<size_t>(m), 0);
  return buf;
}

}  // namespace

void MatMulKQuantPrefill(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m,
                         float* y) {
  CheckShapes(w, m);
  SPOOL_CHECK(GemmKColSupported(w.dtype));
  if (m == 0 || w.n_out == 0) return;
  const ActFormat fmt = ActFormatFor(w.dtype);
  const size_t act_bytes = ActRowBytes(fmt, w.n_in);
  const uint8_t* act = PrepareRows(ctx, pool, w, x, m, fmt, act_bytes);
  GemmKCol(pool, w, act, act_bytes, m, y, ctx.impl().kcol);
}

void MatMulGemv(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  CheckShapes(w, m);
  if (m == 0 || w.n_out == 0) return;
  const ActFormat fmt = ActFormatFor(w.dtype);
  const size_t act_bytes = ActRowBytes(fmt, w.n_in);
  const uint8_t* act = PrepareRows(ctx, pool, w, x, m, fmt, act_bytes);
  if (fmt == ActFormat::kF32 && m > 1) {
    pool.ParallelFor(
        static_cast<size_t>(w.n_out),
        [&](size_t begin, size_t end, int) {
          switch (w.dtype) {
            case DType::kF32: return GemvFloatRows<float, WidenF32>(w, x, m, y, begin, end);
            case DType::kBF16: return GemvFloatRows<uint16_t, WidenBF16>(w, x, m, y, begin, end);
            case DType::kF16: return GemvFloatRows<uint16_t, WidenF16>(w, x, m, y, begin, end);
            default: SPOOL_CHECK_MSG(false, "float GEMV: not a float weight type");
          }
        },
        /*grain=*/16);
    return;
  }
  if (m > 1 && GemmInt8Supported(w.dtype)) {  // register tiles, DotRow's numerics bit for bit
    GemmInt8Rows(pool, w, act, act_bytes, m, y);
    return;
  }
  const size_t row_bytes = *DTypeBytes(w.dtype, static_cast<uint64_t>(w.n_in));
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  if (fmt == ActFormat::kF32 && w.n_in > kFloatTileMinIn) {  // m == 1, long float rows
    ParallelRowsGuided(pool, static_cast<size_t>(w.n_out), row_bytes, [&](size_t begin, size_t end) {
      switch (w.dtype) {
        case DType::kF32: return GemvFloatRows<float, WidenF32>(w, x, 1, y, begin, end);
        case DType::kBF16: return GemvFloatRows<uint16_t, WidenBF16>(w, x, 1, y, begin, end);
        case DType::kF16: return GemvFloatRows<uint16_t, WidenF16>(w, x, 1, y, begin, end);
        default: SPOOL_CHECK_MSG(false, "float GEMV: not a float weight type");
      }
    });
    return;
  }
  if (w.scales != nullptr) {  // MXFP4, HF split layout: n_in / 2 nibble bytes and n_in / 32 scales per row
    const size_t nib = static_cast<size_t>(w.n_in / 2), sc = static_cast<size_t>(w.n_in / 32);
    pool.ParallelFor(
        static_cast<size_t>(w.n_out),
        [&](size_t begin, size_t end, int) {
          for (size_t r = begin; r < end; ++r)
            for (int64_t i = 0; i < m; ++i)
              y[i * w.n_out + static_cast<int64_t>(r)] =
                  DotMXFP4Split(wdata + r * nib, w.scales + r * sc, act + i * act_bytes, w.n_in);
        },
        /*grain=*/16);
    return;
  }
  ParallelRowsGuided(pool, static_cast<size_t>(w.n_out), row_bytes * static_cast<size_t>(m), [&](size_t begin, size_t end) {
    if (m == 1)  // DotRow per row, with the kernel's constants set up once per chunk
      return DotRows(w.dtype, wdata + begin * row_bytes, row_bytes, act, w.n_in, static_cast<int64_t>(end - begin), y + begin);
    for (size_t r = begin; r < end; ++r) {
      const void* wrow = wdata + r * row_bytes;
      for (int64_t i = 0; i < m; ++i)
        y[i * w.n_out + static_cast<int64_t>(r)] = DotRow(w.dtype, wrow, act + i * act_bytes, w.n_in);
    }
  });
}

void MatMul(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  if (m <= GemvMaxRows(w.dtype)) return MatMulGemv(ctx, pool, w, x, m, y);
  if (GemmKColSupported(w.dtype) && m >= kGemmKColMinRows) return MatMulKQuantPrefill(ctx, pool, w, x, m, y);
  MatMulGemm(ctx, pool, w, x, m, y);
}

void MatMulRef(const WeightView& w, const float* x, int64_t m, float* y) {
  CheckShapes(w, m);
  const ActFormat fmt = ActFormatFor(w.dtype);
  const size_t act_bytes = ActRowBytes(fmt, w.n_in);
  std::vector<uint8_t> act(act_bytes + 64);
  const size_t row_bytes = *DTypeBytes(w.dtype, static_cast<uint64_t>(w.n_in));
  for (int64_t i = 0; i < m; ++i) {
    // Align the prepared row like AlignedBuffer would (Q8_K holds a float).
    uint8_t* a = act.data() + (64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64;
    PrepareActivationRowRef(fmt, x + i * w.n_in, a, w.n_in);
    for (int64_t r = 0; r < w.n_out; ++r)
      y[i * w.n_out + r] =
          w.scales != nullptr
              ? DotMXFP4SplitRef(static_cast<const uint8_t*>(w.data) + r * (w.n_in / 2), w.scales + r * (w.n_in / 32), a,
                                 w.n_in)
              : DotRowRef(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes, a, w.n_in);
  }
}

}  // namespace spool
