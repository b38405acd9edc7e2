// Weight quantisers (not the activation quantisers of quantize_act.h): f32 rows → GGML blocks, bit for bit what gguf-py's
// `gguf.quants.quantize` writes (and so llama.cpp's reference quantize_row_*_ref), for
// the types spool makes copies in (speculative self-drafts, issue 16).
//
//   Q8_0 (32 per block): d = max|x| / 127, q = round-half-away(x / d) (computed as
//        x · (1/d), gguf-py's np_roundf), bytes [f16 d][32 × int8].
//   Q4_0 (32 per block): m = the x of largest |x| (the first on ties), d = m / −8,
//        q = min(15, trunc(x · (1/d) + 8.5)), bytes [f16 d][16 × (q[j] | q[j+16] << 4)].
// d == 0 (an all-zero block) stores 0 and q = 0 (Q8_0) / 8 (Q4_0). f16 conversion
// rounds to nearest even. All arithmetic in f32 with no fused multiply-add (the part
// builds with -ffp-contract=off), as numpy's.
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace spool {

// n must be a multiple of 32. dst: n / 32 blocks (34 bytes each for Q8_0, 18 for Q4_0).
void QuantizeWeightRowQ8_0(const float* x, int64_t n, uint8_t* dst);
void QuantizeWeightRowQ4_0(const float* x, int64_t n, uint8_t* dst);
// type: kQ8_0 or kQ4_0 (checked).
void QuantizeWeightRow(DType type, const float* x, int64_t n, uint8_t* dst);

}  // namespace spool
