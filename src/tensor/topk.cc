#include "tensor/topk.h"

#include <cmath>

#include <vector>

#include "base/check.h"
#include "tensor/matmul_ggml.h"
#include "tensor/ops.h"

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

void RouteTopKGgml(const float* logits, int64_t n_rows, int64_t n_expert, int64_t k, bool renormalize, int32_t* ids,
                   float* weights) {
  SPOOL_CHECK(k >= 1 && k <= n_expert);
  std::vector<float> p(static_cast<size_t>(n_expert));
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* z = logits + r * n_expert;
    int32_t* id = ids + r * k;
    float* w = weights + r * k;
    float mx = -INFINITY;
    for (int64_t e = 0; e < n_expert; ++e) mx = std::fmax(mx, z[e]);  // ggml_vec_max_f32
    double sum = 0;
    int64_t e = 0;
    for (; e + 16 <= n_expert; e += 16) {  // ggml_vec_soft_max_f32's AVX-512 body
      for (int64_t i = 0; i < 16; ++i) p[e + i] = ExpfGgml(z[e + i] - mx);
      sum += static_cast<double>(Tree16Ggml(p.data() + e));
    }
    for (; e < n_expert; ++e) {
      p[e] = std::exp(z[e] - mx);
      sum += static_cast<double>(p[e]);
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n_expert; ++i) p[i] *= inv;
    int64_t filled = 0;
    for (int64_t i = 0; i < n_expert; ++i) {
      if (filled == k && p[i] <= p[id[k - 1]]) continue;
      int64_t j = filled < k ? filled++ : k - 1;
      while (j > 0 && p[id[j - 1]] < p[i]) {
        id[j] = id[j - 1];
        --j;
      }
      id[j] = static_cast<int32_t>(i);
    }
    double kept = 0;  // ggml_vec_sum_f32
    for (int64_t i = 0; i < k; ++i) kept += static_cast<double>(w[i] = p[id[i]]);
    if (renormalize) {
      const float s = std::fmax(static_cast<float>(kept), 6.103515625e-5f);  // ggml_clamp
      for (int64_t i = 0; i < k; ++i) w[i] /= s;
    }
  }
}

void RouteTopKSoftmax(const float* logits, int64_t n_rows, int64_t n_expert, int64_t k, int32_t* ids, float* weights) {
  SPOOL_CHECK(k >= 1 && k <= n_expert);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* z = logits + r * n_expert;
    int32_t* id = ids + r * k;
    float* w = weights + r * k;
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
    const float mx = z[id[0]];
    float sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += (w[i] = std::exp(z[id[i]] - mx));
    for (int64_t i = 0; i < k; ++i) w[i] /= sum;
  }
}

}  // namespace spool
