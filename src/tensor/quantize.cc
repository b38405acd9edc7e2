#include "tensor/quantize.h"

#include <cmath>
#include <cstring>

#include "base/check.h"

namespace spool {

namespace {
constexpr int kBlock = 32;

void StoreF16(float v, uint8_t* dst) {
  const uint16_t h = F32ToF16(v);
  std::memcpy(dst, &h, 2);
}

// gguf-py's np_roundf: round half away from zero, in f32.
float RoundHalfAway(float v) {
  const float a = std::fabs(v);
  const float fl = std::floor(a);
  const float b = fl + std::floor(2.0f * (a - fl));
  return v > 0 ? b : (v < 0 ? -b : 0.0f * b);
}
}  // namespace

void QuantizeWeightRowQ8_0(const float* x, int64_t n, uint8_t* dst) {
  SPOOL_CHECK(n % kBlock == 0);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock, dst += 2 + kBlock) {
    float amax = 0;
    for (int i = 0; i < kBlock; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d == 0 ? 0.0f : 1.0f / d;
    StoreF16(d, dst);
    for (int i = 0; i < kBlock; ++i) {
      const float q = RoundHalfAway(x[i] * id);
      dst[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

void QuantizeWeightRowQ4_0(const float* x, int64_t n, uint8_t* dst) {
  SPOOL_CHECK(n % kBlock == 0);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock, dst += 2 + kBlock / 2) {
    int imax = 0;
    for (int i = 1; i < kBlock; ++i)
      if (std::fabs(x[i]) > std::fabs(x[imax])) imax = i;
    const float d = x[imax] / -8.0f;
    const float id = d == 0 ? 0.0f : 1.0f / d;
    StoreF16(d, dst);
    uint8_t q[kBlock];
    for (int i = 0; i < kBlock; ++i) {
      const float t = std::trunc(x[i] * id + 8.5f);
      q[i] = static_cast<uint8_t>(t >= 15.0f ? 15 : (t <= 0.0f ? 0 : static_cast<int>(t)));
    }
    for (int j = 0; j < kBlock / 2; ++j) dst[2 + j] = static_cast<uint8_t>(q[j] | (q[j + kBlock / 2] << 4));
  }
}

void QuantizeWeightRow(DType type, const float* x, int64_t n, uint8_t* dst) {
  switch (type) {
    case DType::kQ8_0: QuantizeWeightRowQ8_0(x, n, dst); return;
    case DType::kQ4_0: QuantizeWeightRowQ4_0(x, n, dst); return;
    default: SPOOL_CHECK(false && "QuantizeWeightRow: Q8_0 or Q4_0 only");
  }
}

}  // namespace spool
