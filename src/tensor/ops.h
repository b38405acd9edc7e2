// Small elementwise / row kernels on f32 activations. Single-threaded and cheap next
// to the matmuls; rows are independent so callers may split rows across threads.
// Each function here is the plain version; where an optimised twin exists it is
// named *Fast and tested against this one (tests/tensor/ops_test.cc).
#pragma once

#include <cstdint>

namespace spool {

// y[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight, per row. The mean of squares is
// accumulated in double (as llama.cpp's CPU rms_norm). y may equal x.
// x: [n_rows, dim]   weight: [dim]   y: [n_rows, dim]
void RmsNorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* y);

// out[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)). out may equal gate or up.
// gate, up, out: [n]
void SwiGLU(const float* gate, const float* up, int64_t n, float* out);

// out[i] = a[i] + b[i]. out may equal a or b.   a, b, out: [n]
void Add(const float* a, const float* b, int64_t n, float* out);

// In-place softmax of each row (max-subtracted, exp, normalised).  x: [n_rows, n]
void Softmax(float* x, int64_t n_rows, int64_t n);

// Index of the largest element (the first one on ties; NaNs are skipped). n >= 1.
// x: [n]
int64_t Argmax(const float* x, int64_t n);

}  // namespace spool
