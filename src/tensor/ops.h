// Small elementwise / row kernels on f32 activations. Single-threaded and cheap next
// to the matmuls; rows are independent so callers may split rows across threads.
// Each function here is the plain version; where an optimised twin exists it is
// named *Fast and tested against this one (tests/tensor/ops_test.cc).
#pragma once

#include <cstdint>

namespace spool {

// y[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight, per row. Each square is rounded to
// f32 and accumulated in double, then scale = 1/sqrtf(mean + eps) and y = (x·scale)·w:
// llama.cpp's CPU rms_norm + mul, bit for bit. y may equal x.
// x: [n_rows, dim]   weight: [dim]   y: [n_rows, dim]
void RmsNorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* y);

// out[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)). out may equal gate or up.
// gate, up, out: [n]
void SwiGLU(const float* gate, const float* up, int64_t n, float* out);

// out[i] = gelu_tanh(gate[i]) * up[i] (GeGLU, Gemma), gelu_tanh(v) = 0.5·v·(1 + tanh(
// √(2/π)·(v + 0.044715·v³))) in f32, the order of torch's gelu(approximate="tanh").
// out may equal gate or up.   gate, up, out: [n]
void GeGLUTanh(const float* gate, const float* up, int64_t n, float* out);

// gpt-oss's gated activation (transformers' GptOssExperts._apply_gate): g = min(gate,
// limit), u = clamp(up, −limit, limit), out = (u + 1) · g · sigmoid(alpha · g), in f32
// in torch's order. out may equal gate or up.   gate, up, out: [n]
void SwiGLUOai(const float* gate, const float* up, int64_t n, float alpha, float limit, float* out);

// x[i] = cap · tanh(x[i] / cap) (logit soft-capping, Gemma 2). cap > 0.   x: [n]
void SoftCap(float* x, int64_t n, float cap);

// llama.cpp's SIMD expf (ggml-cpu vec.h ggml_v_expf on AVX-512, from ARM's optimized
// routines: max error 1.45 ulp + 0.5), in scalar form with the same fma sequence, so
// that it returns exactly what ggml's vector code returns lane by lane.
float ExpfGgml(float x);

// SwiGLU as llama.cpp's CPU swiglu computes it, per row of n: silu by ExpfGgml
// (g / (1 + e(0 - g)), then · u) for the 16-wide body of each row, libm expf for the
// tail. gate, up, out: [n_rows, n]; out may equal gate or up.
void SwiGLUGgml(const float* gate, const float* up, int64_t n_rows, int64_t n, float* out);

// y[i] += x[i] · s, the product rounded before the sum (ggml_mul then ggml_add; never
// an fma).   x, y: [n]
void AddScaledGgml(const float* x, float s, int64_t n, float* y);

// out[i] = a[i] + b[i]. out may equal a or b.   a, b, out: [n]
void Add(const float* a, const float* b, int64_t n, float* out);

// In-place softmax of each row (max-subtracted, exp, normalised).  x: [n_rows, n]
void Softmax(float* x, int64_t n_rows, int64_t n);

// Index of the largest element (the first one on ties; NaNs are skipped). n >= 1.
// x: [n]
int64_t Argmax(const float* x, int64_t n);

}  // namespace spool
