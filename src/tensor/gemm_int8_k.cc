// K-quant weights (q4_k, q5_k, q6_k) × Q8_K activation rows, register-tiled, with
// DotQ45_K's / DotQ6_K's numerics bit for bit (see gemm_int8_k.h).
//
// Shape of the work. A *panel* is kNR = 4 weight rows; it is unpacked once per activation
// block into a thread-local scratch (codes as unsigned bytes, sub-block scales as int16
// vectors, d / dmin and the min-correction factors laid out for vector use), so the
// unpacking is paid once per ~100 activation rows instead of once per row. The panel then
// meets kMR = 4 activation rows at a time: for every super-block the 16 (weight, activation)
// pairs keep their integer lanes in 8 512-bit registers (two pairs each), each weight
// vector is loaded once per 4 activation rows and each activation vector once per 4
// weight rows.
//
// Numerics, per pair and super-block (what DotRow does, so the bits are DotRow's):
//   lanes L[k] (k = 0..7) = Σ_j scale_j · Σ_{e<4} u_j[4k+e]·x_j[4k+e]  (exact int32;
//     chunk j = elements 32j..32j+31; Q6_K: lanes 0-3 / 4-7 take the scale of the
//     chunk's first / second 16 elements; Q6_K lane 0 also carries −32·corr)
//   corr = Σ_g c_g · bsums[g]  (exact; Q4_K/Q5_K: c = the sub-block min of group g,
//     Q6_K: its scale)
//   acc = fma(F(d_w)·d_x, float(L), acc)   (f32, super-blocks in order)
//   Q4_K/Q5_K: min_terms += F(dmin_w)·d_x·float(corr)   (f32, in that order)
//   result = ReduceAdd(acc) (− min_terms)
// The integers are exact however they are formed (no lane can saturate: maddubs pairs
// are ≤ 2·63·128), so only the f32 steps must keep DotRow's order, and they do: the
// products F(d_w)·d_x and F(dmin_w)·d_x are formed for 16 pairs at once in a vector,
// which rounds each lane exactly as the scalar product does (-ffp-contract=off).
#include "tensor/gemm_int8_k.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "base/aligned_buffer.h"
#include "base/check.h"
#include "tensor/quant_blocks.h"

