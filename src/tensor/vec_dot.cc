// AVX-512 (F, BW, VL, VNNI, F16C) row dot products. Requires a CPU with these
// extensions; the build uses -march=native (see docs/parts/tensor.md).
#include "tensor/vec_dot.h"
#include "tensor/simd_util.h"  // first: wraps <immintrin.h>


#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "tensor/quant_blocks.h"
#include "tensor/quantize_act.h"

namespace spool {
namespace {

using namespace quant;

inline float F(uint16_t h) { return _cvtsh_ss(h); }

// ---- float weights ----------------------------------------------------------------

// Loads 16 weights as f32; `mask` selects lanes for the tail.
inline __m512 LoadF32(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
inline __m512 LoadBF16(const uint16_t* p, __mmask16 mask) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
inline __m512 LoadF16(const uint16_t* p, __mmask16 mask) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
}

template <typename T, __m512 (*Load)(const T*, __mmask16)>
float DotFloat(const T* w, const float* x, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    acc0 = _mm512_fmadd_ps(Load(w + j, 0xFFFF), _mm512_loadu_ps(x + j), acc0);
    acc1 = _mm512_fmadd_ps(Load(w + j + 16, 0xFFFF), _mm512_loadu_ps(x + j + 16), acc1);
  }
  for (; j < n; j += 16) {
    const int64_t left = n - j;
    const __mmask16 mask = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    acc0 = _mm512_fmadd_ps(Load(w + j, mask), _mm512_maskz_loadu_ps(mask, x + j), acc0);
  }
  return simd::ReduceAdd(_mm512_add_ps(acc0, acc1));
}

// ---- 32-element blocks --------------------------------------------------------------

// The 32 4-bit values of a Q4/Q5 block in element order (low nibbles, then high).
inline __m256i Nibbles32(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}
// Adds 16 to element j where bit j of the block's qh is set (Q5's fifth bit).
inline __m256i AddHighBit(__m256i w, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return _mm256_mask_add_epi8(w, static_cast<__mmask32>(bits), w, _mm256_set1_epi8(16));
}
inline __m256i LoadQ8(const int8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }
// Per-lane (8 lanes of 4 elements) integer dot of unsigned w and signed x.
inline __m256i DotU8S8(__m256i w, __m256i x) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x); }

// Loops over nb blocks with one accumulator of 8 f32 lanes (lane k holds the products
// of elements 4k..4k+3 of every block): block(i, acc) returns acc + block i's
// contribution. One accumulator, blocks in order, then hsum ((hi+lo), then pairs) is
// llama.cpp's AVX2/AVX-512 order for the 32-element block dots (ggml-cpu x86
// quants.c), so these dots are bit-identical to llama.cpp's (tests/models/
// smollm2_parity_test.cc checks the whole forward pass against its intermediates).
template <typename BlockFn>
[[gnu::always_inline]] inline float BlockLoop(int64_t nb, BlockFn block) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) acc = block(i, acc);
  return simd::ReduceAdd(acc);
}

