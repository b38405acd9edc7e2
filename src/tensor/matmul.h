// y = x · Wᵀ for a weight matrix stored in any weight DType.
//
// Dispatch (MatMul): m <= GemvMaxRows(dtype) uses the GEMV kernels of vec_dot.h
// (decode: llama.cpp's integer numerics for quantised weights, f32 FMA for float
// weights); larger m uses GEMM (gemm.cc: oneDNN bf16 → AMX; f32 weights in f32).
// Float weights: AMX beats the f32 GEMV from m = 2 (measured, docs/parts/tensor.md).
// Quantised weights take llama.cpp's CPU math (Q8 activations, integer block dots):
// llama.cpp parity of the default Q4_1 model needs it (bf16 GEMM of dequantised tiles
// was faster above m ≈ 12 but diverged from llama.cpp's greedy output after a few
// tokens). Non-K types take the integer GEMV path at every m. K-quants (q4_k, q5_k,
// q6_k) with m >= 8 take the K-quant prefill GEMM (gemm_int8_kcol.h), whose f32 steps are
// those of llama.cpp's own prefill (ggml's tiled matmul, used from 8 rows) rather than
// of its per-row dot: exact integer sums, f32 rounding differs from the GEMV's.
// For m > 1 and q4_0/q4_1/q5_0/q5_1/q8_0/q4_k/q5_k/q6_k the GEMV runs as register tiles of
// 4 weight rows × 4 activation rows (gemm_int8.h), bit-identical to one row at a time.
// MatMulGemm still accepts quantised weights when called directly.
// Callers wanting batch-size-independent results (decode) call MatMulGemv directly.
// Both parallelise over n_out rows with the given ThreadPool.
//
// Tolerances (tests/tensor/matmul_test.cc):
//   GEMV vs MatMulRef (same math, scalar): |Δ| <= 1e-5 · Σ|w·x| per output.
//   K-quant prefill GEMM: bit-identical to llama.cpp's tiled matmul and to DotKColRef;
//   vs the GEMV (DotRow) |Δ| <= 1e-5 · Σ|w·x| (same integers, other f32 rounding).
//   GEMM vs f32 dot of dequantised weights: bf16 rounding of activations (and of
//   weights other than bf16/f32): |Δ| <= 1e-2 · Σ|w·x| per output.
#pragma once

#include <cstdint>
#include <memory>

#include "base/dtype.h"
#include "base/thread_pool.h"

namespace spool {

// A weight matrix W [n_out, n_in]: n_out rows of n_in elements of `dtype`, each row
// contiguous and rows back to back (a quantised row is n_in / block_elems blocks).
// Non-owning. data must be aligned to 4 bytes for f32, 2 bytes otherwise.
//
// MXFP4 comes in two layouts: GGUF's (BlockMXFP4: scale byte + 16 nibble bytes per 32
// elements; `scales` null) and the HF/OpenAI checkpoints' split one (`*_blocks` /
// `*_scales` tensors: `data` holds each row's n_in / 2 nibble bytes, element 2j in the
// low nibble of byte j, element 2j + 1 in the high one; `scales` each row's n_in / 32
// E8M0 bytes, 2^(e − 127)). Both compute bit-identical results (DotMXFP4Split).
struct WeightView {
  DType dtype;
  const void* data;  // [n_out, n_in] in dtype
  int64_t n_out;
  int64_t n_in;      // a multiple of dtype's block size
  const uint8_t* scales = nullptr;  // kMXFP4 split layout only: [n_out, n_in / 32]
};

inline constexpr int64_t kGemvMaxRows = 4;            // small-m bound used by tests/benchmarks
inline constexpr int64_t kGemvMaxRowsQuantized = int64_t{1} << 40;  // i.e. always GEMV (see above)
// K-quants (q4_k, q5_k, q6_k): up to 7 rows GEMV, from 8 rows the K-quant prefill GEMM
// (gemm_int8_kcol.h: llama.cpp's prefill numerics, which switch at the same 8 rows).
inline constexpr int64_t kGemvMaxRowsKQuant = 7;
// Largest m for which MatMul takes the GEMV path for weights of type t.
inline int64_t GemvMaxRows(DType t) {
  if (t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K) return kGemvMaxRowsKQuant;
  return GetDTypeInfo(t).quantized ? kGemvMaxRowsQuantized : 1;
}

// Scratch space and cached oneDNN primitives. One per thread that calls MatMul; not
// thread-safe. Grows to the largest shapes seen (activation rows, weight tiles).
class MatMulContext {
 public:
  MatMulContext();
  ~MatMulContext();
  MatMulContext(const MatMulContext&) = delete;
  MatMulContext& operator=(const MatMulContext&) = delete;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// y[m, n_out] = x[m, n_in] · Wᵀ. x and y must not overlap.
// x: [m, n_in] row-major f32   y: [m, n_out] row-major f32
void MatMul(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y);

// The two paths, callable directly (tests, benchmarks). Same shapes as MatMul.
void MatMulGemv(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y);
void MatMulGemm(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y);
// The K-quant prefill GEMM (q4_k/q5_k/q6_k; what MatMul runs for them from 8 rows):
// llama.cpp's prefill numerics, tensor/gemm_int8_kcol.h. Any m >= 1.
void MatMulKQuantPrefill(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m,
                         float* y);

// Reference: single-threaded scalar version of the GEMV math (PrepareActivationRowRef +
// DotRowRef). x: [m, n_in]   y: [m, n_out]
void MatMulRef(const WeightView& w, const float* x, int64_t m, float* y);

}  // namespace spool