namespace spool {
namespace {

using namespace quant;

inline float F(uint16_t h) { return _cvtsh_ss(h); }

constexpr int kNR = 4;  // weight rows per panel
constexpr int kMR = 4;  // activation rows per register tile
// Activation rows per L2 block (read once per panel while the panel is hot).
constexpr size_t kActBlockBytes = 192 * 1024;

// One super-block of a panel, unpacked. Lane (r, i) of the 16-lane vectors is r·4 + i:
// weight row r against activation row i of a tile.
struct alignas(64) PanelBlock {
  __m256i u[8][kNR];      // [chunk j][row r] codes, unsigned bytes (element order 32j..32j+31)
  __m256i scale2[4][kNR];  // [pair p][row r] int16 words alternate: chunk 2p's scale, chunk 2p+1's
  __m512i corr_w[8];      // [q] lane (r, i): the int16 pair (c_r[2q], c_r[2q+1])
  __m512 d;               // lane (r, i): F(d) of row r
  __m512 dmin;            // lane (r, i): F(dmin) of row r (Q4_K/Q5_K)
};

template <DType kType>
void UnpackRow(const uint8_t* blk, int r, PanelBlock& pb, int16_t c[16], float* d, float* dmin) {
  __m256i scale[8];  // int16 scale of each word of chunk j (see the numerics above)
  if constexpr (kType == DType::kQ6_K) {
    const BlockQ6_K& w = *reinterpret_cast<const BlockQ6_K*>(blk);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int half = 0; half < 2; ++half) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * half));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * half + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * half));
      pb.u[4 * half + 0][r] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                              _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
      pb.u[4 * half + 1][r] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                              _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
      pb.u[4 * half + 2][r] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                              _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
      const __m256i qh3 = _mm256_and_si256(qh, _mm256_set1_epi8(static_cast<char>(0xC0)));
      pb.u[4 * half + 3][r] =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_srli_epi16(qh3, 2));
      const int8_t* sc = w.scales + 8 * half;
      for (int k = 0; k < 4; ++k)
        scale[4 * half + k] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
    }
    for (int g = 0; g < 16; ++g) c[g] = w.scales[g];
    *d = F(w.d);
    *dmin = 0.0f;
  } else {
    constexpr bool kHasHigh = kType == DType::kQ5_K;
    using B = std::conditional_t<kHasHigh, BlockQ5_K, BlockQ4_K>;
    const B& w = *reinterpret_cast<const B*>(blk);
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    for (int k = 0; k < 8; ++k) {
      uint8_t sc, m;
      UnpackScaleMinK4(k, w.scales, &sc, &m);
      scale[k] = _mm256_set1_epi16(sc);
      c[2 * k] = c[2 * k + 1] = m;  // bsums[2k] and bsums[2k+1] both meet min m[k]
    }
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kHasHigh) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh));
    for (int cc = 0; cc < 4; ++cc) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * cc));
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kHasHigh) {
        lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * cc)))),
                                  lo, sixteen);
        hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(2 << (2 * cc)))),
                                  hi, sixteen);
      }
      pb.u[2 * cc][r] = lo;
      pb.u[2 * cc + 1][r] = hi;
    }
    *d = F(w.d);
    *dmin = F(w.dmin);
  }
  for (int p = 0; p < 4; ++p) pb.scale2[p][r] = _mm256_mask_blend_epi16(0xAAAA, scale[2 * p], scale[2 * p + 1]);
}

// Unpacks super-blocks [0, nb) of weight rows rows[0..kNR) into panel[0..nb).
template <DType kType>
void UnpackPanel(const uint8_t* const rows[kNR], int64_t nb, size_t blk_bytes, PanelBlock* panel) {
  for (int64_t b = 0; b < nb; ++b) {
    PanelBlock& pb = panel[b];
    alignas(64) int16_t c[kNR][16];
    alignas(64) float d[16], dmin[16];
    alignas(64) int32_t cw[8][16];
    for (int r = 0; r < kNR; ++r) {
      float dr, mr;
      UnpackRow<kType>(rows[r] + b * blk_bytes, r, pb, c[r], &dr, &mr);
      for (int i = 0; i < kMR; ++i) {
        d[r * kMR + i] = dr;
        dmin[r * kMR + i] = mr;
      }
    }
    for (int q = 0; q < 8; ++q)
      for (int r = 0; r < kNR; ++r) {
        const uint32_t pair =
            static_cast<uint16_t>(c[r][2 * q]) | (static_cast<uint32_t>(static_cast<uint16_t>(c[r][2 * q + 1])) << 16);
        for (int i = 0; i < kMR; ++i) std::memcpy(&cw[q][r * kMR + i], &pair, 4);
      }
    for (int q = 0; q < 8; ++q) pb.corr_w[q] = _mm512_load_si512(cw[q]);
    pb.d = _mm512_load_ps(d);
    pb.dmin = _mm512_load_ps(dmin);
  }
}