float DotQ4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  const __m256i eight = _mm256_set1_epi8(8);
  return BlockLoop(nb, [&](int64_t i, __m256 acc) {
    const __m256i xq = LoadQ8(x[i].qs);
    const __m256i dot = _mm256_sub_epi32(DotU8S8(Nibbles32(w[i].qs), xq), DotU8S8(eight, xq));
    return _mm256_fmadd_ps(_mm256_set1_ps(F(w[i].d) * F(x[i].d)), _mm256_cvtepi32_ps(dot), acc);
  });
}
float DotQ5_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t nb) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  return BlockLoop(nb, [&](int64_t i, __m256 acc) {
    const __m256i xq = LoadQ8(x[i].qs);
    const __m256i wq = AddHighBit(Nibbles32(w[i].qs), w[i].qh);
    const __m256i dot = _mm256_sub_epi32(DotU8S8(wq, xq), DotU8S8(sixteen, xq));
    return _mm256_fmadd_ps(_mm256_set1_ps(F(w[i].d) * F(x[i].d)), _mm256_cvtepi32_ps(dot), acc);
  });
}
float DotQ4_1(const BlockQ4_1* w, const BlockQ8_1* x, int64_t nb) {
  float offsets = 0.0f;
  const float s = BlockLoop(nb, [&](int64_t i, __m256 acc) {
    offsets += F(w[i].m) * F(x[i].s);
    const __m256i dot = DotU8S8(Nibbles32(w[i].qs), LoadQ8(x[i].qs));
    return _mm256_fmadd_ps(_mm256_set1_ps(F(w[i].d) * F(x[i].d)), _mm256_cvtepi32_ps(dot), acc);
  });
  return s + offsets;
}
float DotQ5_1(const BlockQ5_1* w, const BlockQ8_1* x, int64_t nb) {
  float offsets = 0.0f;
  const float s = BlockLoop(nb, [&](int64_t i, __m256 acc) {
    offsets += F(w[i].m) * F(x[i].s);
    const __m256i dot = DotU8S8(AddHighBit(Nibbles32(w[i].qs), w[i].qh), LoadQ8(x[i].qs));
    return _mm256_fmadd_ps(_mm256_set1_ps(F(w[i].d) * F(x[i].d)), _mm256_cvtepi32_ps(dot), acc);
  });
  return s + offsets;
}
float DotQ8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  return BlockLoop(nb, [&](int64_t i, __m256 acc) {
    const __m256i wq = LoadQ8(w[i].qs);
    // |w| (unsigned) · (x with w's sign): exact while x != -128, which Q8_0 activations never are.
    const __m256i dot = DotU8S8(_mm256_abs_epi8(wq), _mm256_sign_epi8(LoadQ8(x[i].qs), wq));
    return _mm256_fmadd_ps(_mm256_set1_ps(F(w[i].d) * F(x[i].d)), _mm256_cvtepi32_ps(dot), acc);
  });
}

// MXFP4 · Q8_0 in llama.cpp's AVX2 order (ggml_vec_dot_mxfp4_q8_0): even blocks in one
// accumulator, odd blocks in another, pairs of blocks per step, (acc_even + acc_odd)
// reduced; an odd last block is added as a scalar d·isum afterwards. Values are the
// doubled E2M1 codes (signed int8 via a 16-entry table) and d = E8M0Half(e) · d_x.
float DotMXFP4(const BlockMXFP4* w, const BlockQ8_0* x, int64_t nb) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  auto block_dot = [&](int64_t i) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].qs));
    const __m256i wv = _mm256_set_m128i(_mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4)),
                                        _mm_shuffle_epi8(table, _mm_and_si128(q, m4)));
    // |w| (unsigned) · (x with w's sign): exact while x != -128, which Q8_0 activations never are.
    return DotU8S8(_mm256_abs_epi8(wv), _mm256_sign_epi8(LoadQ8(x[i].qs), wv));
  };
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m256i d0 = block_dot(i), d1 = block_dot(i + 1);
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(F(x[i].d) * E8M0Half(w[i].e)), _mm256_cvtepi32_ps(d0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(F(x[i + 1].d) * E8M0Half(w[i + 1].e)), _mm256_cvtepi32_ps(d1), acc1);
  }
  float sum = simd::ReduceAdd(_mm256_add_ps(acc0, acc1));
  for (; i < nb; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j)
      isum += x[i].qs[j] * kMxfp4Values[w[i].qs[j] & 0x0F] + x[i].qs[j + kQK / 2] * kMxfp4Values[w[i].qs[j] >> 4];
    sum = std::fma(F(x[i].d) * E8M0Half(w[i].e), static_cast<float>(isum), sum);
  }
  return sum;
}

