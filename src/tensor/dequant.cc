#include "tensor/dequant.h"
#include "tensor/simd_util.h"  // first: wraps <immintrin.h>


#include <cstring>

#include "base/check.h"
#include "tensor/quant_blocks.h"

namespace spool {
namespace {

using namespace quant;

// Each function writes one block's elements to y. Written as plain scalar code in
// GGML's operation order (the library is built with -ffp-contract=off, so `a*b + c`
// rounds twice, exactly like numpy).

void DequantQ4_0(const BlockQ4_0& b, float* y) {
  const float d = F16ToF32(b.d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
  }
}

void DequantMXFP4(const BlockMXFP4& b, float* y) {
  const float d = E8M0Half(b.e);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(kMxfp4Values[b.qs[j] & 0x0F]) * d;
    y[j + kQK / 2] = static_cast<float>(kMxfp4Values[b.qs[j] >> 4]) * d;
  }
}

void DequantQ4_1(const BlockQ4_1& b, float* y) {
  const float d = F16ToF32(b.d), m = F16ToF32(b.m);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(b.qs[j] & 0x0F) * d + m;
    y[j + kQK / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
  }
}

uint32_t LoadQh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

void DequantQ5_0(const BlockQ5_0& b, float* y) {
  const float d = F16ToF32(b.d);
  const uint32_t qh = LoadQh(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int h0 = ((qh >> j) & 1) << 4;
    const int h1 = ((qh >> (j + 16)) & 1) << 4;
    y[j] = static_cast<float>(((b.qs[j] & 0x0F) | h0) - 16) * d;
    y[j + kQK / 2] = static_cast<float>(((b.qs[j] >> 4) | h1) - 16) * d;
  }
}

void DequantQ5_1(const BlockQ5_1& b, float* y) {
  const float d = F16ToF32(b.d), m = F16ToF32(b.m);
  const uint32_t qh = LoadQh(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int h0 = ((qh >> j) & 1) << 4;
    const int h1 = ((qh >> (j + 16)) & 1) << 4;
    y[j] = static_cast<float>((b.qs[j] & 0x0F) | h0) * d + m;
    y[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) | h1) * d + m;
  }
}