// out[r][i] = DotRow(panel row r, act row i) for the kNR × kMR tile; act[i]: Q8_K row i.
// Two activation rows per 512-bit register: lanes[r][h] and acc[r][h] lanes 0-7 are pair
// (r, 2h), lanes 8-15 pair (r, 2h + 1).
// Lane sums of a chunk pair (2p, 2p + 1): t0, t1 = vpdpbusd(0, u, x) of each chunk (8
// int32 lanes of 4 products each; |t| ≤ 4·63·128 < 2^15, so each fits an int16), packed
// as the two int16 halves of one int32 (t0 low, t1 high) and multiplied by the packed
// scale pair in one vpdpwssd: 3 multiply instructions per 64 elements instead of the 4 of
// vpmaddubsw + vpdpwssd per chunk, with the same exact lane sums.
template <DType kType>
void Tile(const PanelBlock* panel, int64_t nb, const BlockQ8_K* const act[kMR], float out[kNR][kMR]) {
  constexpr bool kQ6 = kType == DType::kQ6_K;
  __m512 acc[kNR][2];
  for (int r = 0; r < kNR; ++r)
    for (int h = 0; h < 2; ++h) acc[r][h] = _mm512_setzero_ps();
  __m512 min_terms = _mm512_setzero_ps();
  __m512i bs_idx[8];
  for (int q = 0; q < 8; ++q) {
    alignas(64) int32_t ix[16];
    for (int r = 0; r < kNR; ++r)
      for (int i = 0; i < kMR; ++i) ix[r * kMR + i] = i * 8 + q;
    bs_idx[q] = _mm512_load_si512(ix);
  }
  // Q6_K: lane 0 of each half takes −32·corr of its pair (vpermd index, zero elsewhere).
  alignas(64) static constexpr int32_t kCorrIdx[kNR][2][16] = {
      {{0, 0, 0, 0, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 0, 0, 0, 3}},
      {{4, 0, 0, 0, 0, 0, 0, 0, 5}, {6, 0, 0, 0, 0, 0, 0, 0, 7}},
      {{8, 0, 0, 0, 0, 0, 0, 0, 9}, {10, 0, 0, 0, 0, 0, 0, 0, 11}},
      {{12, 0, 0, 0, 0, 0, 0, 0, 13}, {14, 0, 0, 0, 0, 0, 0, 0, 15}}};
  for (int64_t b = 0; b < nb; ++b) {
    const PanelBlock& pb = panel[b];
    const BlockQ8_K* x[kMR];
    for (int i = 0; i < kMR; ++i) x[i] = act[i] + b;
    const __m512i bs01 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0]->bsums))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1]->bsums)), 1);
    const __m512i bs23 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[2]->bsums))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[3]->bsums)), 1);
    __m512i corr = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q)
      corr = _mm512_dpwssd_epi32(corr, pb.corr_w[q], _mm512_permutex2var_epi32(bs01, bs_idx[q], bs23));
    __m512i neg32corr = _mm512_setzero_si512();
    if constexpr (kQ6) {
      neg32corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(corr, 5));
    } else {
      const __m512 xd = _mm512_broadcast_f32x4(_mm_setr_ps(x[0]->d, x[1]->d, x[2]->d, x[3]->d));
      min_terms = _mm512_add_ps(min_terms, _mm512_mul_ps(_mm512_mul_ps(pb.dmin, xd), _mm512_cvtepi32_ps(corr)));
    }
    __m512i lanes[kNR][2];
    for (int r = 0; r < kNR; ++r)
      for (int h = 0; h < 2; ++h)
        lanes[r][h] = kQ6 ? _mm512_maskz_permutexvar_epi32(0x0101, _mm512_load_si512(kCorrIdx[r][h]), neg32corr)
                          : _mm512_setzero_si512();
    const __m512i zero = _mm512_setzero_si512();
    auto pair = [&](int h, int off) {
      return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[2 * h]->qs + off))),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[2 * h + 1]->qs + off)), 1);
    };
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m512i xa[2] = {pair(0, 64 * p), pair(1, 64 * p)};
      const __m512i xb[2] = {pair(0, 64 * p + 32), pair(1, 64 * p + 32)};
      for (int r = 0; r < kNR; ++r) {
        const __m512i u0 = _mm512_broadcast_i64x4(pb.u[2 * p][r]), u1 = _mm512_broadcast_i64x4(pb.u[2 * p + 1][r]);
        const __m512i sc = _mm512_broadcast_i64x4(pb.scale2[p][r]);
        for (int h = 0; h < 2; ++h) {
          const __m512i t0 = _mm512_dpbusd_epi32(zero, u0, xa[h]);
          const __m512i t1 = _mm512_dpbusd_epi32(zero, u1, xb[h]);
          lanes[r][h] = _mm512_dpwssd_epi32(lanes[r][h], _mm512_mask_blend_epi16(0xAAAAAAAA, t0, _mm512_slli_epi32(t1, 16)), sc);
        }
      }
    }
    const __m512 xdp[2] = {
        _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(x[0]->d)), _mm256_set1_ps(x[1]->d), 1),
        _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(x[2]->d)), _mm256_set1_ps(x[3]->d), 1)};
    const float* dw = reinterpret_cast<const float*>(&pb.d);
    for (int r = 0; r < kNR; ++r)
      for (int h = 0; h < 2; ++h)  // F(d_w)·d_x per lane, DotRow's product, then its fma
        acc[r][h] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dw[r * kMR]), xdp[h]), _mm512_cvtepi32_ps(lanes[r][h]),
                                    acc[r][h]);
  }
  alignas(64) float mt[16];
  _mm512_store_ps(mt, min_terms);
  for (int r = 0; r < kNR; ++r)
    for (int i = 0; i < kMR; ++i) {
      const __m512 a = acc[r][i / 2];
      const float s = simd::ReduceAdd(i % 2 == 0 ? _mm512_castps512_ps256(a)
                                                 : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
      out[r][i] = kQ6 ? s : s - mt[r * kMR + i];
    }
}