// The same in the HF split layout: byte j of a block holds elements 2j (low nibble)
// and 2j + 1 (high); the nibbles are put in element order in registers, after which
// every step is DotMXFP4's (so the results are bit-identical).
float DotMXFP4SplitImpl(const uint8_t* blocks, const uint8_t* scales, const BlockQ8_0* x, int64_t nb) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  auto block_dot = [&](int64_t i) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + i * 16));
    const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));                    // elements 0, 2, 4, ...
    const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));  // elements 1, 3, 5, ...
    const __m256i wv = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
    return DotU8S8(_mm256_abs_epi8(wv), _mm256_sign_epi8(LoadQ8(x[i].qs), wv));
  };
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m256i d0 = block_dot(i), d1 = block_dot(i + 1);
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(F(x[i].d) * E8M0Half(scales[i])), _mm256_cvtepi32_ps(d0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(F(x[i + 1].d) * E8M0Half(scales[i + 1])), _mm256_cvtepi32_ps(d1), acc1);
  }
  float sum = simd::ReduceAdd(_mm256_add_ps(acc0, acc1));
  for (; i < nb; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j)
      isum += x[i].qs[2 * j] * kMxfp4Values[blocks[i * 16 + j] & 0x0F] +
              x[i].qs[2 * j + 1] * kMxfp4Values[blocks[i * 16 + j] >> 4];
    sum = std::fma(F(x[i].d) * E8M0Half(scales[i]), static_cast<float>(isum), sum);
  }
  return sum;
}

// The row loop of DotRows: `dot` is an inlined kernel, so the compiler hoists its
// constants out of the loop.
template <typename Dot>
inline void RowLoop(const void* w, size_t stride, int64_t rows, float* y, Dot dot) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  for (int64_t r = 0; r < rows; ++r) y[r] = dot(p + static_cast<size_t>(r) * stride);
}

// ---- K-quants ----------------------------------------------------------------------

// Σ over 32 elements of u·x (u unsigned ≤ 63) times an int16 scale, as 8 int32 lanes.
inline __m256i ScaledDot32(__m256i u, __m256i x, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), scale16);
}

// The eight 6-bit sub-block scales (bytes 0-7) and mins (bytes 8-15) of a Q4_K/Q5_K
// block: UnpackScaleMinK4(i) for i = 0..7, with 32-bit word operations.
inline void UnpackScalesMinsK4(const uint8_t* scales, uint8_t out[16]) {
  uint32_t u[3], o[4];
  std::memcpy(u, scales, 12);
  o[0] = u[0] & 0x3f3f3f3fu;                                                 // sc 0-3: scales[i] & 63
  o[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);          // sc 4-7
  o[2] = u[1] & 0x3f3f3f3fu;                                                 // m 0-3: scales[i+4] & 63
  o[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);  // m 4-7
  std::memcpy(out, o, 16);
}

// Σ_k m[k]·(bsums[2k] + bsums[2k+1]) over the 8 sub-blocks, exact in int32.
inline int MinSum(const uint8_t* m, const int16_t* bsums) {
  const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8)));
  const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
  __m128i s = _mm_madd_epi16(mins, pairs);
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Two 32-byte activation chunks as one 512-bit vector: [p0[0..32) | p1[0..32)].
inline __m512i LoadQ8Pair(const int8_t* p0, const int8_t* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(LoadQ8(p0)), LoadQ8(p1), 1);
}

