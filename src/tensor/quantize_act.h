// F32 activation rows → Q8_0 / Q8_1 / Q8_K blocks, as llama.cpp's CPU backend
// quantises the right-hand side of a quantised matmul (the "vec_dot_type").
//
// Numerics follow llama.cpp on x86 (AVX2 path of quantize_row_q8_0/q8_1 and the
// reference quantize_row_q8_K):
//   Q8_0/Q8_1: amax = max|x|; d = amax/127 (stored f16); q = round_half_even(x * (127/amax))
//              (0 when amax == 0); Q8_1 also stores s = f16(d * sum(q)).
//   Q8_K:      max = the x with the largest |x| (first one on ties); iscale = -127/max;
//              q = min(127, round_half_even(iscale*x)); d = 1/iscale (f32); bsums per 16.
// Each optimised (AVX-512) quantiser is bit-identical to its *Ref twin (tested).
#pragma once

#include <cstdint>

#include "tensor/quant_blocks.h"

namespace spool {

// x: [n], n % 32 == 0      y: [n / 32]
void QuantizeRowQ8_0(const float* x, quant::BlockQ8_0* y, int64_t n);
void QuantizeRowQ8_0Ref(const float* x, quant::BlockQ8_0* y, int64_t n);
// x: [n], n % 32 == 0      y: [n / 32]
void QuantizeRowQ8_1(const float* x, quant::BlockQ8_1* y, int64_t n);
void QuantizeRowQ8_1Ref(const float* x, quant::BlockQ8_1* y, int64_t n);
// x: [n], n % 256 == 0     y: [n / 256]
void QuantizeRowQ8_K(const float* x, quant::BlockQ8_K* y, int64_t n);
void QuantizeRowQ8_KRef(const float* x, quant::BlockQ8_K* y, int64_t n);

}  // namespace spool
