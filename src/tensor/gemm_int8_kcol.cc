// K-quant prefill GEMM with llama.cpp's prefill numerics (see gemm_int8_kcol.h).
// AVX-512 F/BW/VL + VNNI; the build uses -march=native like vec_dot.cc.
#include "tensor/gemm_int8_kcol.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "tensor/matmul_internal.h"
#include "tensor/quant_blocks.h"

namespace spool {
namespace {

using namespace quant;

inline float F(uint16_t h) { return _cvtsh_ss(h); }

constexpr int kNR = 8;     // weight rows per panel (one micro-tile's rows)
constexpr int kBand = 16;  // activation rows per band (the 16 lanes)
constexpr int kTiles = 4;  // panels per weight-row group (see Run)
constexpr int kGroups = kQK_K / 4;  // 4-byte groups per super-block

// One super-block of a weight row's scales, decoded: sub-block scales (Q6_K: 16 signed scales of 16 elements; Q4_K/Q5_K: 8 of 32) and mins.
struct KRow {
  int32_t sc[16];
  int32_t mn[8];
  float d, dmin;
};

// Decodes one super-block: codes into u[0..256) (element order), scales/mins into k.
template <DType kType>
void DecodeK(const uint8_t* blk, uint8_t* u, KRow& k) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  if constexpr (kType == DType::kQ6_K) {
    const BlockQ6_K& w = *reinterpret_cast<const BlockQ6_K*>(blk);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * h));
      auto hi2 = [&](int shift) {  // ((qh >> shift) & 3) << 4, per byte
        return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), m2), 4);
      };
      auto store = [&](int at, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 128 * h + at), v); };
      store(0, _mm256_or_si256(_mm256_and_si256(ql0, m4), hi2(0)));
      store(32, _mm256_or_si256(_mm256_and_si256(ql1, m4), hi2(2)));
      store(64, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), hi2(4)));
      store(96, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), hi2(6)));
    }
    for (int j = 0; j < 16; ++j) k.sc[j] = w.scales[j];
    for (int j = 0; j < 8; ++j) k.mn[j] = 0;
    k.d = F(w.d);
    k.dmin = 0.0f;
  } else {
    constexpr bool kQ5 = kType == DType::kQ5_K;
    const uint8_t* qs = kQ5 ? reinterpret_cast<const BlockQ5_K*>(blk)->qs : reinterpret_cast<const BlockQ4_K*>(blk)->qs;
    const uint8_t* scales =
        kQ5 ? reinterpret_cast<const BlockQ5_K*>(blk)->scales : reinterpret_cast<const BlockQ4_K*>(blk)->scales;
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kQ5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ5_K*>(blk)->qh));
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int c = 0; c < 4; ++c) {  // chunk c: sub-block 2c in the low nibbles, 2c + 1 in the high ones
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kQ5) {  // element l of sub-block i has bit i of qh[l]
        lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * c)))), lo,
                                  sixteen);
        hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(2 << (2 * c)))), hi,
                                  sixteen);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 64 * c), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 64 * c + 32), hi);
    }
    for (int i = 0; i < 8; ++i) {
      uint8_t sc, mn;
      UnpackScaleMinK4(i, scales, &sc, &mn);
      k.sc[i] = sc;
      k.mn[i] = mn;
    }
    for (int i = 8; i < 16; ++i) k.sc[i] = 0;
    uint16_t d, dmin;
    std::memcpy(&d, blk, 2);
    std::memcpy(&dmin, blk + 2, 2);
    k.d = F(d);
    k.dmin = F(dmin);
  }
}

inline int Load4(const uint8_t* p) {
  int v;
  std::memcpy(&v, p, 4);
  return v;
}

constexpr bool IsQ6(DType t) { return t == DType::kQ6_K; }

// One super-block of a panel of kNR weight rows, laid out for the micro-kernel.
struct alignas(64) PanelSB {
  uint8_t u[kNR][kQK_K];     // [row t]: the codes, unsigned bytes in element order
  int32_t sc[16][kNR];       // [sub-block s][row t]
  int32_t mpair[4][kNR];     // [q][row t]: int16 pair (m_2q, m_2q+1) (Q4_K/Q5_K)
  float d[kNR], dmin[kNR];
};

// One super-block of a band of 16 activation rows.
struct alignas(64) BandSB {
  int8_t x[kGroups][kBand][4];  // [group g][row j]: codes 4g..4g+3 of row j
  int32_t corr[16][kBand];      // Q6_K: −32·bsums[s] of row j; Q4_K/Q5_K: [q < 4] the int16 pair (B_2q, B_2q+1), B_s = bsums[2s] + bsums[2s+1]
  float d[kBand];
};