// A 64-byte chunk (qs[64h, 64h+64)) holds sub-blocks 4h (low nibbles of its first 32
// bytes), 4h+1 (their high nibbles), 4h+2 and 4h+3 (the same in its last 32 bytes). Each
// 512-bit step takes a pair of sub-blocks (4h, 4h+2), then (4h+1, 4h+3): 32 weights
// each, their activations side by side, their scales in the matching 16-bit lanes
// (vpermw of the eight scales). The integer block sum is exact, so the order of these
// steps does not change the result: bit-identical to the 256-bit loop it replaced.
template <typename Block, bool kHasHigh>
float DotQ45_K(const Block* w, const BlockQ8_K* x, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i sixteen = _mm512_set1_epi8(16);
  // vpermw indices: lanes 0-15 take scale j, lanes 16-31 scale j + 2.
  auto pair_index = [](int j) {
    return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(j)), _mm256_set1_epi16(static_cast<int16_t>(j + 2)), 1);
  };
  const __m512i idx[4] = {pair_index(0), pair_index(1), pair_index(4), pair_index(5)};
  float min_terms = 0.0f;
  const float s = BlockLoop(nb, [&](int64_t i, __m256 acc) {
    alignas(16) uint8_t sm[16];  // scales 0-7, mins 8-15
    UnpackScalesMinsK4(w[i].scales, sm);
    const int msum = MinSum(sm + 8, x[i].bsums);
    const __m512i sc16 = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm))));
    __m512i qh;
    if constexpr (kHasHigh) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh));
      qh = _mm512_inserti64x4(_mm512_castsi256_si512(h), h, 1);
    }
    __m512i isum = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_loadu_si512(w[i].qs + 64 * h);
      __m512i lo = _mm512_and_si512(q, m4);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      if constexpr (kHasHigh) {
        // Sub-block j's fifth bits are bit j of qh: lanes 0-31 hold sub-block 4h (+1 for
        // hi), lanes 32-63 sub-block 4h+2 (+1).
        const __m512i bit_lo = _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << (4 * h))),
                                                  _mm256_set1_epi8(static_cast<char>(1 << (4 * h + 2))), 1);
        const __m512i bit_hi = _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(2 << (4 * h))),
                                                  _mm256_set1_epi8(static_cast<char>(2 << (4 * h + 2))), 1);
        lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh, bit_lo), lo, sixteen);
        hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(qh, bit_hi), hi, sixteen);
      }
      const int8_t* xq = x[i].qs + 128 * h;
      const __m512i x_lo = LoadQ8Pair(xq, xq + 64), x_hi = LoadQ8Pair(xq + 32, xq + 96);
      isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(lo, x_lo), _mm512_permutexvar_epi16(idx[2 * h], sc16)));
      isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(hi, x_hi), _mm512_permutexvar_epi16(idx[2 * h + 1], sc16)));
    }
    // Fold to the 8 lanes of the 256-bit order: lane k sums the same products as before
    // (integer, so any grouping is exact).
    const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    const float d = F(w[i].d) * x[i].d;
    min_terms += F(w[i].dmin) * x[i].d * static_cast<float>(msum);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum8), acc);
  });
  return s - min_terms;
}

// The scales (bytes 0-7) and mins (bytes 8-15) of a Q4_K/Q5_K block in a register:
// UnpackScalesMinsK4's four 32-bit words, computed lane by lane. Reads 16 bytes from
// `scales` (the 12 scale bytes and the first 4 of qs: inside the block).
inline __m128i ScalesMinsK4(const uint8_t* scales) {
  const __m128i u = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales));  // [u0, u1, u2, -]
  const __m128i a = _mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0));                // [u0, u2, u1, u2]
  const __m128i b = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));                // [u0, u0, u1, u1]
  // Lanes 0, 2: u0 & 63…, u1 & 63…; lanes 1, 3: the low (u2) / high (u2 >> 4) nibbles,
  // bits 4-5 from the top two bits of u0 / u1 ((u >> 6) & 3) << 4 == (u >> 2) & 0x30 per byte).
  const __m128i lo = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                                   _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i hi = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(lo, hi);
}

// A Q8_K activation block prepared for Q4_K rows (once per activation row, shared by
// every weight row of a GEMV): qs with its 32-element sub-blocks in the order the
// weight nibbles come out of one 64-byte load — [0, 2, 1, 3, 4, 6, 5, 7] (a load of
// qs[64h, 64h+64) gives sub-blocks 4h and 4h+2 in its low nibbles, 4h+1 and 4h+3 in its
// high ones) — the sub-block sums bsums[2k] + bsums[2k+1] as int16, and d.
struct alignas(64) Q4KAct {
  int8_t qs[kQK_K];
  int16_t sub_sums[8];
  float d;
};

void PrepareQ4KAct(const BlockQ8_K* x, int64_t nb, Q4KAct* out) {
  static constexpr int kOrder[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < 8; ++j) std::memcpy(out[i].qs + 32 * j, x[i].qs + 32 * kOrder[j], 32);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].sub_sums),
                     _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].bsums)),
                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].bsums + 8))));
    out[i].d = x[i].d;
  }
}

