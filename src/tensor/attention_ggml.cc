#include "tensor/attention_ggml.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "base/check.h"
#include "tensor/matmul_ggml.h"
#include "tensor/ops.h"

namespace spool {
namespace {

constexpr int64_t kRowBlock = 32;  // query rows per pair of page walks

float Tree16(const float* a) { return Tree16Ggml(a); }

// 64 slots (4 accumulators × 16 lanes) → 16 lanes, as ggml_vec_dot_f32's reduce.
// slot(s, l) reads slot s's value for output l.
template <typename SlotFn>
float Reduce64(SlotFn slot) {
  float lanes[16];
  for (int l = 0; l < 16; ++l) lanes[l] = (slot(l) + slot(32 + l)) + (slot(16 + l) + slot(48 + l));
  return Tree16(lanes);
}

// ggml_vec_dot_f32 (AVX-512) of n elements.
float DotGgml(const float* x, const float* y, int64_t n) { return DotF32Ggml(x, y, n); }

// Row t, kv head g of a K or V page as f32 (bf16 widened into tmp).
const float* Row(const KvPageView& page, const void* base, int64_t t, int64_t n_kv_head, int64_t g, int64_t d,
                 float* tmp) {
  const int64_t off = (t * n_kv_head + g) * d;
  if (page.dtype == DType::kF32) return static_cast<const float*>(base) + off;
  const uint16_t* src = static_cast<const uint16_t*>(base) + off;
  for (int64_t j = 0; j < d; ++j) tmp[j] = BF16ToF32(src[j]);
  return tmp;
}

}  // namespace

Status AttentionGgml(ThreadPool& pool, const AttentionShape& s, const float* q, const int64_t* pos_q, int64_t n_q,
                     GgmlAttnKernel kernel, const KvPageWalk& walk, float* out) {
  SPOOL_CHECK(s.n_kv_head > 0 && s.n_head % s.n_kv_head == 0 && s.head_dim > 0);
  const int64_t H = s.n_head, D = s.head_dim, group = s.n_head / s.n_kv_head;
  const int64_t n_slots = kernel == GgmlAttnKernel::kBatch ? 16 : 64;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t i0 = 0; i0 < n_q; i0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, n_q - i0);
    const int64_t n_pos = *std::max_element(pos_q + i0, pos_q + i0 + rows) + 1;
    const size_t pairs = static_cast<size_t>(rows * H);
    std::vector<float> w(pairs * static_cast<size_t>(n_pos), kNegInf);  // scores, then probabilities

    // Pass 1: scaled scores of every visible key.
    SPOOL_TRY(walk([&](const KvPageView& page) {
      SPOOL_CHECK(page.dtype == DType::kF32 || page.dtype == DType::kBF16);
      pool.ParallelFor(pairs, [&](size_t begin, size_t end, int) {
        std::vector<float> tmp(static_cast<size_t>(D));
        for (size_t pair = begin; pair < end; ++pair) {
          const int64_t i = i0 + static_cast<int64_t>(pair) / H, h = static_cast<int64_t>(pair) % H;
          const float* qv = q + (i * H + h) * D;
          float* row = w.data() + pair * static_cast<size_t>(n_pos);
          for (int64_t t = 0; t < page.n_tokens; ++t) {
            const int64_t p = page.first_pos + t;
            if (p > pos_q[i]) break;
            row[p] = DotGgml(qv, Row(page, page.k, t, s.n_kv_head, h / group, D, tmp.data()), D) * s.scale;
          }
        }
      });
    }));

    // Softmax of each row (ggml_compute_forward_soft_max_f32).
    pool.ParallelFor(pairs, [&](size_t begin, size_t end, int) {
      for (size_t pair = begin; pair < end; ++pair) {
        const int64_t i = i0 + static_cast<int64_t>(pair) / H;
        const int64_t n_vis = pos_q[i] + 1;
        float* row = w.data() + pair * static_cast<size_t>(n_pos);
        float mx = kNegInf;
        for (int64_t p = 0; p < n_vis; ++p) mx = std::max(mx, row[p]);
        if (mx == kNegInf) {
          std::fill(row, row + n_vis, 0.0f);
          continue;
        }
        for (int64_t p = 0; p < n_vis; ++p) row[p] = ExpfGgml(row[p] - mx);
        double sum = 0.0;
        for (int64_t c = 0; c < n_vis; c += 16) {
          float chunk[16] = {};
          for (int64_t p = c; p < std::min(c + 16, n_vis); ++p) chunk[p - c] = row[p];
          sum += static_cast<double>(Tree16(chunk));
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t p = 0; p < n_vis; ++p) row[p] *= inv;
      }
    });

    // Pass 2: Σ p·v into position slots, one fma chain per slot in position order.
    std::vector<float> acc(pairs * static_cast<size_t>(n_slots * D), 0.0f);
    SPOOL_TRY(walk([&](const KvPageView& page) {
      pool.ParallelFor(pairs, [&](size_t begin, size_t end, int) {
        std::vector<float> tmp(static_cast<size_t>(D));
        for (size_t pair = begin; pair < end; ++pair) {
          const int64_t i = i0 + static_cast<int64_t>(pair) / H, h = static_cast<int64_t>(pair) % H;
          const float* row = w.data() + pair * static_cast<size_t>(n_pos);
          for (int64_t t = 0; t < page.n_tokens; ++t) {
            const int64_t p = page.first_pos + t;
            if (p > pos_q[i]) break;
            const float pr = row[p];
            const float* v = Row(page, page.v, t, s.n_kv_head, h / group, D, tmp.data());
            float* a = acc.data() + (pair * static_cast<size_t>(n_slots) + static_cast<size_t>(p % n_slots)) * D;
            for (int64_t d = 0; d < D; ++d) a[d] = std::fma(pr, v[d], a[d]);
          }
        }
      });
    }));

    for (size_t pair = 0; pair < pairs; ++pair) {
      const int64_t i = i0 + static_cast<int64_t>(pair) / H, h = static_cast<int64_t>(pair) % H;
      const float* a = acc.data() + pair * static_cast<size_t>(n_slots * D);
      float* o = out + (i * H + h) * D;
      for (int64_t d = 0; d < D; ++d) {
        if (kernel == GgmlAttnKernel::kBatch) {
          float lanes[16];
          for (int l = 0; l < 16; ++l) lanes[l] = a[l * D + d];
          o[d] = Tree16(lanes);
        } else {
          o[d] = Reduce64([&](int sl) { return a[sl * D + d]; });
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace spool
