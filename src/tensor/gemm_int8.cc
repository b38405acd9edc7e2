// Register-tiled integer GEMM with DotRow's numerics (see gemm_int8.h). AVX-512 VL +
// VNNI (256-bit vpdpbusd), F16C; the build uses -march=native like vec_dot.cc.
#include "tensor/gemm_int8.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "tensor/gemm_int8_k.h"
#include "tensor/quant_blocks.h"

namespace spool {
namespace {

using namespace quant;

inline float F(uint16_t h) { return _cvtsh_ss(h); }

// The 32 4-bit values of a Q4/Q5 block in element order (low nibbles, then high): as vec_dot.cc.
inline __m256i Nibbles32(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}
inline __m256i AddHighBit(__m256i w, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return _mm256_mask_add_epi8(w, static_cast<__mmask32>(bits), w, _mm256_set1_epi8(16));
}
inline __m256i LoadQ8(const int8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }
// -c · (Σ of each lane's 4 activation bytes): the integer correction that turns the dot of
// unsigned stored codes u = q + c into the dot of q. Exact, as is every lane sum below.
inline __m256i NegBias(__m256i x, char c) {
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(c), x));
}

// Per type: Unpack gives the block's codes as unsigned bytes u, Bias the lanes to add so
// that bias + Σ u·x is the lane sum DotRow forms (Σ (q − 8)·x for Q4_0, Σ w·x for Q8_0).
struct Q4_0T {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  static constexpr bool kOffsets = false;
  static __m256i Unpack(const W& b) { return Nibbles32(b.qs); }
  static __m256i Bias(__m256i x) { return NegBias(x, 8); }
};
struct Q5_0T {
  using W = BlockQ5_0;
  using A = BlockQ8_0;
  static constexpr bool kOffsets = false;
  static __m256i Unpack(const W& b) { return AddHighBit(Nibbles32(b.qs), b.qh); }
  static __m256i Bias(__m256i x) { return NegBias(x, 16); }
};
struct Q8_0T {
  using W = BlockQ8_0;
  using A = BlockQ8_0;
  static constexpr bool kOffsets = false;
  // w + 128 as an unsigned byte (flip the sign bit).
  static __m256i Unpack(const W& b) {
    return _mm256_xor_si256(LoadQ8(b.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static __m256i Bias(__m256i x) { return NegBias(x, static_cast<char>(0x80)); }
};
struct Q4_1T {
  using W = BlockQ4_1;
  using A = BlockQ8_1;
  static constexpr bool kOffsets = true;
  static __m256i Unpack(const W& b) { return Nibbles32(b.qs); }
  static __m256i Bias(__m256i) { return _mm256_setzero_si256(); }
};
struct Q5_1T {
  using W = BlockQ5_1;
  using A = BlockQ8_1;
  static constexpr bool kOffsets = true;
  static __m256i Unpack(const W& b) { return AddHighBit(Nibbles32(b.qs), b.qh); }
  static __m256i Bias(__m256i) { return _mm256_setzero_si256(); }
};

// out[r·MR + i] = DotRow(W row r, act row i) for NR weight rows × MR activation rows.
// w: NR rows, w_stride bytes apart; a: MR prepared rows, a_stride bytes apart; nb blocks.
template <class T, int NR, int MR>
void Tile(const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, int64_t nb, float* out) {
  __m256 acc[NR][MR];
  float off[NR][MR];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      acc[r][i] = _mm256_setzero_ps();
      off[r][i] = 0.0f;
    }
  const typename T::W* wr[NR];
  const typename T::A* ar[MR];
  for (int r = 0; r < NR; ++r) wr[r] = reinterpret_cast<const typename T::W*>(w + r * w_stride);
  for (int i = 0; i < MR; ++i) ar[i] = reinterpret_cast<const typename T::A*>(a + i * a_stride);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i u[NR];
    float dw[NR], mw[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      u[r] = T::Unpack(wr[r][b]);
      dw[r] = F(wr[r][b].d);
      if constexpr (T::kOffsets) mw[r] = F(wr[r][b].m);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i x = LoadQ8(ar[i][b].qs);
      const __m256i bias = T::Bias(x);
      const float dx = F(ar[i][b].d);
      float sx = 0.0f;
      if constexpr (T::kOffsets) sx = F(ar[i][b].s);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        if constexpr (T::kOffsets) off[r][i] += mw[r] * sx;  // DotRow: offsets += F(m)·F(s)
        const __m256i dot = _mm256_dpbusd_epi32(bias, u[r], x);
        acc[r][i] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * dx), _mm256_cvtepi32_ps(dot), acc[r][i]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const float s = simd::ReduceAdd(acc[r][i]);
      out[r * MR + i] = T::kOffsets ? s + off[r][i] : s;
    }
}

constexpr int kNR = 4, kMR = 4;
// Activation rows per L2 block: a block of prepared rows is read once per weight tile.
constexpr size_t kActBlockBytes = 256 * 1024;

template <class T, int NR>
void TileRows(int rx, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, int64_t nb, float* out) {
  switch (rx) {
    case 4: return Tile<T, NR, 4>(w, w_stride, a, a_stride, nb, out);
    case 3: return Tile<T, NR, 3>(w, w_stride, a, a_stride, nb, out);
    case 2: return Tile<T, NR, 2>(w, w_stride, a, a_stride, nb, out);
    default: return Tile<T, NR, 1>(w, w_stride, a, a_stride, nb, out);
  }
}

// Weight rows [begin, end) against all m activation rows.
template <class T>
void Rows(const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y, int64_t begin,
          int64_t end) {
  const int64_t nb = w.n_in / kQK;
  const size_t row_bytes = static_cast<size_t>(nb) * sizeof(typename T::W);
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  const int64_t mb = std::max<int64_t>(kMR, static_cast<int64_t>(kActBlockBytes / act_bytes) / kMR * kMR);
  float tile[kNR * kMR];
  for (int64_t i0 = 0; i0 < m; i0 += mb) {
    const int64_t i1 = std::min(m, i0 + mb);
    for (int64_t r0 = begin; r0 < end; r0 += kNR) {
      const int rw = static_cast<int>(std::min<int64_t>(kNR, end - r0));
      for (int64_t i = i0; i < i1; i += kMR) {
        const int rx = static_cast<int>(std::min<int64_t>(kMR, i1 - i));
        const uint8_t* a = act + static_cast<size_t>(i) * act_bytes;
        if (rw == kNR) {
          TileRows<T, kNR>(rx, wdata + r0 * row_bytes, row_bytes, a, act_bytes, nb, tile);
          for (int r = 0; r < kNR; ++r)
            for (int k = 0; k < rx; ++k) y[(i + k) * w.n_out + r0 + r] = tile[r * rx + k];
        } else {
          for (int r = 0; r < rw; ++r) {
            TileRows<T, 1>(rx, wdata + (r0 + r) * row_bytes, row_bytes, a, act_bytes, nb, tile);
            for (int k = 0; k < rx; ++k) y[(i + k) * w.n_out + r0 + r] = tile[k];
          }
        }
      }
    }
  }
}


}  // namespace

