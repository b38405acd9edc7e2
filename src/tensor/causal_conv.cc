#include "tensor/causal_conv.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace spool {

void CausalConv1dSilu(const float* x, int64_t n, int64_t C, const float* w, int64_t K, float* state, float* y) {
  const int64_t H = K - 1;  // history rows
  auto in = [&](int64_t r, int64_t c) { return r < H ? state[r * C + c] : x[(r - H) * C + c]; };  // row r of x̃
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < C; ++c) {
      float s = 0;
      for (int64_t j = 0; j < K; ++j) s += w[c * K + j] * in(t + j, c);
      y[t * C + c] = s / (1.0f + std::exp(-s));
    }
  // New state: the last H rows of x̃ (rows n .. n + H − 1).
  std::vector<float> next(static_cast<size_t>(H * C));
  for (int64_t r = 0; r < H; ++r)
    for (int64_t c = 0; c < C; ++c) next[r * C + c] = in(n + r, c);
  std::copy(next.begin(), next.end(), state);
}

}  // namespace spool