template <DType kType>
void PackPanel(const uint8_t* const rows[kNR], int64_t nb, size_t blk_bytes, PanelSB* panel) {
  KRow k;
  for (int64_t b = 0; b < nb; ++b) {
    PanelSB& p = panel[b];
    for (int t = 0; t < kNR; ++t) {
      DecodeK<kType>(rows[t] + b * blk_bytes, p.u[t], k);
      for (int s = 0; s < 16; ++s) p.sc[s][t] = k.sc[s];
      for (int q = 0; q < 4; ++q)
        p.mpair[q][t] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(k.mn[2 * q])) |
                                             (static_cast<uint32_t>(static_cast<uint16_t>(k.mn[2 * q + 1])) << 16));
      p.d[t] = k.d;
      p.dmin[t] = k.dmin;
    }
  }
}

// Rows [i0, i0 + n) of act (n ≤ 16; the band's other lanes are zero rows) → band[0..nb).
template <DType kType>
void PackBand(const uint8_t* act, size_t act_bytes, int64_t i0, int n, int64_t nb, BandSB* band) {
  for (int64_t b = 0; b < nb; ++b) {
    BandSB& p = band[b];
    std::memset(&p, 0, sizeof(p));
    for (int j = 0; j < n; ++j) {
      const BlockQ8_K& x = reinterpret_cast<const BlockQ8_K*>(act + (i0 + j) * act_bytes)[b];
      for (int g = 0; g < kGroups; ++g) std::memcpy(p.x[g][j], x.qs + 4 * g, 4);
      if constexpr (IsQ6(kType)) {
        for (int s = 0; s < 16; ++s) p.corr[s][j] = -32 * static_cast<int32_t>(x.bsums[s]);
      } else {
        for (int q = 0; q < 4; ++q) {
          const int32_t b0 = x.bsums[4 * q] + x.bsums[4 * q + 1], b1 = x.bsums[4 * q + 2] + x.bsums[4 * q + 3];
          p.corr[q][j] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(b0)) |
                                              (static_cast<uint32_t>(static_cast<uint16_t>(b1)) << 16));
        }
      }
      p.d[j] = x.d;
    }
  }
}

// out[t][j] for the kNR panel rows × the band's 16 rows over nb super-blocks.
template <DType kType>
void MicroTile(const PanelSB* panel, const BandSB* band, int64_t nb, __m512 out[kNR]) {
  constexpr bool kQ6 = IsQ6(kType);
  constexpr int kSub = kQ6 ? 16 : 8;        // sub-blocks per super-block
  constexpr int kG = kGroups / kSub;         // 4-byte groups per sub-block
  __m512 acc[kNR];
  for (int t = 0; t < kNR; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PanelSB& W = panel[b];
    const BandSB& A = band[b];
    __m512i s1[kNR];
    for (int t = 0; t < kNR; ++t) s1[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int s = 0; s < kSub; ++s) {
      __m512i raw[kNR];
      const __m512i init = kQ6 ? _mm512_load_si512(A.corr[s]) : _mm512_setzero_si512();
      for (int t = 0; t < kNR; ++t) raw[t] = init;
#pragma GCC unroll 8
      for (int g = 0; g < kG; ++g) {
        const __m512i xv = _mm512_load_si512(A.x[s * kG + g]);
#pragma GCC unroll 8
        for (int t = 0; t < kNR; ++t)
          raw[t] = _mm512_dpbusd_epi32(raw[t], _mm512_set1_epi32(Load4(W.u[t] + 4 * (s * kG + g))), xv);
      }
#pragma GCC unroll 8
      for (int t = 0; t < kNR; ++t) s1[t] = _mm512_add_epi32(s1[t], _mm512_mullo_epi32(raw[t], _mm512_set1_epi32(W.sc[s][t])));
    }
    const __m512 dx = _mm512_load_ps(A.d);
    if constexpr (kQ6) {
#pragma GCC unroll 8
      for (int t = 0; t < kNR; ++t) {
        const __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(s1[t]), _mm512_set1_ps(W.d[t]));
        acc[t] = _mm512_fmadd_ps(r, dx, acc[t]);
      }
    } else {
      const __m512i bp0 = _mm512_load_si512(A.corr[0]), bp1 = _mm512_load_si512(A.corr[1]);
      const __m512i bp2 = _mm512_load_si512(A.corr[2]), bp3 = _mm512_load_si512(A.corr[3]);
#pragma GCC unroll 8
      for (int t = 0; t < kNR; ++t) {
        __m512i s2 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(W.mpair[0][t]), bp0);
        s2 = _mm512_dpwssd_epi32(s2, _mm512_set1_epi32(W.mpair[1][t]), bp1);
        s2 = _mm512_dpwssd_epi32(s2, _mm512_set1_epi32(W.mpair[2][t]), bp2);
        s2 = _mm512_dpwssd_epi32(s2, _mm512_set1_epi32(W.mpair[3][t]), bp3);
        __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(s1[t]), _mm512_set1_ps(W.d[t]));
        r = _mm512_fnmadd_ps(_mm512_set1_ps(W.dmin[t]), _mm512_cvtepi32_ps(s2), r);
        acc[t] = _mm512_fmadd_ps(r, dx, acc[t]);
      }
    }
  }
  for (int t = 0; t < kNR; ++t) out[t] = acc[t];
}

