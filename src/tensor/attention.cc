#include "tensor/attention.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/check.h"

namespace spool {
namespace {

// 16 elements of a K/V row as f32 (masked tail).
inline __m512 Load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 Load16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

template <typename T>
float Dot(const float* q, const T* k, int64_t d) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 m = TailMask(d - j);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + j), Load16(k + j, m), acc);
  }
  return simd::ReduceAdd(acc);
}

// acc[0..d) = acc * c + p * v
template <typename T>
void ScaleAddRow(float* acc, float c, float p, const T* v, int64_t d) {
  const __m512 vc = _mm512_set1_ps(c), vp = _mm512_set1_ps(p);
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 m = TailMask(d - j);
    const __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, acc + j), vc);
    _mm512_mask_storeu_ps(acc + j, m, _mm512_fmadd_ps(vp, Load16(v + j, m), a));
  }
}

template <typename T>
void FoldOne(const AttentionShape& s, const float* q, int64_t pos, const KvPageView& page, int64_t kv_head,
             float* scores, float* max, float* sum, float* acc) {
  const T* k = static_cast<const T*>(page.k);
  const T* v = static_cast<const T*>(page.v);
  const int64_t stride = s.n_kv_head * s.head_dim;
  // Keys visible to this query: positions first_pos .. min(pos, last).
  const int64_t n_valid = std::min(page.n_tokens, pos - page.first_pos + 1);
  if (n_valid <= 0) return;
  float page_max = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n_valid; ++t) {
    scores[t] = s.scale * Dot(q, k + t * stride + kv_head * s.head_dim, s.head_dim);
    page_max = std::max(page_max, scores[t]);
  }
  const float new_max = std::max(*max, page_max);
  // Rescale what was accumulated under the old max (exp(-inf) = 0 on the first page).
  float c = std::exp(*max - new_max);
  float page_sum = 0.0f;
  for (int64_t t = 0; t < n_valid; ++t) {
    const float p = std::exp(scores[t] - new_max);
    page_sum += p;
    ScaleAddRow(acc, c, p, v + t * stride + kv_head * s.head_dim, s.head_dim);
    c = 1.0f;  // rescale once
  }
  *sum = *sum * std::exp(*max - new_max) + page_sum;
  *max = new_max;
}

}  // namespace

void AttentionState::Reset(int64_t n_q, const AttentionShape& shape) {
  n_q_ = n_q;
  const size_t pairs = static_cast<size_t>(n_q * shape.n_head);
  max_.assign(pairs, -std::numeric_limits<float>::infinity());
  sum_.assign(pairs, 0.0f);
  acc_.assign(pairs * static_cast<size_t>(shape.head_dim), 0.0f);
}

void AttentionFoldPage(ThreadPool& pool, const AttentionShape& s, const float* q, const int64_t* pos_q, int64_t n_q,
                       const KvPageView& page, AttentionState& st) {
  SPOOL_CHECK(s.n_kv_head > 0 && s.n_head % s.n_kv_head == 0 && s.head_dim > 0);
  SPOOL_CHECK(page.dtype == DType::kF32 || page.dtype == DType::kBF16);
  SPOOL_CHECK(st.n_q() == n_q);
  if (page.n_tokens <= 0 || n_q == 0) return;
  const int64_t group = s.n_head / s.n_kv_head;
  pool.ParallelFor(static_cast<size_t>(n_q * s.n_head), [&](size_t begin, size_t end, int) {
    std::vector<float> scores(static_cast<size_t>(page.n_tokens));
    for (size_t pair = begin; pair < end; ++pair) {
      const int64_t i = static_cast<int64_t>(pair) / s.n_head, h = static_cast<int64_t>(pair) % s.n_head;
      const float* qv = q + (i * s.n_head + h) * s.head_dim;
      float* acc = st.acc() + static_cast<int64_t>(pair) * s.head_dim;
      if (page.dtype == DType::kF32)
        FoldOne<float>(s, qv, pos_q[i], page, h / group, scores.data(), st.max() + pair, st.sum() + pair, acc);
      else
        FoldOne<uint16_t>(s, qv, pos_q[i], page, h / group, scores.data(), st.max() + pair, st.sum() + pair, acc);
    }
  });
}

void AttentionFinalize(const AttentionShape& s, const AttentionState& st, float* out) {
  const int64_t pairs = st.n_q() * s.n_head;
  for (int64_t p = 0; p < pairs; ++p) {
    const float inv = st.sum()[p] > 0.0f ? 1.0f / st.sum()[p] : 0.0f;
    for (int64_t j = 0; j < s.head_dim; ++j) out[p * s.head_dim + j] = st.acc()[p * s.head_dim + j] * inv;
  }
}

void AttentionRef(const AttentionShape& s, const float* q, const int64_t* pos_q, int64_t n_q,
                  const std::vector<KvPageView>& pages, float* out) {
  const int64_t group = s.n_head / s.n_kv_head;
  auto elem = [](const KvPageView& pg, const void* base, int64_t idx) {
    return pg.dtype == DType::kF32 ? static_cast<const float*>(base)[idx]
                                   : BF16ToF32(static_cast<const uint16_t*>(base)[idx]);
  };
  for (int64_t i = 0; i < n_q; ++i) {
    for (int64_t h = 0; h < s.n_head; ++h) {
      const int64_t g = h / group;
      // All visible keys' scores (materialised), then a double-precision softmax.
      std::vector<double> scores;
      std::vector<std::pair<const KvPageView*, int64_t>> keys;
      for (const KvPageView& pg : pages) {
        for (int64_t t = 0; t < pg.n_tokens; ++t) {
          if (pg.first_pos + t > pos_q[i]) continue;
          double dot = 0;
          for (int64_t j = 0; j < s.head_dim; ++j)
            dot += static_cast<double>(q[(i * s.n_head + h) * s.head_dim + j]) *
                   elem(pg, pg.k, (t * s.n_kv_head + g) * s.head_dim + j);
          scores.push_back(dot * s.scale);
          keys.emplace_back(&pg, t);
        }
      }
      float* o = out + (i * s.n_head + h) * s.head_dim;
      std::fill(o, o + s.head_dim, 0.0f);
      if (scores.empty()) continue;
      const double mx = *std::max_element(scores.begin(), scores.end());
      double total = 0;
      for (double& sc : scores) total += (sc = std::exp(sc - mx));
      for (int64_t j = 0; j < s.head_dim; ++j) {
        double a = 0;
        for (size_t kk = 0; kk < keys.size(); ++kk)
          a += scores[kk] * elem(*keys[kk].first, keys[kk].first->v, (keys[kk].second * s.n_kv_head + g) * s.head_dim + j);
        o[j] = static_cast<float>(a / total);
      }
    }
  }
}

}  // namespace spool