bool GemmInt8Supported(DType t) {
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return true;
    default: return false;
  }
}

void GemmInt8Rows(ThreadPool& pool, const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y) {
  SPOOL_CHECK(GemmInt8Supported(w.dtype) && w.n_in % GetDTypeInfo(w.dtype).block_elems == 0);
  pool.ParallelFor(
      static_cast<size_t>(w.n_out),
      [&](size_t begin, size_t end, int) {
        const auto b = static_cast<int64_t>(begin), e = static_cast<int64_t>(end);
        switch (w.dtype) {
          case DType::kQ4_0: return Rows<Q4_0T>(w, act, act_bytes, m, y, b, e);
          case DType::kQ4_1: return Rows<Q4_1T>(w, act, act_bytes, m, y, b, e);
          case DType::kQ5_0: return Rows<Q5_0T>(w, act, act_bytes, m, y, b, e);
          case DType::kQ5_1: return Rows<Q5_1T>(w, act, act_bytes, m, y, b, e);
          case DType::kQ8_0: return Rows<Q8_0T>(w, act, act_bytes, m, y, b, e);
          case DType::kQ4_K:
          case DType::kQ5_K:
          case DType::kQ6_K: return GemmKQuantRows(w, act, act_bytes, m, y, b, e);
          default: SPOOL_CHECK_MSG(false, "GemmInt8Rows: unsupported weight type");
        }
      },
      /*grain=*/16);
}

}  // namespace spool
