#include "base/dtype.h"

#include <limits>

namespace spool {

namespace {
// Block layouts follow GGML's (see formats/gguf.cc and tensor/dequant.cc).
constexpr DTypeInfo kInfos[] = {
    {"f32", 1, 4, false},    {"f16", 1, 2, false},    {"bf16", 1, 2, false},
    {"q8_0", 32, 34, true},  {"q4_0", 32, 18, true},  {"q4_1", 32, 20, true},
    {"q5_0", 32, 22, true},  {"q5_1", 32, 24, true},  {"q4_k", 256, 144, true},
    {"q5_k", 256, 176, true}, {"q6_k", 256, 210, true}, {"i32", 1, 4, false},
    {"mxfp4", 32, 17, true}, {"u8", 1, 1, false},
};
}  // namespace

const DTypeInfo& GetDTypeInfo(DType t) { return kInfos[static_cast<int>(t)]; }

std::optional<DType> DTypeFromName(std::string_view name) {
  for (int i = 0; i < static_cast<int>(sizeof kInfos / sizeof kInfos[0]); ++i)
    if (kInfos[i].name == name) return static_cast<DType>(i);
  return std::nullopt;
}

std::optional<uint64_t> DTypeBytes(DType t, uint64_t n_elems) {
  const DTypeInfo& info = GetDTypeInfo(t);
  if (n_elems % info.block_elems != 0) return std::nullopt;
  uint64_t blocks = n_elems / info.block_elems;
  if (blocks > std::numeric_limits<uint64_t>::max() / info.block_bytes) return std::nullopt;
  return blocks * info.block_bytes;
}

float F16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | mant << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | static_cast<uint32_t>(e) << 10 | mant >> 13;
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into exponent: correct
  return static_cast<uint16_t>(half);
}

}  // namespace spool
