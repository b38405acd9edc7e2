// f32 matrix products in the order llama.cpp's CPU backend (ggml-cpu, AVX-512, GCC) sums
// them, for `--numerics ggml`: the arithmetic of a GGUF model's f32 tensors that llama.cpp
// multiplies by f32 activations (a mixture of experts' router `ffn_gate_inp`, which
// llama.cpp's converter and quantiser always keep f32, and Qwen2-MoE's shared-expert gate).
// Quantised weights need nothing here: their integer block dots are already llama.cpp's
// (vec_dot.h).
#pragma once

#include <cstdint>

namespace spool {

// The 16-lane sum in the order of GCC's _mm512_reduce_add_ps: halves, quarters, then
// (0 + 2) + (1 + 3).   a: [16]
float Tree16Ggml(const float* a);

// ggml_vec_dot_f32 (AVX-512) of n elements: elements of the 64-element body go to
// accumulator slot e % 64 (4 registers × 16 lanes) by fma; slots reduce as
// (s[l] + s[32+l]) + (s[16+l] + s[48+l]) then Tree16Ggml; leftovers fma'd onto the sum.
float DotF32Ggml(const float* x, const float* y, int64_t n);

// llamafile's tinyBLAS f32 dot (sgemm.cpp, AVX-512): 16 lanes, lane e % 16 accumulating
// element e by fma in order, then Tree16Ggml. n % 16 == 0.
float DotF32TinyBlas(const float* x, const float* y, int64_t n);

// y[r, o] = Σ_i x[r, i] · w[o, i] as ggml_mul_mat computes it for f32 w and x:
// llamafile_sgemm (tinyBLAS order) when m >= 2, n_in % 16 == 0 and n_out % 4 == 0 (its
// conditions on AVX-512), else ggml_vec_dot_f32 per output. m is the number of rows in
// llama.cpp's batch (ubatch tokens): a decode step of one sequence has m == 1.
// w: [n_out, n_in]   x: [m, n_in]   y: [m, n_out]
void MatMulF32Ggml(const float* w, int64_t n_out, int64_t n_in, const float* x, int64_t m, float* y);

}  // namespace spool