template <DType kType>
void Run(ThreadPool& pool, const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y,
         AlignedBuffer& scratch) {
  const int64_t nb = w.n_in / kQK_K;
  const size_t blk_bytes = *DTypeBytes(kType, kQK_K);
  const size_t row_bytes = static_cast<size_t>(nb) * blk_bytes;
  const int64_t n_bands = (m + kBand - 1) / kBand;
  const size_t band_bytes = static_cast<size_t>(nb) * sizeof(BandSB);
  EnsureSize(scratch, band_bytes * static_cast<size_t>(n_bands));
  BandSB* bands = reinterpret_cast<BandSB*>(scratch.data());
  pool.ParallelFor(static_cast<size_t>(n_bands), [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) {
      const int64_t i0 = static_cast<int64_t>(i) * kBand;
      PackBand<kType>(act, act_bytes, i0, static_cast<int>(std::min<int64_t>(kBand, m - i0)), nb, bands + i * nb);
    }
  });
  // Weight rows go in groups of kTiles panels (32 rows): each band, once loaded, meets all
  // of them, so the activations stream from L2/L3 once per 32 weight rows. Groups are
  // claimed from a counter (the two SMT threads of a core rarely run at the same speed).
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  const int64_t group_rows = kNR * kTiles;
  const int64_t n_groups = (w.n_out + group_rows - 1) / group_rows;
  std::atomic<int64_t> next{0};
  pool.ParallelFor(static_cast<size_t>(pool.num_threads()), [&](size_t, size_t, int) {
    thread_local AlignedBuffer panel_buf;  // kept across calls: no allocation per matmul
    EnsureSize(panel_buf, static_cast<size_t>(kTiles * nb) * sizeof(PanelSB));
    PanelSB* panels = reinterpret_cast<PanelSB*>(panel_buf.data());
    alignas(64) float out[kNR][kBand];
    for (int64_t grp = next.fetch_add(1); grp < n_groups; grp = next.fetch_add(1)) {
      int rw[kTiles];
      int tiles = 0;
      for (; tiles < kTiles; ++tiles) {
        const int64_t r0 = grp * group_rows + tiles * kNR;
        if (r0 >= w.n_out) break;
        rw[tiles] = static_cast<int>(std::min<int64_t>(kNR, w.n_out - r0));
        const uint8_t* rows[kNR];
        for (int t = 0; t < kNR; ++t) rows[t] = wdata + (r0 + std::min(t, rw[tiles] - 1)) * row_bytes;  // pad: repeat
        PackPanel<kType>(rows, nb, blk_bytes, panels + tiles * nb);
      }
      for (int64_t band = 0; band < n_bands; ++band) {
        const int64_t i0 = band * kBand;
        const int rx = static_cast<int>(std::min<int64_t>(kBand, m - i0));
        for (int tile = 0; tile < tiles; ++tile) {
          __m512 o[kNR];
          MicroTile<kType>(panels + tile * nb, bands + band * nb, nb, o);
          for (int t = 0; t < kNR; ++t) _mm512_store_ps(out[t], o[t]);
          const int64_t r0 = grp * group_rows + tile * kNR;
          for (int j = 0; j < rx; ++j)
            for (int t = 0; t < rw[tile]; ++t) y[(i0 + j) * w.n_out + r0 + t] = out[t][j];
        }
      }
    }
  });
}