// Q4_K · Q8_K in 512-bit steps: each 64-byte load of nibbles gives two steps (low
// nibbles: sub-blocks 4h | 4h+2, high: 4h+1 | 4h+3, one per 256-bit half) whose
// activations are one contiguous 64-byte load of the prepared row; the scales of a step
// are one in-lane byte shuffle of the broadcast scales (zero-extended to int16), and
// vpdpwssd applies them and accumulates in one instruction. Lane k of the folded 8-lane
// sum holds Σ_s sc_s·Σ_{e=4k..4k+3} q·x over the 8 sub-blocks, as the 256-bit loop's
// (and llama.cpp's AVX2) lane k does: integer sums are exact, so the f32 steps that
// follow (same operations, same order) give a bit-identical result.
[[gnu::always_inline]] inline float DotQ4_K(const BlockQ4_K* w, const Q4KAct* x, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  // pshufb indices per 128-bit lane: scale a in the low half, b in the high half, as
  // (byte, zero) pairs.
  auto scale_index = [](int a, int b) {
    const __m256i lo = _mm256_set1_epi16(static_cast<int16_t>(0x8000 | a));
    const __m256i hi = _mm256_set1_epi16(static_cast<int16_t>(0x8000 | b));
    return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
  };
  const __m512i sidx[4] = {scale_index(0, 2), scale_index(1, 3), scale_index(4, 6), scale_index(5, 7)};
  // The mins (bytes 8-15) as int16.
  const __m128i midx = _mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1);
  float min_terms = 0.0f;
  const float s = BlockLoop(nb, [&](int64_t i, __m256 acc) {
    const __m128i sm = ScalesMinsK4(w[i].scales);
    __m128i m4s = _mm_madd_epi16(_mm_shuffle_epi8(sm, midx),
                                 _mm_load_si128(reinterpret_cast<const __m128i*>(x[i].sub_sums)));  // Σ m·sums, exact
    m4s = _mm_add_epi32(m4s, _mm_shuffle_epi32(m4s, 0x4E));
    m4s = _mm_add_epi32(m4s, _mm_shuffle_epi32(m4s, 0xB1));
    const int msum = _mm_cvtsi128_si32(m4s);
    const __m512i sc = _mm512_broadcast_i32x4(sm);
    __m512i isum0 = _mm512_setzero_si512(), isum1 = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i q = _mm512_loadu_si512(w[i].qs + 64 * h);
      const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      const int8_t* xq = x[i].qs + 128 * h;
      isum0 = _mm512_dpwssd_epi32(isum0, _mm512_maddubs_epi16(lo, _mm512_load_si512(xq)), _mm512_shuffle_epi8(sc, sidx[2 * h]));
      isum1 = _mm512_dpwssd_epi32(isum1, _mm512_maddubs_epi16(hi, _mm512_load_si512(xq + 64)),
                                  _mm512_shuffle_epi8(sc, sidx[2 * h + 1]));
    }
    const __m512i isum = _mm512_add_epi32(isum0, isum1);
    const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    // [d, dmin] (adjacent f16) in one conversion, both × x.d: the same two f32 products.
    uint32_t d_dmin;
    std::memcpy(&d_dmin, &w[i].d, 4);
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d_dmin))), _mm_set1_ps(x[i].d));
    min_terms += _mm_cvtss_f32(_mm_movehdup_ps(dd)) * static_cast<float>(msum);
    return _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(isum8), acc);
  });
  return s - min_terms;
}

