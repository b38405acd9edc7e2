// Quantised weights × Q8 activations for many activation rows at once (prefill chunks,
// verification rows, batched decode), with the GEMV's numerics bit for bit.
//
// MatMulGemv with m > 1 runs register tiles of 4 weight rows × 4 activation rows over the
// whole reduction. Activation rows are taken in L2-sized blocks; for each block, every
// panel of 4 weight rows is unpacked once into a thread-local scratch (unsigned codes,
// scales as vectors laid out for the tile's 16 pairs), then met by 4 activation rows at a
// time, two activation rows per 512-bit register. Every (weight row, activation row) pair
// goes through exactly DotRow's operations in DotRow's order: the block's integer lane
// sums (exact, however they are formed), `acc = fma(d_w·d_x, lanes, acc)` over blocks in
// order, Q*_1's `offsets += m_w·s_x` / the K-quants' min terms in f32, then
// simd::ReduceAdd(acc) (+ offsets). So the result equals DotRow (and llama.cpp's
// ggml_vec_dot_*) bit for bit, whatever m, the tile a row lands in or the thread count
// (tests/tensor/matmul_test.cc). K-quants (q4_k, q5_k, q6_k × Q8_K): gemm_int8_k.h.
// MXFP4: not handled.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/dtype.h"
#include "base/thread_pool.h"
#include "tensor/matmul.h"

namespace spool {

// True for the weight types GemmInt8Rows handles.
bool GemmInt8Supported(DType t);

// y[i, r] = DotRow(w.dtype, W row r, act row i) for all m rows.
// act: [m] prepared activation rows (ActFormatFor(w.dtype)), act_bytes apart.
// y: [m, n_out] f32. Parallel over n_out.
void GemmInt8Rows(ThreadPool& pool, const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y);

}  // namespace spool
