// Conversion of stored weight rows (any DType spool reads) to f32.
//
// Numerics: bit-exact with gguf-py's `gguf.quants.dequantize` (and GGML's
// dequantize_row_*): every value is computed with the same f32 operations in the
// same order, without FMA contraction. tests/tensor/dequant_test.cc checks this
// against committed fixtures from tools/gen_dequant_fixtures.py.
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace spool {

// Converts n elements stored as `t` to f32.
// Preconditions (checked): t is not kI32; n is a multiple of t's block_elems;
// src is aligned to 2 bytes (4 for f32).
// src: [n / block_elems blocks of t]   dst: [n]
void DequantizeRow(DType t, const void* src, float* dst, int64_t n);

// Same, rounded to bf16 (round-to-nearest-even) — used to build GEMM tiles.
// src: [n / block_elems blocks of t]   dst: [n] bf16 bits
void DequantizeRowToBF16(DType t, const void* src, uint16_t* dst, int64_t n);

// MXFP4 in the HF/OpenAI split layout (matmul.h's WeightView): value 2j of a block is
// its byte j's low nibble, 2j + 1 the high one, times 2^(scale − 127); the same f32
// operations as the GGUF layout's (E2M1 doubled × 2^(scale − 128)), so bit-exact with
// gguf-py's dequantisation of what llama.cpp's converter repacks.
// blocks: [n / 2 bytes]   scales: [n / 32]   dst: [n]
void DequantizeMXFP4Split(const uint8_t* blocks, const uint8_t* scales, float* dst, int64_t n);

}  // namespace spool
