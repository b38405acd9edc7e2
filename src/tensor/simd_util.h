// Private to tensor/: horizontal reductions and the attention kernels' masked row max. (GCC 12's _mm512_reduce_* intrinsics
// trigger -Wmaybe-uninitialized inside the header, so we spell them out.)
#pragma once

// GCC 12 reports -Wmaybe-uninitialized inside avx512fintrin.h (its _mm512_undefined_*
// passthrough operands) when these intrinsics inline; silence it for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

namespace spool::simd {

inline float ReduceAdd(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float ReduceAdd(__m512 v) {
  return ReduceAdd(_mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}
inline float ReduceMax(__m512 v) {
  __m256 m = _mm256_max_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int ReduceAdd(__m512i v) {
  __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

// One attention row's scores, masked: keys t in [0, npt) (npt a multiple of 16) that are
// not visible — t >= nv (future or padding) or t < lo (below a sliding window) — become
// −inf in `scores`; returns the lane-wise max of the masked row (the prefill attention
// kernels' first softmax pass, f32 and bf16 alike).
inline __m512 MaskScoresAndMax(float* scores, int64_t npt, int64_t nv, int64_t lo) {
  auto lanes = [](int64_t left) {  // the first `left` (0..16+) lanes
    return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
  };
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  __m512 vmax = neg_inf;
  for (int64_t t = 0; t < npt; t += 16) {
    __mmask16 vis = lanes(nv - t > 0 ? nv - t : 0);
    if (lo > t) vis &= static_cast<__mmask16>(~lanes(lo - t));
    const __m512 x = _mm512_mask_mov_ps(neg_inf, vis, _mm512_loadu_ps(scores + t));
    _mm512_storeu_ps(scores + t, x);
    vmax = _mm512_max_ps(vmax, x);
  }
  return vmax;
}

}  // namespace spool::simd
