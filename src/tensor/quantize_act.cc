#include "tensor/quantize_act.h"
#include "tensor/simd_util.h"  // first: wraps <immintrin.h>


#include <cmath>
#include <cstring>

#include "base/check.h"
#include "base/dtype.h"

namespace spool {
namespace {

using namespace quant;

// Round half to even under the default rounding mode (what GGML's nearest_int and
// _mm256_round_ps(_MM_FROUND_TO_NEAREST_INT) compute).
inline int RoundHalfEven(float v) { return static_cast<int>(std::nearbyint(v)); }

// Shared by Q8_0 and Q8_1: quantises one 32-element block, returns sum(q) and
// the f32 scale d (before its rounding to f16, which Q8_1's s uses).
int QuantBlock32Ref(const float* x, int8_t* qs, uint16_t* d_out, float* d_f32) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  *d_f32 = d;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  *d_out = F32ToF16(d);
  int sum = 0;
  for (int j = 0; j < kQK; ++j) {
    qs[j] = static_cast<int8_t>(RoundHalfEven(x[j] * id));
    sum += qs[j];
  }
  return sum;
}

// AVX-512 twin of QuantBlock32Ref.
inline int QuantBlock32(const float* x, int8_t* qs, uint16_t* d_out, float* d_f32) {
  const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
  const float amax = simd::ReduceMax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const float d = amax / 127.0f;
  *d_f32 = d;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  *d_out = F32ToF16(d);
  const __m512 mul = _mm512_set1_ps(id);
  const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, mul));  // MXCSR default: half-even
  const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, mul));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtsepi32_epi8(i0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16), _mm512_cvtsepi32_epi8(i1));
  return simd::ReduceAdd(_mm512_add_epi32(i0, i1));
}

}  // namespace

void QuantizeRowQ8_0Ref(const float* x, BlockQ8_0* y, int64_t n) {
  SPOOL_CHECK(n % kQK == 0);
  float d;
  for (int64_t i = 0; i < n / kQK; ++i) QuantBlock32Ref(x + i * kQK, y[i].qs, &y[i].d, &d);
}
void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  SPOOL_CHECK(n % kQK == 0);
  float d;
  for (int64_t i = 0; i < n / kQK; ++i) QuantBlock32(x + i * kQK, y[i].qs, &y[i].d, &d);
}

void QuantizeRowQ8_1Ref(const float* x, BlockQ8_1* y, int64_t n) {
  SPOOL_CHECK(n % kQK == 0);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d;
    const int sum = QuantBlock32Ref(x + i * kQK, y[i].qs, &y[i].d, &d);
    y[i].s = F32ToF16(d * static_cast<float>(sum));
  }
}
void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n) {
  SPOOL_CHECK(n % kQK == 0);
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d;
    const int sum = QuantBlock32(x + i * kQK, y[i].qs, &y[i].d, &d);
    y[i].s = F32ToF16(d * static_cast<float>(sum));
  }
}

void QuantizeRowQ8_KRef(const float* x, BlockQ8_K* y, int64_t n) {
  SPOOL_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = RoundHalfEven(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[i].qs[16 * g + j];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n) {
  SPOOL_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    // amax by vector, then the first element reaching it gives the signed max.
    __m512 vmax = _mm512_setzero_ps();
    for (int j = 0; j < kQK_K; j += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    const float amax = simd::ReduceMax(vmax);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) == amax) {
        max = x[j];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 mul = _mm512_set1_ps(iscale);
    const __m512i cap = _mm512_set1_epi32(127);
    for (int g = 0; g < kQK_K / 16; ++g) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), mul));
      q = _mm512_min_epi32(q, cap);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * g), _mm512_cvtsepi32_epi8(q));
      y[i].bsums[g] = static_cast<int16_t>(simd::ReduceAdd(q));
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace spool