// Q4_K rows · one Q8_K activation row: the activation prepared once (on the stack up to
// kMaxStackBlocks blocks, else on the heap), then every row.
void DotRowsQ4_K(const void* w, size_t stride, const BlockQ8_K* x, int64_t nb, int64_t rows, float* y) {
  constexpr int64_t kMaxStackBlocks = 64;  // rows up to 16384 elements: 20 KiB
  Q4KAct stack[kMaxStackBlocks];
  std::vector<Q4KAct> heap;
  Q4KAct* prepared = stack;
  if (nb > kMaxStackBlocks) {
    heap.resize(static_cast<size_t>(nb));
    prepared = heap.data();
  }
  PrepareQ4KAct(x, nb, prepared);
  RowLoop(w, stride, rows, y, [&](const uint8_t* row) { return DotQ4_K(reinterpret_cast<const BlockQ4_K*>(row), prepared, nb); });
}

// Q6_K in 512-bit steps: a step takes two 32-element chunks side by side (chunks 0 and 1
// of a half: the low nibbles of its 64 ql bytes; chunks 2 and 3: the high nibbles), their
// activations one contiguous 64-byte load, the 2-bit high parts shifted into place per
// 256-bit lane (vpsllvw / vpsrlvw), and the four 16-element scales of the step spread one
// per 128-bit lane (vpermw). Lane k of the folded 8-lane sum then holds the same products
// as the 256-bit loop it replaced (the integer sums are exact, so grouping changes
// nothing): bit-identical to it, and to llama.cpp's order of the f32 steps.
[[gnu::always_inline]] inline float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  auto halves8 = [](char lo, char hi) { return _mm512_inserti64x4(_mm512_set1_epi8(lo), _mm256_set1_epi8(hi), 1); };
  auto halves16 = [](int16_t lo, int16_t hi) { return _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1); };
  // Chunks 0 | 1: qh bits 0-1 (<< 4) | bits 2-3 (<< 2); chunks 2 | 3: bits 4-5 | bits 6-7 (>> 2).
  const __m512i hmask01 = halves8(0x03, 0x0C), hshl01 = halves16(4, 2);
  const __m512i hmask23 = halves8(0x30, static_cast<char>(0xC0)), hshr23 = halves16(0, 2);
  // vpermw indices: 128-bit lane L of step p takes scale 4p + L of the half's eight.
  const __m512i sidx0 = _mm512_set_epi64(0x0003000300030003, 0x0003000300030003, 0x0002000200020002, 0x0002000200020002,
                                         0x0001000100010001, 0x0001000100010001, 0, 0);
  const __m512i sidx1 = _mm512_add_epi16(sidx0, _mm512_set1_epi16(4));
  return BlockLoop(nb, [&](int64_t i, __m256 acc) {
    // Stored q is unsigned 0..63 meaning q-32: Σ(q-32)x·s = Σ q·x·s - 32 Σ s·bsum.
    const __m256i prod = _mm256_madd_epi16(
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].bsums)));
    const int corr = simd::ReduceAdd(_mm512_zextsi256_si512(prod));  // Σ_g scales[g]·bsums[g], exact
    __m512i isum = _mm512_setzero_si512();
    for (int half = 0; half < 2; ++half) {
      const __m512i ql = _mm512_loadu_si512(w[i].ql + 64 * half);
      const __m256i qh256 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh + 32 * half));
      const __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), qh256, 1);
      const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_sllv_epi16(_mm512_and_si512(qh, hmask01), hshl01));
      const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_srlv_epi16(_mm512_and_si512(qh, hmask23), hshr23));
      const __m512i sc = _mm512_castsi128_si512(
          _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[i].scales + 8 * half))));
      const int8_t* xq = x[i].qs + 128 * half;
      // vpdpwssd: the scale multiply-add and the accumulation in one instruction.
      isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q01, _mm512_loadu_si512(xq)), _mm512_permutexvar_epi16(sidx0, sc));
      isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q23, _mm512_loadu_si512(xq + 64)), _mm512_permutexvar_epi16(sidx1, sc));
    }
    __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    const float d = F(w[i].d) * x[i].d;
    isum8 = _mm256_sub_epi32(isum8, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum8), acc);
  });
}

}  // namespace

