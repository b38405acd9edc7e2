#include "tensor/matmul_ggml.h"

#include <cmath>

#include "base/check.h"

namespace spool {

float Tree16Ggml(const float* a) {
  float t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = a[8 + i] + a[i];
  for (int i = 0; i < 4; ++i) t4[i] = t8[4 + i] + t8[i];
  return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

float DotF32Ggml(const float* x, const float* y, int64_t n) {
  float acc[64] = {};
  const int64_t body = n - n % 64;
  for (int64_t e = 0; e < body; ++e) acc[e % 64] = std::fma(x[e], y[e], acc[e % 64]);
  float lanes[16];
  for (int l = 0; l < 16; ++l) lanes[l] = (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]);
  float s = Tree16Ggml(lanes);
  for (int64_t e = body; e < n; ++e) s = std::fma(x[e], y[e], s);  // leftovers: sumf += x*y, contracted
  return s;
}

float DotF32TinyBlas(const float* x, const float* y, int64_t n) {
  SPOOL_CHECK(n % 16 == 0);
  float acc[16] = {};
  for (int64_t e = 0; e < n; ++e) acc[e % 16] = std::fma(x[e], y[e], acc[e % 16]);
  return Tree16Ggml(acc);
}

void MatMulF32Ggml(const float* w, int64_t n_out, int64_t n_in, const float* x, int64_t m, float* y) {
  const bool tinyblas = m >= 2 && n_in % 16 == 0 && n_out % 4 == 0;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t o = 0; o < n_out; ++o)
      y[r * n_out + o] = tinyblas ? DotF32TinyBlas(w + o * n_in, x + r * n_in, n_in)
                                  : DotF32Ggml(w + o * n_in, x + r * n_in, n_in);
}

}  // namespace spool