// The reference's own scalar decoding of one super-block's codes (element order), kept
// apart from DecodeK so that the tests compare two decodings.
void DecodeCodesScalar(DType t, const uint8_t* blk, uint8_t u[kQK_K]) {
  if (t == DType::kQ6_K) {
    const BlockQ6_K& w = *reinterpret_cast<const BlockQ6_K*>(blk);
    for (int e = 0; e < kQK_K; ++e) {  // element e: half h, quarter q (32 each), lane l
      const int h = e / 128, q = (e % 128) / 32, l = e % 32;
      const uint8_t ql = w.ql[64 * h + 32 * (q % 2) + l];
      const int low = q < 2 ? (ql & 15) : (ql >> 4);
      u[e] = static_cast<uint8_t>(low | (((w.qh[32 * h + l] >> (2 * q)) & 3) << 4));
    }
    return;
  }
  const bool q5 = t == DType::kQ5_K;
  const uint8_t* qs = q5 ? reinterpret_cast<const BlockQ5_K*>(blk)->qs : reinterpret_cast<const BlockQ4_K*>(blk)->qs;
  for (int e = 0; e < kQK_K; ++e) {  // sub-block i = e / 32 (chunk i / 2, low nibbles for even i)
    const int i = e / 32, l = e % 32;
    const uint8_t q = qs[32 * (i / 2) + l];
    u[e] = static_cast<uint8_t>(i % 2 == 0 ? (q & 15) : (q >> 4));
    if (q5) u[e] = static_cast<uint8_t>(u[e] + (((reinterpret_cast<const BlockQ5_K*>(blk)->qh[l] >> i) & 1) << 4));
  }
}

}  // namespace

bool GemmKColSupported(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K; }

void GemmKCol(ThreadPool& pool, const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y,
              AlignedBuffer& scratch) {
  SPOOL_CHECK(GemmKColSupported(w.dtype) && w.n_in % kQK_K == 0 && w.scales == nullptr);
  if (m == 0 || w.n_out == 0) return;
  switch (w.dtype) {
    case DType::kQ4_K: return Run<DType::kQ4_K>(pool, w, act, act_bytes, m, y, scratch);
    case DType::kQ5_K: return Run<DType::kQ5_K>(pool, w, act, act_bytes, m, y, scratch);
    case DType::kQ6_K: return Run<DType::kQ6_K>(pool, w, act, act_bytes, m, y, scratch);
    default: SPOOL_CHECK_MSG(false, "GemmKCol: not a K-quant weight type");
  }
}

float DotKColRef(DType t, const void* wrow, const uint8_t* act, int64_t n_in) {
  SPOOL_CHECK(GemmKColSupported(t) && n_in % kQK_K == 0);
  const int64_t nb = n_in / kQK_K;
  const size_t blk_bytes = *DTypeBytes(t, kQK_K);
  const BlockQ8_K* x = reinterpret_cast<const BlockQ8_K*>(act);
  const bool q6 = t == DType::kQ6_K;
  const int sub = q6 ? 16 : 32;
  float acc = 0.0f;
  KRow k;
  alignas(64) uint8_t u[kQK_K];
  alignas(64) uint8_t unused[kQK_K];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = static_cast<const uint8_t*>(wrow) + b * blk_bytes;
    switch (t) {  // scales, mins and d from DecodeK; the codes decoded again, scalar
      case DType::kQ4_K: DecodeK<DType::kQ4_K>(blk, unused, k); break;
      case DType::kQ5_K: DecodeK<DType::kQ5_K>(blk, unused, k); break;
      default: DecodeK<DType::kQ6_K>(blk, unused, k); break;
    }
    DecodeCodesScalar(t, blk, u);
    int64_t s1 = 0, s2 = 0;
    for (int s = 0; s < kQK_K / sub; ++s) {
      int64_t raw = 0;
      for (int e = 0; e < sub; ++e) raw += (static_cast<int64_t>(u[s * sub + e]) - (q6 ? 32 : 0)) * x[b].qs[s * sub + e];
      s1 += k.sc[s] * raw;
      if (!q6) s2 += k.mn[s] * static_cast<int64_t>(x[b].bsums[2 * s] + x[b].bsums[2 * s + 1]);
    }
    float r = static_cast<float>(s1) * k.d;
    if (!q6) r = std::fma(-k.dmin, static_cast<float>(s2), r);
    acc = std::fma(r, x[b].d, acc);
  }
  return acc;
}

}  // namespace spool