template <DType kType>
void RowsKImpl(const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y, int64_t begin,
               int64_t end) {
  const int64_t nb = w.n_in / kQK_K;
  const size_t blk_bytes = *DTypeBytes(kType, kQK_K);
  const size_t row_bytes = static_cast<size_t>(nb) * blk_bytes;
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  const int64_t mb = std::max<int64_t>(kMR, static_cast<int64_t>(kActBlockBytes / act_bytes) / kMR * kMR);
  AlignedBuffer scratch(static_cast<size_t>(nb) * sizeof(PanelBlock), 64);
  PanelBlock* panel = reinterpret_cast<PanelBlock*>(scratch.data());
  float out[kNR][kMR];
  for (int64_t i0 = 0; i0 < m; i0 += mb) {
    const int64_t i1 = std::min(m, i0 + mb);
    for (int64_t r0 = begin; r0 < end; r0 += kNR) {
      const int rw = static_cast<int>(std::min<int64_t>(kNR, end - r0));
      const uint8_t* rows[kNR];
      for (int r = 0; r < kNR; ++r) rows[r] = wdata + (r0 + std::min(r, rw - 1)) * row_bytes;  // pad: repeat
      UnpackPanel<kType>(rows, nb, blk_bytes, panel);
      for (int64_t i = i0; i < i1; i += kMR) {
        const int rx = static_cast<int>(std::min<int64_t>(kMR, i1 - i));
        const BlockQ8_K* a[kMR];
        for (int k = 0; k < kMR; ++k)
          a[k] = reinterpret_cast<const BlockQ8_K*>(act + (i + std::min(k, rx - 1)) * act_bytes);
        Tile<kType>(panel, nb, a, out);
        for (int k = 0; k < rx; ++k)
          for (int r = 0; r < rw; ++r) y[(i + k) * w.n_out + r0 + r] = out[r][k];
      }
    }
  }
}

}  // namespace

void GemmKQuantRows(const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y, int64_t begin,
                    int64_t end) {
  switch (w.dtype) {
    case DType::kQ4_K: return RowsKImpl<DType::kQ4_K>(w, act, act_bytes, m, y, begin, end);
    case DType::kQ5_K: return RowsKImpl<DType::kQ5_K>(w, act, act_bytes, m, y, begin, end);
    case DType::kQ6_K: return RowsKImpl<DType::kQ6_K>(w, act, act_bytes, m, y, begin, end);
    default: SPOOL_CHECK_MSG(false, "GemmKQuantRows: not a K-quant weight type");
  }
}

}  // namespace spool
