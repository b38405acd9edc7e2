// Private to tensor/: the K-quant half of GemmInt8Rows (gemm_int8.h). Q4_K/Q5_K/Q6_K
// weight rows × Q8_K activation rows in 4 × 4 register tiles over panels of 4 weight rows
// unpacked once per activation block; every result equals DotRow's bit for bit
// (DotQ45_K / DotQ6_K: their exact integer lane sums, their f32 steps in their order).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/matmul.h"

namespace spool {

// y[i, r] = DotRow(w.dtype, W row r, act row i) for r in [begin, end), i in [0, m).
// w.dtype: kQ4_K, kQ5_K or kQ6_K; act: [m] Q8_K rows, act_bytes apart; y: [m, n_out].
// Single-threaded (GemmInt8Rows splits the rows over the pool); allocates a scratch of
// ~2.7 KiB per super-block of a row.
void GemmKQuantRows(const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y, int64_t begin,
                    int64_t end);

}  // namespace spool
