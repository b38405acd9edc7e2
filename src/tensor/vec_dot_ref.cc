// Scalar reference versions of the row dot products (see vec_dot.h).
#include <cstring>

#include "base/check.h"
#include "tensor/quant_blocks.h"
#include "tensor/quantize_act.h"
#include "tensor/vec_dot.h"

namespace spool {
namespace {

using namespace quant;

float F(uint16_t h) { return F16ToF32(h); }

// The 32 quants of a Q4/Q5 block in element order, plus `offset`; with qh, the fifth bits.
// (Written as one 16-step loop on purpose: GCC 12.2 at -O2 -march=native mis-vectorises
// `q = j < 16 ? qs[j] & 15 : qs[j-16] >> 4; sum += (q - 8) * x[j]` over j < 32.)
void Unpack32(const uint8_t* qs, const uint8_t* qh, int offset, int* q) {
  uint32_t h = 0;
  if (qh != nullptr) std::memcpy(&h, qh, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = (qs[j] & 0x0F) + static_cast<int>(((h >> j) & 1) << 4) + offset;
    q[j + 16] = (qs[j] >> 4) + static_cast<int>(((h >> (j + 16)) & 1) << 4) + offset;
  }
}
int IntDot32(const int* q, const int8_t* x) {
  int sum = 0;
  for (int j = 0; j < kQK; ++j) sum += q[j] * x[j];
  return sum;
}

float DotQ4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int q[kQK];
    Unpack32(w[i].qs, nullptr, -8, q);
    const int isum = IntDot32(q, x[i].qs);
    sum += F(w[i].d) * F(x[i].d) * static_cast<float>(isum);
  }
  return sum;
}
float DotMXFP4(const BlockMXFP4* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j)
      isum += kMxfp4Values[w[i].qs[j] & 0x0F] * x[i].qs[j] + kMxfp4Values[w[i].qs[j] >> 4] * x[i].qs[j + kQK / 2];
    sum += E8M0Half(w[i].e) * F(x[i].d) * static_cast<float>(isum);
  }
  return sum;
}
float DotQ4_1(const BlockQ4_1* w, const BlockQ8_1* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int q[kQK];
    Unpack32(w[i].qs, nullptr, 0, q);
    const int isum = IntDot32(q, x[i].qs);
    sum += F(w[i].d) * F(x[i].d) * static_cast<float>(isum) + F(w[i].m) * F(x[i].s);
  }
  return sum;
}
float DotQ5_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int q[kQK];
    Unpack32(w[i].qs, w[i].qh, -16, q);
    const int isum = IntDot32(q, x[i].qs);
    sum += F(w[i].d) * F(x[i].d) * static_cast<float>(isum);
  }
  return sum;
}
float DotQ5_1(const BlockQ5_1* w, const BlockQ8_1* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int q[kQK];
    Unpack32(w[i].qs, w[i].qh, 0, q);
    const int isum = IntDot32(q, x[i].qs);
    sum += F(w[i].d) * F(x[i].d) * static_cast<float>(isum) + F(w[i].m) * F(x[i].s);
  }
  return sum;
}
float DotQ8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += w[i].qs[j] * x[i].qs[j];
    sum += F(w[i].d) * F(x[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K/Q5_K: element e of the block has sub-block e/32; `q5` adds the fifth bit.
template <typename Block, bool kHasHigh>
float DotQ45_K(const Block* w, const BlockQ8_K* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      UnpackScaleMinK4(s, w[i].scales, &sc, &m);
      const int c = s / 2;
      const int shift = (s % 2) * 4;  // sub-block 2c: low nibbles, 2c+1: high nibbles
      int q[32];
      for (int l = 0; l < 32; ++l) {
        q[l] = (w[i].qs[32 * c + l] >> shift) & 0x0F;
        if constexpr (kHasHigh) q[l] |= ((w[i].qh[l] >> s) & 1) << 4;
      }
      const int sub = IntDot32(q, x[i].qs + 32 * s);
      isum += sc * sub;
      msum += m * (x[i].bsums[2 * s] + x[i].bsums[2 * s + 1]);
    }
    const float d = F(w[i].d) * x[i].d, dmin = F(w[i].dmin) * x[i].d;
    sum += d * static_cast<float>(isum) - dmin * static_cast<float>(msum);
  }
  return sum;
}

float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    int q[kQK_K];
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = w[i].ql + 64 * half;
      const uint8_t* qh = w[i].qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        q[128 * half + l] = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        q[128 * half + l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        q[128 * half + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        q[128 * half + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      }
    }
    int isum = 0;
    for (int g = 0; g < 16; ++g) {
      int sub = 0;
      for (int l = 0; l < 16; ++l) sub += q[16 * g + l] * x[i].qs[16 * g + l];
      isum += w[i].scales[g] * sub;
    }
    sum += F(w[i].d) * x[i].d * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

void PrepareActivationRowRef(ActFormat f, const float* x, void* out, int64_t n) {
  switch (f) {
    case ActFormat::kF32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return;
    case ActFormat::kQ8_0: QuantizeRowQ8_0Ref(x, static_cast<BlockQ8_0*>(out), n); return;
    case ActFormat::kQ8_1: QuantizeRowQ8_1Ref(x, static_cast<BlockQ8_1*>(out), n); return;
    case ActFormat::kQ8_K: QuantizeRowQ8_KRef(x, static_cast<BlockQ8_K*>(out), n); return;
  }
}

float DotRowRef(DType t, const void* w, const void* a, int64_t n) {
  const int64_t nb32 = n / kQK, nb256 = n / kQK_K;
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16: {
      const float* x = static_cast<const float*>(a);
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        float wj = t == DType::kF32   ? static_cast<const float*>(w)[j]
                   : t == DType::kF16 ? F16ToF32(static_cast<const uint16_t*>(w)[j])
                                      : BF16ToF32(static_cast<const uint16_t*>(w)[j]);
        sum += wj * x[j];
      }
      return sum;
    }
    case DType::kQ4_0: return DotQ4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kQ4_1: return DotQ4_1(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(a), nb32);
    case DType::kQ5_0: return DotQ5_0(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kQ5_1: return DotQ5_1(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(a), nb32);
    case DType::kQ8_0: return DotQ8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kQ4_K:
      return DotQ45_K<BlockQ4_K, false>(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a), nb256);
    case DType::kQ5_K:
      return DotQ45_K<BlockQ5_K, true>(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a), nb256);
    case DType::kQ6_K: return DotQ6_K(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(a), nb256);
    case DType::kMXFP4: return DotMXFP4(static_cast<const BlockMXFP4*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kI32: case DType::kU8: break;
  }
  SPOOL_CHECK_MSG(false, "DotRowRef: not a weight dtype");
  return 0.0f;
}

}  // namespace spool

namespace spool {

float DotMXFP4SplitRef(const uint8_t* blocks, const uint8_t* scales, const void* a, int64_t n) {
  const auto* x = static_cast<const quant::BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / quant::kQK; ++i) {
    int isum = 0;
    for (int j = 0; j < quant::kQK; ++j) {
      const uint8_t byte = blocks[i * 16 + j / 2];
      isum += quant::kMxfp4Values[j % 2 == 0 ? byte & 0x0F : byte >> 4] * x[i].qs[j];
    }
    sum += quant::E8M0Half(scales[i]) * F16ToF32(x[i].d) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace spool
