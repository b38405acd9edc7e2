#include "tensor/topk.h"

#include <cmath>

#include "base/check.h"

namespace spool {

void RouteTopK(const float* logits, int64_t n_rows, int64_t n_expert, int64_t k, bool renormalize, int32_t* ids,
               float* weights) {
  SPOOL_CHECK(k >= 1 && k <= n_expert);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* z = logits + r * n_expert;
    int32_t* id = ids + r * k;
    float* w = weights + r * k;
    float mx = z[0];
    for (int64_t e = 1; e < n_expert; ++e) mx = std::fmax(mx, z[e]);
    float sum = 0;
    for (int64_t e = 0; e < n_expert; ++e) sum += std::exp(z[e] - mx);
    // Insertion into a sorted list of k: expert counts are small (≤ a few hundred).
    int64_t filled = 0;
    for (int64_t e = 0; e < n_expert; ++e) {
      if (filled == k && z[e] <= z[id[k - 1]]) continue;  // ties keep the earlier (lower) index
      int64_t i = filled < k ? filled++ : k - 1;
      while (i > 0 && z[id[i - 1]] < z[e]) {
        id[i] = id[i - 1];
        --i;
      }
      id[i] = static_cast<int32_t>(e);
    }
    // Softmax is monotonic: the largest logits are the largest probabilities.
    float kept = 0;
    for (int64_t i = 0; i < k; ++i) {
      w[i] = std::exp(z[id[i]] - mx) / sum;
      kept += w[i];
    }
    if (renormalize)
      for (int64_t i = 0; i < k; ++i) w[i] /= kept;
  }
}

}  // namespace spool