void DequantQ8_0(const BlockQ8_0& b, float* y) {
  const float d = F16ToF32(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

void DequantQ4_K(const BlockQ4_K& b, float* y) {
  const float d = F16ToF32(b.d), dmin = F16ToF32(b.dmin);
  for (int c = 0; c < 4; ++c) {
    uint8_t sc0, m0, sc1, m1;
    UnpackScaleMinK4(2 * c, b.scales, &sc0, &m0);
    UnpackScaleMinK4(2 * c + 1, b.scales, &sc1, &m1);
    const float d0 = d * sc0, dm0 = dmin * m0, d1 = d * sc1, dm1 = dmin * m1;
    const uint8_t* q = b.qs + 32 * c;
    for (int l = 0; l < 32; ++l) {
      y[64 * c + l] = d0 * static_cast<float>(q[l] & 0x0F) - dm0;
      y[64 * c + 32 + l] = d1 * static_cast<float>(q[l] >> 4) - dm1;
    }
  }
}

void DequantQ5_K(const BlockQ5_K& b, float* y) {
  const float d = F16ToF32(b.d), dmin = F16ToF32(b.dmin);
  for (int c = 0; c < 4; ++c) {
    uint8_t sc0, m0, sc1, m1;
    UnpackScaleMinK4(2 * c, b.scales, &sc0, &m0);
    UnpackScaleMinK4(2 * c + 1, b.scales, &sc1, &m1);
    const float d0 = d * sc0, dm0 = dmin * m0, d1 = d * sc1, dm1 = dmin * m1;
    const uint8_t* q = b.qs + 32 * c;
    for (int l = 0; l < 32; ++l) {
      const int h0 = ((b.qh[l] >> (2 * c)) & 1) << 4;
      const int h1 = ((b.qh[l] >> (2 * c + 1)) & 1) << 4;
      y[64 * c + l] = d0 * static_cast<float>((q[l] & 0x0F) | h0) - dm0;
      y[64 * c + 32 + l] = d1 * static_cast<float>((q[l] >> 4) | h1) - dm1;
    }
  }
}

void DequantQ6_K(const BlockQ6_K& b, float* y) {
  const float d = F16ToF32(b.d);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    const int8_t* sc = b.scales + 8 * half;
    float* out = y + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = (d * sc[is + 0]) * static_cast<float>(q1);
      out[l + 32] = (d * sc[is + 2]) * static_cast<float>(q2);
      out[l + 64] = (d * sc[is + 4]) * static_cast<float>(q3);
      out[l + 96] = (d * sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

template <typename Block, void (*Fn)(const Block&, float*), int kElems>
void DequantBlocks(const void* src, float* dst, int64_t n) {
  const Block* blocks = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kElems; ++i) Fn(blocks[i], dst + i * kElems);
}

}  // namespace

void DequantizeRow(DType t, const void* src, float* dst, int64_t n) {
  const DTypeInfo& info = GetDTypeInfo(t);
  SPOOL_CHECK(t != DType::kI32 && t != DType::kU8);
  SPOOL_CHECK(n >= 0 && n % info.block_elems == 0);
  SPOOL_CHECK(reinterpret_cast<uintptr_t>(src) % (t == DType::kF32 ? 4 : 2) == 0);
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      int64_t i = 0;
      for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
      for (; i < n; ++i) dst[i] = F16ToF32(h[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(h[i]);
      return;
    }
    case DType::kQ4_0: return DequantBlocks<BlockQ4_0, DequantQ4_0, kQK>(src, dst, n);
    case DType::kQ4_1: return DequantBlocks<BlockQ4_1, DequantQ4_1, kQK>(src, dst, n);
    case DType::kQ5_0: return DequantBlocks<BlockQ5_0, DequantQ5_0, kQK>(src, dst, n);
    case DType::kQ5_1: return DequantBlocks<BlockQ5_1, DequantQ5_1, kQK>(src, dst, n);
    case DType::kQ8_0: return DequantBlocks<BlockQ8_0, DequantQ8_0, kQK>(src, dst, n);
    case DType::kQ4_K: return DequantBlocks<BlockQ4_K, DequantQ4_K, kQK_K>(src, dst, n);
    case DType::kQ5_K: return DequantBlocks<BlockQ5_K, DequantQ5_K, kQK_K>(src, dst, n);
    case DType::kQ6_K: return DequantBlocks<BlockQ6_K, DequantQ6_K, kQK_K>(src, dst, n);
    case DType::kMXFP4: return DequantBlocks<BlockMXFP4, DequantMXFP4, kQK>(src, dst, n);
    case DType::kI32: case DType::kU8: break;
  }
  SPOOL_CHECK_MSG(false, "DequantizeRow: unhandled dtype");
}

void DequantizeMXFP4Split(const uint8_t* blocks, const uint8_t* scales, float* dst, int64_t n) {
  SPOOL_CHECK(n >= 0 && n % kQK == 0);
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float d = E8M0Half(scales[i]);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[i * kQK + 2 * j] = static_cast<float>(kMxfp4Values[blocks[i * 16 + j] & 0x0F]) * d;
      dst[i * kQK + 2 * j + 1] = static_cast<float>(kMxfp4Values[blocks[i * 16 + j] >> 4]) * d;
    }
  }
}

void DequantizeRowToBF16(DType t, const void* src, uint16_t* dst, int64_t n) {
  if (t == DType::kBF16) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 2);
    return;
  }
  // Work in chunks of 256 elements (a multiple of every block size) on the stack.
  const DTypeInfo& info = GetDTypeInfo(t);
  SPOOL_CHECK(n >= 0 && n % info.block_elems == 0);
  alignas(64) float tmp[256];
  const uint8_t* s = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  while (i < n) {
    const int64_t chunk = (n - i) >= 256 ? 256 : (n - i);
    DequantizeRow(t, s + (i / info.block_elems) * info.block_bytes, tmp, chunk);
    int64_t j = 0;
    for (; j + 16 <= chunk; j += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + j),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(tmp + j))));
    for (; j < chunk; ++j) dst[i + j] = F32ToBF16(tmp[j]);
    i += chunk;
  }
}

}  // namespace spool
