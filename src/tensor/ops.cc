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
    // Each square rounded to f32, summed in double (llama.cpp's rms_norm, bit for bit).
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i] * xr[i]);
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

void AddScaledGgml(const float* x, float s, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i] * s;  // spool_tensor is built with -ffp-contract=off
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

float ExpfGgml(float x) {
  // exp(x) = 2^n · (1 + poly(b)), n = round(x·log2 e) by the 1.5·2^23 shift trick,
  // b = x - n·ln2 in two parts; |n| > 192 saturates to 0 or +inf.
  constexpr float kShift = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, kShift);
  const float n = z - kShift;
  if (std::isnan(n)) return x;
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  return std::ldexp(j, static_cast<int>(n));
}

void SwiGLUGgml(const float* gate, const float* up, int64_t n_rows, int64_t n, float* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* g = gate + r * n;
    const float* u = up + r * n;
    float* o = out + r * n;
    const int64_t body = n - n % 16;  // ggml's 16-lane loop
    int64_t i = 0;
    for (; i < body; ++i) o[i] = g[i] / (1.0f + ExpfGgml(0.0f - g[i])) * u[i];
    for (; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];              // its scalar tail
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

void GeGLUTanh(const float* gate, const float* up, int64_t n, float* out) {
  const float beta = static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5);  // √(2/π), as torch
  const float kappa = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    const float inner = beta * (x + kappa * (x * x * x));
    out[i] = 0.5f * x * (1.0f + std::tanh(inner)) * up[i];
  }
}

void SwiGLUOai(const float* gate, const float* up, int64_t n, float alpha, float limit, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::fmin(gate[i], limit);
    const float u = std::fmax(std::fmin(up[i], limit), -limit);
    const float glu = g * (1.0f / (1.0f + std::exp(-(g * alpha))));
    out[i] = (u + 1.0f) * glu;
  }
}

void SoftCap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

}  // namespace spool
