#include "tensor/ops.h"

#include <cmath>

#include "base/check.h"

namespace spool {

void RmsNorm(const float* x, const float* weight, float eps, int64_t n_rows, int64_t dim, float* y) {
  SPOOL_CHECK(dim > 0);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float mean = static_cast<float>(sum / static_cast<double>(dim));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] * scale) * weight[i];
  }
}

void SwiGLU(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void Add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void Softmax(float* x, int64_t n_rows, int64_t n) {
  SPOOL_CHECK(n > 0);
  for (int64_t r = 0; r < n_rows; ++r) {
    float* row = x + r * n;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, row[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      row[i] = std::exp(row[i] - mx);
      sum += row[i];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) row[i] *= inv;
  }
}

int64_t Argmax(const float* x, int64_t n) {
  SPOOL_CHECK(n >= 1);
  int64_t best = 0;
  float best_v = -INFINITY;
  bool found = false;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) continue;
    if (!found || x[i] > best_v) {
      best = i;
      best_v = x[i];
      found = true;
    }
  }
  return best;
}

}  // namespace spool
