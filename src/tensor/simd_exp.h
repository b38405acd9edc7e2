// Private to tensor/: exp(x) for 16 floats at once (AVX-512), within 1 ulp of the rounded
// exact value over the whole float range (SimdExp test in tests/tensor/attention_test.cc).
//
//   n = round(x · log2(e)),  r = x - n·ln2 (Cody-Waite, two FMAs),  |r| <= ln2/2
//   exp(r) ≈ Σ_{k<=7} r^k / k!  (Horner; truncation error < 5e-9 relative)
//   exp(x) = exp(r) · 2^n       (vscalefps: one rounding, overflow → +inf, underflow
//                                → subnormals / 0 rounded correctly)
// x is clamped to [-104, 89] first (beyond both ends the result is 0 or +inf anyway), so
// -inf → 0 and +inf → +inf; NaN → NaN.
#pragma once

#include "tensor/simd_util.h"  // <immintrin.h>

namespace spool::simd {

inline __m512 Exp(__m512 x) {
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);  // ln2 high part: 9 bits, n·hi exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);       // ln2 - high part
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512 y = _mm512_scalef_ps(p, n);
  // NaN in, NaN out (the clamp above would have turned it into a number).
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

}  // namespace spool::simd
