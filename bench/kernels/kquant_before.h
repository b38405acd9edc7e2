// Frozen copies of main's Q4_K and Q6_K row dots at ade2bff (src/tensor/vec_dot.cc),
// before issue 18's Q4_K_M decode pass: the "before" side of bench_kdot's and
// bench_decode_gemv's in-process A/B. Not library code; compile with -ffp-contract=off
// as spool_tensor is, so they round as the library did.
#pragma once

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <cstring>

#include "base/dtype.h"
#include "tensor/quant_blocks.h"

namespace spool::bench_before {

using namespace quant;

inline float F(uint16_t h) { return _cvtsh_ss(h); }


inline __m256i LoadQ8(const int8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }
template <typename BlockFn>
float BlockLoop(int64_t nb, BlockFn block) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) acc = block(i, acc);
  return simd::ReduceAdd(acc);
}
inline void UnpackScalesMinsK4(const uint8_t* scales, uint8_t out[16]) {
  uint32_t u[3], o[4];
  std::memcpy(u, scales, 12);
  o[0] = u[0] & 0x3f3f3f3fu;
  o[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
  o[2] = u[1] & 0x3f3f3f3fu;
  o[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
  std::memcpy(out, o, 16);
}
inline int MinSum(const uint8_t* m, const int16_t* bsums) {
  const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8)));
  const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
  __m128i s = _mm_madd_epi16(mins, pairs);
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
inline __m512i LoadQ8Pair(const int8_t* p0, const int8_t* p1) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(LoadQ8(p0)), LoadQ8(p1), 1);
}
float DotQ4_K(const BlockQ4_K* w, const BlockQ8_K* x, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  auto pair_index = [](int j) {
    return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(j)), _mm256_set1_epi16(static_cast<int16_t>(j + 2)), 1);
  };
  const __m512i idx[4] = {pair_index(0), pair_index(1), pair_index(4), pair_index(5)};
  float min_terms = 0.0f;
  const float s = BlockLoop(nb, [&](int64_t i, __m256 acc) {
    alignas(16) uint8_t sm[16];
    UnpackScalesMinsK4(w[i].scales, sm);
    const int msum = MinSum(sm + 8, x[i].bsums);
    const __m512i sc16 = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm))));
    __m512i isum = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_loadu_si512(w[i].qs + 64 * h);
      const __m512i lo = _mm512_and_si512(q, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      const int8_t* xq = x[i].qs + 128 * h;
      const __m512i x_lo = LoadQ8Pair(xq, xq + 64), x_hi = LoadQ8Pair(xq + 32, xq + 96);
      isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(lo, x_lo), _mm512_permutexvar_epi16(idx[2 * h], sc16)));
      isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(hi, x_hi), _mm512_permutexvar_epi16(idx[2 * h + 1], sc16)));
    }
    const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    const float d = F(w[i].d) * x[i].d;
    min_terms += F(w[i].dmin) * x[i].d * static_cast<float>(msum);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum8), acc);
  });
  return s - min_terms;
}
float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  auto halves8 = [](char lo, char hi) { return _mm512_inserti64x4(_mm512_set1_epi8(lo), _mm256_set1_epi8(hi), 1); };
  auto halves16 = [](int16_t lo, int16_t hi) { return _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1); };
  const __m512i hmask01 = halves8(0x03, 0x0C), hshl01 = halves16(4, 2);
  const __m512i hmask23 = halves8(0x30, static_cast<char>(0xC0)), hshr23 = halves16(0, 2);
  const __m512i sidx0 = _mm512_set_epi64(0x0003000300030003, 0x0003000300030003, 0x0002000200020002, 0x0002000200020002,
                                         0x0001000100010001, 0x0001000100010001, 0, 0);
  const __m512i sidx1 = _mm512_add_epi16(sidx0, _mm512_set1_epi16(4));
  return BlockLoop(nb, [&](int64_t i, __m256 acc) {
    const __m256i prod = _mm256_madd_epi16(
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].bsums)));
    const int corr = simd::ReduceAdd(_mm512_zextsi256_si512(prod));
    __m512i isum = _mm512_setzero_si512();
    for (int half = 0; half < 2; ++half) {
      const __m512i ql = _mm512_loadu_si512(w[i].ql + 64 * half);
      const __m256i qh256 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh + 32 * half));
      const __m512i qh = _mm512_inserti64x4(_mm512_zextsi256_si512(qh256), qh256, 1);
      const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_sllv_epi16(_mm512_and_si512(qh, hmask01), hshl01));
      const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_srlv_epi16(_mm512_and_si512(qh, hmask23), hshr23));
      const __m512i sc = _mm512_castsi128_si512(
          _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[i].scales + 8 * half))));
      const int8_t* xq = x[i].qs + 128 * half;
      isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(q01, _mm512_loadu_si512(xq)),
                                                      _mm512_permutexvar_epi16(sidx0, sc)));
      isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(q23, _mm512_loadu_si512(xq + 64)),
                                                      _mm512_permutexvar_epi16(sidx1, sc)));
    }
    __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    const float d = F(w[i].d) * x[i].d;
    isum8 = _mm256_sub_epi32(isum8, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum8), acc);
  });
}


[[gnu::noinline]] inline float DotBefore(DType t, const void* w, const void* a, int64_t n) {
  if (t == DType::kQ4_K) return DotQ4_K(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a), n / kQK_K);
  return DotQ6_K(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(a), n / kQK_K);
}

}  // namespace spool::bench_before
