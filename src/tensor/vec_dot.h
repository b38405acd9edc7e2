// Row dot products: one stored weight row · one prepared activation row.
//
// Float weights (f32/bf16/f16) dot an f32 activation row in f32. Quantised weights
// follow llama.cpp's CPU numerics: the activation row is first quantised to the
// weight type's partner format (ActFormatFor), then each block's dot product is an
// exact integer sum scaled by the block scales and accumulated in f32:
//   q4_0/q5_0/q8_0 · q8_0,  q4_1/q5_1 · q8_1,  q4_k/q5_k/q6_k · q8_k.
// The optimised (AVX-512 VNNI) and reference versions compute identical integer
// block sums; they differ only in f32 summation order (tested within 1e-5 relative).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/dtype.h"

namespace spool {

enum class ActFormat : uint8_t { kF32, kQ8_0, kQ8_1, kQ8_K };

// The activation format weights of type t are multiplied with. Checks t is a weight type.
ActFormat ActFormatFor(DType t);
// Bytes of one prepared activation row of n elements (n a multiple of the block size).
size_t ActRowBytes(ActFormat f, int64_t n);

// Converts an f32 activation row to format f (a copy for kF32).
// x: [n]   out: [ActRowBytes(f, n) bytes]
void PrepareActivationRow(ActFormat f, const float* x, void* out, int64_t n);
void PrepareActivationRowRef(ActFormat f, const float* x, void* out, int64_t n);

// Returns Σ_j w[j] * a[j] for a weight row stored as t and an activation row prepared
// with ActFormatFor(t). n: elements, a multiple of t's block size.
// w_row: [n elements of t]   act_row: [n elements of ActFormatFor(t)]
// Q4_K prepares its activation layout per call: for many rows, DotRows is the fast path.
float DotRow(DType t, const void* w_row, const void* act_row, int64_t n);
float DotRowRef(DType t, const void* w_row, const void* act_row, int64_t n);

// y[r] = DotRow(t, w + r·w_stride bytes, act_row, n) for r in [0, n_rows), bit for bit,
// with the kernel's constants set up once for all rows instead of once per call (a
// decode GEMV's row of 2048 Q4_K elements is only 8 blocks, so per-call setup is a
// tenth of its instructions).
// w: [n_rows rows of n elements of t, w_stride bytes apart]   act_row: as DotRow   y: [n_rows]
void DotRows(DType t, const void* w, size_t w_stride, const void* act_row, int64_t n, int64_t n_rows, float* y);

// MXFP4 in the HF/OpenAI split layout (see WeightView) · a Q8_0 activation row: the
// same integer block sums and the same f32 order as DotRow(kMXFP4) on the GGUF layout
// of the same values, so both layouts give bit-identical results.
// blocks: [n / 2 bytes]   scales: [n / 32 E8M0 bytes]   act_row: [n elements of Q8_0]
float DotMXFP4Split(const uint8_t* blocks, const uint8_t* scales, const void* act_row, int64_t n);
float DotMXFP4SplitRef(const uint8_t* blocks, const uint8_t* scales, const void* act_row, int64_t n);

}  // namespace spool