ActFormat ActFormatFor(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16: return ActFormat::kF32;
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
    case DType::kMXFP4: return ActFormat::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1: return ActFormat::kQ8_1;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return ActFormat::kQ8_K;
    case DType::kI32: case DType::kU8: break;
  }
  SPOOL_CHECK_MSG(false, "ActFormatFor: not a weight dtype");
  return ActFormat::kF32;
}

size_t ActRowBytes(ActFormat f, int64_t n) {
  switch (f) {
    case ActFormat::kF32: return static_cast<size_t>(n) * 4;
    case ActFormat::kQ8_0: return static_cast<size_t>(n / kQK) * sizeof(BlockQ8_0);
    case ActFormat::kQ8_1: return static_cast<size_t>(n / kQK) * sizeof(BlockQ8_1);
    case ActFormat::kQ8_K: return static_cast<size_t>(n / kQK_K) * sizeof(BlockQ8_K);
  }
  return 0;
}

void PrepareActivationRow(ActFormat f, const float* x, void* out, int64_t n) {
  switch (f) {
    case ActFormat::kF32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return;
    case ActFormat::kQ8_0: QuantizeRowQ8_0(x, static_cast<BlockQ8_0*>(out), n); return;
    case ActFormat::kQ8_1: QuantizeRowQ8_1(x, static_cast<BlockQ8_1*>(out), n); return;
    case ActFormat::kQ8_K: QuantizeRowQ8_K(x, static_cast<BlockQ8_K*>(out), n); return;
  }
}

float DotRow(DType t, const void* w, const void* a, int64_t n) {
  const int64_t nb32 = n / kQK, nb256 = n / kQK_K;
  const float* xf = static_cast<const float*>(a);
  switch (t) {
    case DType::kF32: return DotFloat<float, LoadF32>(static_cast<const float*>(w), xf, n);
    case DType::kF16: return DotFloat<uint16_t, LoadF16>(static_cast<const uint16_t*>(w), xf, n);
    case DType::kBF16: return DotFloat<uint16_t, LoadBF16>(static_cast<const uint16_t*>(w), xf, n);
    case DType::kQ4_0: return DotQ4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kQ4_1: return DotQ4_1(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(a), nb32);
    case DType::kQ5_0: return DotQ5_0(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kQ5_1: return DotQ5_1(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(a), nb32);
    case DType::kQ8_0: return DotQ8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kQ4_K: {  // one row: the activation is prepared for this call alone
      float y;
      DotRowsQ4_K(w, 0, static_cast<const BlockQ8_K*>(a), nb256, 1, &y);
      return y;
    }
    case DType::kQ5_K:
      return DotQ45_K<BlockQ5_K, true>(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a), nb256);
    case DType::kQ6_K: return DotQ6_K(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(a), nb256);
    case DType::kMXFP4: return DotMXFP4(static_cast<const BlockMXFP4*>(w), static_cast<const BlockQ8_0*>(a), nb32);
    case DType::kI32: case DType::kU8: break;
  }
  SPOOL_CHECK_MSG(false, "DotRow: not a weight dtype");
  return 0.0f;
}

void DotRows(DType t, const void* w, size_t w_stride, const void* a, int64_t n, int64_t n_rows, float* y) {
  const int64_t nb256 = n / kQK_K;
  switch (t) {
    case DType::kQ4_K: return DotRowsQ4_K(w, w_stride, static_cast<const BlockQ8_K*>(a), nb256, n_rows, y);
    case DType::kQ6_K: {
      const auto* x = static_cast<const BlockQ8_K*>(a);
      return RowLoop(w, w_stride, n_rows, y, [&](const uint8_t* row) { return DotQ6_K(reinterpret_cast<const BlockQ6_K*>(row), x, nb256); });
    }
    default: break;
  }
  RowLoop(w, w_stride, n_rows, y, [&](const uint8_t* row) { return DotRow(t, row, a, n); });
}

float DotMXFP4Split(const uint8_t* blocks, const uint8_t* scales, const void* a, int64_t n) {
  return DotMXFP4SplitImpl(blocks, scales, static_cast<const BlockQ8_0*>(a), n / kQK);
}

}  // namespace spool
