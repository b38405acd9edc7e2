// Register-tiled integer GEMM with DotRow's numerics (see gemm_int8.h). AVX-512 F/BW/VL +
// VNNI (vpdpbusd), F16C; the build uses -march=native like vec_dot.cc.
#include "tensor/gemm_int8.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/aligned_buffer.h"
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
inline __m512i NegBias(__m512i x, char c) {
  return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(c), x));
}

// Per type: Unpack gives the block's codes as unsigned bytes u, Bias the lanes to add so
// that bias + Σ u·x is the lane sum DotRow forms (Σ (q − 8)·x for Q4_0, Σ w·x for Q8_0).
struct Q4_0T {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  static constexpr bool kOffsets = false;
  static __m256i Unpack(const W& b) { return Nibbles32(b.qs); }
  static __m512i Bias(__m512i x) { return NegBias(x, 8); }
};
struct Q5_0T {
  using W = BlockQ5_0;
  using A = BlockQ8_0;
  static constexpr bool kOffsets = false;
  static __m256i Unpack(const W& b) { return AddHighBit(Nibbles32(b.qs), b.qh); }
  static __m512i Bias(__m512i x) { return NegBias(x, 16); }
};
struct Q8_0T {
  using W = BlockQ8_0;
  using A = BlockQ8_0;
  static constexpr bool kOffsets = false;
  // w + 128 as an unsigned byte (flip the sign bit).
  static __m256i Unpack(const W& b) {
    return _mm256_xor_si256(LoadQ8(b.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static __m512i Bias(__m512i x) { return NegBias(x, static_cast<char>(0x80)); }
};
struct Q4_1T {
  using W = BlockQ4_1;
  using A = BlockQ8_1;
  static constexpr bool kOffsets = true;
  static __m256i Unpack(const W& b) { return Nibbles32(b.qs); }
  static __m512i Bias(__m512i) { return _mm512_setzero_si512(); }
};
struct Q5_1T {
  using W = BlockQ5_1;
  using A = BlockQ8_1;
  static constexpr bool kOffsets = true;
  static __m256i Unpack(const W& b) { return AddHighBit(Nibbles32(b.qs), b.qh); }
  static __m512i Bias(__m512i) { return _mm512_setzero_si512(); }
};

constexpr int kNR = 4, kMR = 4;
// Activation rows per L2 block: the panel is unpacked once per block.
constexpr size_t kActBlockBytes = 192 * 1024;

// One block (32 elements) of a panel of kNR weight rows, unpacked. Lane (r, i) of the
// 16-lane vectors is r·4 + i: weight row r against activation row i of a tile.
struct alignas(64) Panel32 {
  __m256i u[kNR];  // unsigned codes of row r
  __m512 d;        // lane (r, i): F(d) of row r
  __m512 m;        // lane (r, i): F(m) of row r (Q*_1)
};

template <class T>
void UnpackPanel32(const uint8_t* const rows[kNR], int64_t nb, Panel32* panel) {
  for (int64_t b = 0; b < nb; ++b) {
    alignas(64) float d[16], m[16];
    for (int r = 0; r < kNR; ++r) {
      const typename T::W& blk = reinterpret_cast<const typename T::W*>(rows[r])[b];
      panel[b].u[r] = T::Unpack(blk);
      const float dr = F(blk.d);
      float mr = 0.0f;
      if constexpr (T::kOffsets) mr = F(blk.m);
      for (int i = 0; i < kMR; ++i) {
        d[r * kMR + i] = dr;
        m[r * kMR + i] = mr;
      }
    }
    panel[b].d = _mm512_load_ps(d);
    panel[b].m = _mm512_load_ps(m);
  }
}

// F(d) (and F(s)) of activation rows [i0, i0 + n) per block, transposed to [block][row]
// so that a tile's four rows are one 16-byte load; rows past n repeat the last.
template <class T>
void TransposeActScales(const uint8_t* act, size_t act_bytes, int64_t i0, int64_t n, int64_t n_pad, int64_t nb,
                        float* dT, float* sT) {
  for (int64_t k = 0; k < n_pad; ++k) {
    const auto* x = reinterpret_cast<const typename T::A*>(act + (i0 + std::min(k, n - 1)) * act_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      dT[b * n_pad + k] = F(x[b].d);
      if constexpr (T::kOffsets) sT[b * n_pad + k] = F(x[b].s);
    }
  }
}

// out[r][i] = DotRow(panel row r, act row i) for the kNR × kMR tile: per block, the 16
// pairs' d products (and Q*_1 offsets) in one 16-lane vector each, rounded as DotRow's
// scalar products; the integer lane sums and the fma chain per pair exactly DotRow's.
// x[i]: activation row i; dT/sT: the tile's column of the transposed scales, n_pad apart.
// out[r][i] = DotRow(panel row r, act row i) for the kNR × kMR tile: per block, the 16
// pairs' d products (and Q*_1 offsets) in one 16-lane vector each, rounded as DotRow's
// scalar products; the integer lane sums and the fma chain per pair exactly DotRow's.
// x[i]: activation row i; dT/sT: the tile's column of the transposed scales, n_pad apart.
// Two activation rows per 512-bit register: acc[r][h] lanes 0-7 are pair (r, 2h), lanes
// 8-15 pair (r, 2h + 1).
template <class T>
void Tile32(const Panel32* panel, int64_t nb, const typename T::A* const x[kMR], const float* dT, const float* sT,
            int64_t n_pad, float out[kNR][kMR]) {
  __m512 acc[kNR][2];
  __m512i idx[kNR][2];
  for (int r = 0; r < kNR; ++r)
    for (int h = 0; h < 2; ++h) {
      acc[r][h] = _mm512_setzero_ps();
      idx[r][h] = _mm512_inserti64x4(_mm512_set1_epi32(r * kMR + 2 * h), _mm256_set1_epi32(r * kMR + 2 * h + 1), 1);
    }
  __m512 offsets = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const Panel32& pb = panel[b];
    const __m512 dprod = _mm512_mul_ps(pb.d, _mm512_broadcast_f32x4(_mm_loadu_ps(dT + b * n_pad)));
    if constexpr (T::kOffsets)  // DotRow: offsets += F(m)·F(s)
      offsets = _mm512_add_ps(offsets, _mm512_mul_ps(pb.m, _mm512_broadcast_f32x4(_mm_loadu_ps(sT + b * n_pad))));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i xq = _mm512_inserti64x4(_mm512_castsi256_si512(LoadQ8(x[2 * h][b].qs)), LoadQ8(x[2 * h + 1][b].qs), 1);
      const __m512i bias = T::Bias(xq);
#pragma GCC unroll 4
      for (int r = 0; r < kNR; ++r) {
        const __m512i dot = _mm512_dpbusd_epi32(bias, _mm512_broadcast_i64x4(pb.u[r]), xq);
        acc[r][h] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx[r][h], dprod), _mm512_cvtepi32_ps(dot), acc[r][h]);
      }
    }
  }
  alignas(64) float off[16];
  _mm512_store_ps(off, offsets);
  for (int r = 0; r < kNR; ++r)
    for (int i = 0; i < kMR; ++i) {
      const __m512 a = acc[r][i / 2];
      const float s = simd::ReduceAdd(i % 2 == 0 ? _mm512_castps512_ps256(a)
                                                 : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
      out[r][i] = T::kOffsets ? s + off[r * kMR + i] : s;
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
  AlignedBuffer panel_buf(static_cast<size_t>(nb) * sizeof(Panel32), 64);
  Panel32* panel = reinterpret_cast<Panel32*>(panel_buf.data());
  const int64_t n_pad = (std::min(mb, m) + kMR - 1) / kMR * kMR;
  std::vector<float> dT(static_cast<size_t>(nb * n_pad)), sT(T::kOffsets ? dT.size() : 0);
  float out[kNR][kMR];
  for (int64_t i0 = 0; i0 < m; i0 += mb) {
    const int64_t i1 = std::min(m, i0 + mb);
    TransposeActScales<T>(act, act_bytes, i0, i1 - i0, n_pad, nb, dT.data(), sT.data());
    for (int64_t r0 = begin; r0 < end; r0 += kNR) {
      const int rw = static_cast<int>(std::min<int64_t>(kNR, end - r0));
      const uint8_t* rows[kNR];
      for (int r = 0; r < kNR; ++r) rows[r] = wdata + (r0 + std::min(r, rw - 1)) * row_bytes;  // pad: repeat
      UnpackPanel32<T>(rows, nb, panel);
      for (int64_t i = i0; i < i1; i += kMR) {
        const int rx = static_cast<int>(std::min<int64_t>(kMR, i1 - i));
        const typename T::A* x[kMR];
        for (int k = 0; k < kMR; ++k)
          x[k] = reinterpret_cast<const typename T::A*>(act + (i + std::min(k, rx - 1)) * act_bytes);
        Tile32<T>(panel, nb, x, dT.data() + (i - i0), T::kOffsets ? sT.data() + (i - i0) : nullptr, n_pad, out);
        for (int k = 0; k < rx; ++k)
          for (int r = 0; r < rw; ++r) y[(i + k) * w.n_out + r0 + r] = out[r][k];
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
