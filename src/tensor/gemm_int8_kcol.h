// Private to tensor/: the prefill GEMM of K-quant weights (q4_k, q5_k, q6_k) × Q8_K
// activation rows with *llama.cpp's prefill numerics* — those of ggml's tiled K-quant
// matmul (ggml-cpu/tiled, taken by llama.cpp for every mul_mat of these types with 8 or
// more activation rows; docs/parts/tensor.md "What llama.cpp runs for a quantised prefill").
//
// Shape of the work: activation rows sit in the lanes. A band of 16 activation rows is
// repacked once per call so that one 512-bit load holds 4 consecutive codes of each of
// the 16 rows; a panel of 8 weight rows is unpacked once (codes as unsigned bytes,
// sub-block scales and mins as ints), and each `vpdpbusd` multiplies a broadcast 4-byte
// weight group into the 16 rows' codes. Per (weight row, activation row) pair, so the
// same whatever the tile, thread or m:
//   per super-block b, in order:
//     s1 = Σ_s sc_s · Σ_{e in s} u_e·x_e                 (exact int32; Q6_K: Σ_s sc_s · Σ_e (u_e − 32)·x_e)
//     s2 = Σ_s m_s · (bsums[2s] + bsums[2s+1])           (exact int32; Q4_K/Q5_K only)
//     r  = f32(s1) · F(d)                                (rounded)
//     r  = fma(−F(dmin), f32(s2), r)                     (Q4_K/Q5_K; one rounding)
//     acc = fma(r, d_x, acc)                             (one rounding; acc starts at 0)
//   result = acc
// s_ = 32-element sub-blocks (Q6_K: 16-element), u = unsigned codes (Q4_K 0..15, Q5_K 0..31,
// Q6_K 0..63), F = f16 → f32, d_x = the Q8_K row's scale of block b. These are the steps
// of ggml's VNNI micro-kernel as llama-cpp-python 0.3.36's libggml-cpu is compiled (GCC
// contracts its `buf + r·d_x` into one vfmadd: seen in the binary, and the fixtures below
// need it), so the results equal llama.cpp's prefill on AVX-512 VNNI CPUs bit for bit
// (tests/tensor/matmul_test.cc, KQuantPrefill.EqualsLlamaCppTiledMatmul); they differ from
// DotRow (the decode GEMV, ggml_vec_dot_*) by f32 rounding only: both sum the same exact
// integers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned_buffer.h"
#include "base/dtype.h"
#include "base/thread_pool.h"
#include "tensor/matmul.h"

namespace spool {

// Fewest activation rows for which MatMul's prefill path takes GemmKCol (llama.cpp's
// threshold for its tiled path: fewer rows take ggml_vec_dot per pair = DotRow).
inline constexpr int64_t kGemmKColMinRows = 8;

// True for q4_k, q5_k, q6_k.
bool GemmKColSupported(DType t);

// y[i, r] for all n_out weight rows r and m activation rows i (numerics above).
// act: [m] Q8_K rows (PrepareActivationRow), act_bytes apart. y: [m, n_out] f32.
// scratch: grows to hold the repacked activations (~20 bytes per element of a row per
// 16 rows... m·n_in·1.27 bytes). Parallel over n_out. Needs AVX-512 VNNI.
void GemmKCol(ThreadPool& pool, const WeightView& w, const uint8_t* act, size_t act_bytes, int64_t m, float* y,
              AlignedBuffer& scratch);

// Reference: one pair, scalar, the numerics above. wrow: one weight row of w.dtype;
// act: its Q8_K activation row; n_in a multiple of 256.
float DotKColRef(DType t, const void* wrow, const uint8_t* act, int64_t n_in);

}  // namespace spool
