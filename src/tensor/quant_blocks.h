// Byte layouts of GGML's quantised blocks (weights) and of the activation blocks
// the integer dot products use. These are file formats: field order and sizes are
// fixed by GGUF, so each struct is checked against DTypeInfo's block_bytes.
//
// Conventions (GGML's): a block covers 32 elements (kQK) or 256 (kQK_K, "K-quants",
// built of sub-blocks of 16 or 32). `d` is a scale, `m`/`dmin` an offset; f16 values
// are stored as raw uint16_t bits.
#pragma once

#include <cstdint>

namespace spool::quant {

inline constexpr int kQK = 32;     // elements per Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q8_1 block
inline constexpr int kQK_K = 256;  // elements per K-quant super-block

// value[j] = d * (q[j] - 8); q[j] = qs[j] & 15 for j < 16, qs[j-16] >> 4 otherwise.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// value[j] = d * q[j] + m; q as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// value[j] = d * (q[j] - 16); q[j] = low nibble as Q4_0 | (bit j of qh) << 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // little-endian uint32: bit j is element j's fifth bit
  uint8_t qs[kQK / 2];
};
// value[j] = d * q[j] + m; q as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// MXFP4 (OCP microscaling): value[j] = kMxfp4Values[q[j]] * E8M0Half(e), q[j] the
// 4-bit E2M1 code of element j in Q4_0's nibble order (low nibbles = elements 0..15).
// kMxfp4Values are the E2M1 values doubled (so they are integers) and E8M0Half(e) is
// 2^(e-128), half the block's power-of-two scale, as GGML stores them.
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[kQK / 2];
};
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
// 2^(e-128) as GGML's ggml_e8m0_to_fp32_half: subnormal bit patterns for e < 2.
inline float E8M0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? uint32_t{0x00200000} << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

// value[j] = d * qs[j].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// Activation block for Q4_1/Q5_1 weights: like Q8_0 plus s = d * sum(qs) (f16).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};

// 8 sub-blocks of 32; sub-block i: value = d*sc[i]*q - dmin*m[i], with 6-bit sc/m
// packed into `scales` (see UnpackScaleMinK4). Chunk c (64 elements) stores sub-block
// 2c in the low nibbles of qs[32c..32c+31] and sub-block 2c+1 in the high nibbles.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K with a fifth bit: element l of sub-block i has bit i of qh[l].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16: value = d * scales[e/16] * (q - 32), q 6-bit (see dequant.cc).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// Activation block for K-quant weights: f32 scale, and bsums[g] = sum of qs[16g..16g+15].
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockMXFP4) == 17);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Unpacks the 6-bit scale and min of sub-block i (0..7) of a Q4_K/Q5_K block.
inline void UnpackScaleMinK4(int i, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (i < 4) {
    *sc = scales[i] & 63;
    *m = scales[i + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[i + 4] & 0x0F) | ((scales[i - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[i + 4] >> 4) | ((scales[i] >> 6) << 4));
  }
}

}  // namespace spool::quant
