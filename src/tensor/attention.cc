#include "tensor/attention.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/aligned_buffer.h"
#include "base/check.h"
#include "tensor/simd_exp.h"

namespace spool {
namespace {

// How AttentionFoldPage works (one page, one kv head g, a block of its (query, head) rows):
//  1. Stage: K rows of head g are widened to f32 and transposed once into kt[j][t]
//     (head_dim × keys, keys padded to 16 with zeros); V rows into vf[t][j] (f32).
//     Shared by every row of the work item (all query heads of the group, many queries).
//  2. Per tile of up to kTile rows: scores for 16 keys per vector with broadcast-q FMAs
//     (no horizontal sums), kTile rows × 4 key vectors in registers;
//  3. masking, row max, p = exp(s - max) with simd::Exp, Σp; rescale factor c;
//  4. acc = c·acc + Σ_t p_t·v_t with kTile rows × 4 dim vectors held in registers over
//     the page's keys.
// Every (query, head) row goes through the same f32 operations in the same order
// whatever the tile, work item or thread it lands in (keys a row cannot see enter as
// p = 0: adding 0·v leaves the accumulator unchanged), so results do not depend on the
// thread count, on n_q, or on where the page's bytes live.
constexpr int kTile = 4;        // rows per register tile
constexpr int kKeyVecs = 4;     // 16-key vectors per score tile
constexpr int kDimVecs = 4;     // 16-dim vectors per accumulator tile

inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}
inline int64_t RoundUp16(int64_t n) { return (n + 15) & ~int64_t{15}; }

// 16 elements of a K/V row as f32 (masked tail).
inline __m512 Load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 Load16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// In-register 16×16 transpose: r[i] lane j  →  r[j] lane i.
inline void Transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int m = 0; m < 4; ++m) {  // u[4m + c], 128-bit lane L: column 4L + c of rows 4m..4m+3
    u[4 * m + 0] = lo(t[4 * m], t[4 * m + 2]);
    u[4 * m + 1] = hi(t[4 * m], t[4 * m + 2]);
    u[4 * m + 2] = lo(t[4 * m + 1], t[4 * m + 3]);
    u[4 * m + 3] = hi(t[4 * m + 1], t[4 * m + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44),
                 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
}

// kt[j * np + t] = k[t * stride + j] as f32 for t < n; 0 for n <= t < np (np % 16 == 0).
template <typename T>
void StageK(const T* k, int64_t stride, int64_t d, int64_t n, int64_t np, float* kt) {
  __m512 r[16];
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(T));
  for (int64_t t0 = 0; t0 < np; t0 += 16) {
    // The rows of one kv head are strided (n_kv_head rows apart): fetch the next block's
    // lines ahead, the hardware prefetcher does not follow this pattern well.
    for (int64_t t = t0 + 16; t < std::min(t0 + 32, n); ++t)
      for (int64_t b = 0; b < row_bytes; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(k + t * stride) + b, _MM_HINT_T0);
    for (int64_t j0 = 0; j0 < d; j0 += 16) {
      const __mmask16 m = TailMask(d - j0);
      for (int i = 0; i < 16; ++i)
        r[i] = t0 + i < n ? Load16(k + (t0 + i) * stride + j0, m) : _mm512_setzero_ps();
      Transpose16(r);
      const int64_t nj = std::min<int64_t>(16, d - j0);
      for (int64_t c = 0; c < nj; ++c) _mm512_storeu_ps(kt + (j0 + c) * np + t0, r[c]);
    }
  }
}

// bf16: transposing 32-bit pairs of dims (2j, 2j+1) needs half the shuffles; each pair
// then splits into two f32 vectors with a shift and a mask (exact widening).
template <>
void StageK<uint16_t>(const uint16_t* k, int64_t stride, int64_t d, int64_t n, int64_t np, float* kt) {
  __m512 r[16];
  const int64_t row_bytes = d * 2;
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int64_t t0 = 0; t0 < np; t0 += 16) {
    for (int64_t t = t0 + 16; t < std::min(t0 + 32, n); ++t)
      for (int64_t b = 0; b < row_bytes; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(k + t * stride) + b, _MM_HINT_T0);
    for (int64_t j0 = 0; j0 < d; j0 += 32) {
      const int64_t left = d - j0;
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
      for (int i = 0; i < 16; ++i)
        r[i] = t0 + i < n ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, k + (t0 + i) * stride + j0))
                          : _mm512_setzero_ps();
      Transpose16(r);  // r[c]: dims j0 + 2c (low half) and j0 + 2c + 1 (high half) of the 16 keys
      for (int64_t c = 0; c < 16 && j0 + 2 * c < d; ++c) {
        const __m512i x = _mm512_castps_si512(r[c]);
        const int64_t j = j0 + 2 * c;
        _mm512_storeu_ps(kt + j * np + t0, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
        if (j + 1 < d) _mm512_storeu_ps(kt + (j + 1) * np + t0, _mm512_castsi512_ps(_mm512_and_si512(x, hi_mask)));
      }
    }
  }
}

// vf[t * d + j] = v[t * stride + j] as f32 for t < n.
template <typename T>
void StageV(const T* v, int64_t stride, int64_t d, int64_t n, float* vf) {
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(T));
  for (int64_t t = 0; t < n; ++t) {
    if (t + 16 < n)
      for (int64_t b = 0; b < row_bytes; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(v + (t + 16) * stride) + b, _MM_HINT_T0);
    for (int64_t j = 0; j < d; j += 16) {
      const __mmask16 m = TailMask(d - j);
      _mm512_mask_storeu_ps(vf + t * d + j, m, Load16(v + t * stride + j, m));
    }
  }
}

// s[r * np + t0 + 16b + l] = scale · q_r · k_{t0+16b+l} for R rows, KB key vectors.
template <int R, int KB>
void ScoreTile(const float* const* q, const float* kt, int64_t np, int64_t d, float scale, int64_t t0, float* s) {
  __m512 acc[R][KB];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int b = 0; b < KB; ++b) acc[r][b] = _mm512_setzero_ps();
  const float* kp = kt + t0;
  for (int64_t j = 0; j < d; ++j, kp += np) {
    __m512 kv[KB];
    #pragma GCC unroll 16
    for (int b = 0; b < KB; ++b) kv[b] = _mm512_loadu_ps(kp + 16 * b);
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r][j]);
      #pragma GCC unroll 16
      for (int b = 0; b < KB; ++b) acc[r][b] = _mm512_fmadd_ps(qb, kv[b], acc[r][b]);
    }
  }
  const __m512 vs = _mm512_set1_ps(scale);
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int b = 0; b < KB; ++b) _mm512_storeu_ps(s + r * np + t0 + 16 * b, _mm512_mul_ps(acc[r][b], vs));
}

template <int R>
void Scores(const float* const* q, const float* kt, int64_t np, int64_t npt, int64_t d, float scale, float* s) {
  int64_t t0 = 0;
  for (; t0 + 16 * kKeyVecs <= npt; t0 += 16 * kKeyVecs) ScoreTile<R, kKeyVecs>(q, kt, np, d, scale, t0, s);
  switch ((npt - t0) / 16) {
    case 3: ScoreTile<R, 3>(q, kt, np, d, scale, t0, s); break;
    case 2: ScoreTile<R, 2>(q, kt, np, d, scale, t0, s); break;
    case 1: ScoreTile<R, 1>(q, kt, np, d, scale, t0, s); break;
    default: break;
  }
}

// acc_r[j0 .. j0 + 16·NV) = c_r · acc_r + Σ_{t < nt} p_r[t] · vf[t][j0 ..]   (last vector masked by m_last)
template <int R, int NV>
void AccumulateTile(float* const* acc, const float* c, const float* p, int64_t np, const float* vf, int64_t d,
                    int64_t j0, int64_t nt, __mmask16 m_last) {
  __mmask16 m[NV];
  #pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) m[v] = v == NV - 1 ? m_last : static_cast<__mmask16>(0xFFFF);
  __m512 a[R][NV];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 vc = _mm512_set1_ps(c[r]);
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) a[r][v] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m[v], acc[r] + j0 + 16 * v), vc);
  }
  const float* vp = vf + j0;
  for (int64_t t = 0; t < nt; ++t, vp += d) {
    __m512 vv[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) vv[v] = _mm512_maskz_loadu_ps(m[v], vp + 16 * v);
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 pb = _mm512_set1_ps(p[r * np + t]);
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) a[r][v] = _mm512_fmadd_ps(pb, vv[v], a[r][v]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(acc[r] + j0 + 16 * v, m[v], a[r][v]);
}

template <int R>
void Accumulate(float* const* acc, const float* c, const float* p, int64_t np, const float* vf, int64_t d,
                int64_t nt) {
  for (int64_t j0 = 0; j0 < d; j0 += 16 * kDimVecs) {
    const int64_t left = d - j0;
    const int nv = static_cast<int>(std::min<int64_t>(kDimVecs, (left + 15) / 16));
    const __mmask16 ml = TailMask(left - 16 * (nv - 1));
    switch (nv) {
      case 4: AccumulateTile<R, 4>(acc, c, p, np, vf, d, j0, nt, ml); break;
      case 3: AccumulateTile<R, 3>(acc, c, p, np, vf, d, j0, nt, ml); break;
      case 2: AccumulateTile<R, 2>(acc, c, p, np, vf, d, j0, nt, ml); break;
      default: AccumulateTile<R, 1>(acc, c, p, np, vf, d, j0, nt, ml); break;
    }
  }
}

struct Scratch {
  AlignedBuffer kt, vf, s;
  static float* Get(AlignedBuffer& b, int64_t floats) {
    const size_t bytes = static_cast<size_t>(floats) * sizeof(float);
    if (b.size() < bytes) b.Reset(std::max(bytes, 2 * b.size()), 64);
    return reinterpret_cast<float*>(b.data());
  }
};

// One work item: kv head g, queries [i0, i1), the group's heads [h0, h1) (offsets in the group).
template <typename T>
void FoldItem(const AttentionShape& sh, const float* q, const int64_t* pos_q, const KvPageView& page, int64_t g,
              int64_t i0, int64_t i1, int64_t h0, int64_t h1, AttentionState& st) {
  thread_local Scratch sc;
  const int64_t d = sh.head_dim, group = sh.n_head / sh.n_kv_head, stride = sh.n_kv_head * d;
  auto n_valid = [&](int64_t i) { return std::clamp<int64_t>(pos_q[i] - page.first_pos + 1, 0, page.n_tokens); };
  // First key of the page query i sees (sliding window; 0 without one). Keys in
  // [first_valid, n_valid) take part.
  auto first_valid = [&](int64_t i) {
    return sh.window > 0 ? std::clamp<int64_t>(pos_q[i] - sh.window + 1 - page.first_pos, 0, page.n_tokens) : 0;
  };
  int64_t t_eff = 0;
  bool any = false;
  for (int64_t i = i0; i < i1; ++i) {
    t_eff = std::max(t_eff, n_valid(i));
    any = any || first_valid(i) < n_valid(i);
  }
  if (t_eff == 0 || !any) return;
  const int64_t np = RoundUp16(t_eff);
  float* kt = Scratch::Get(sc.kt, d * np);
  float* vf = Scratch::Get(sc.vf, t_eff * d);
  float* s = Scratch::Get(sc.s, kTile * np);
  StageK(static_cast<const T*>(page.k) + g * d, stride, d, t_eff, np, kt);
  StageV(static_cast<const T*>(page.v) + g * d, stride, d, t_eff, vf);

  const int64_t nh = h1 - h0, n_rows = (i1 - i0) * nh;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kTile) {
    const int R = static_cast<int>(std::min<int64_t>(kTile, n_rows - r0));
    const float* qr[kTile];
    float* accr[kTile];
    int64_t pair[kTile], nv[kTile], lo[kTile];
    int64_t nt = 0;  // keys any row of the tile sees
    for (int r = 0; r < R; ++r) {
      const int64_t i = i0 + (r0 + r) / nh, h = g * group + h0 + (r0 + r) % nh;
      pair[r] = i * sh.n_head + h;
      qr[r] = q + pair[r] * d;
      accr[r] = st.acc() + pair[r] * d;
      nv[r] = n_valid(i);
      lo[r] = first_valid(i);
      if (lo[r] >= nv[r]) nv[r] = lo[r] = 0;  // the window excludes the whole page
      nt = std::max(nt, nv[r]);
    }
    if (nt == 0) continue;
    const int64_t npt = RoundUp16(nt);
    switch (R) {
      case 4: Scores<4>(qr, kt, np, npt, d, sh.scale, s); break;
      case 3: Scores<3>(qr, kt, np, npt, d, sh.scale, s); break;
      case 2: Scores<2>(qr, kt, np, npt, d, sh.scale, s); break;
      default: Scores<1>(qr, kt, np, npt, d, sh.scale, s); break;
    }
    // Online softmax per row: mask, page max, p = exp(s - new max) in place, Σp.
    float c[kTile];
    for (int r = 0; r < R; ++r) {
      float* sr = s + r * np;
      c[r] = 1.0f;
      if (nv[r] == 0) {  // sees nothing of this page: p = 0, state unchanged
        std::fill(sr, sr + npt, 0.0f);
        continue;
      }
      if (sh.softcap > 0.0f) {  // Gemma 2: cap · tanh(s / cap) on the scaled score
        const float cap = sh.softcap;
        for (int64_t t = 0; t < nv[r]; ++t) sr[t] = cap * std::tanh(sr[t] / cap);
      }
      const __m512 vmax = simd::MaskScoresAndMax(sr, npt, nv[r], lo[r]);
      float& mx = st.max()[pair[r]];
      const float new_max = std::max(mx, simd::ReduceMax(vmax));
      const __m512 vnew = _mm512_set1_ps(new_max);
      __m512 vsum = _mm512_setzero_ps();
      for (int64_t t = 0; t < npt; t += 16) {
        const __m512 p = simd::Exp(_mm512_sub_ps(_mm512_loadu_ps(sr + t), vnew));
        _mm512_storeu_ps(sr + t, p);
        vsum = _mm512_add_ps(vsum, p);
      }
      // Rescale what was accumulated under the old max (exp(-inf) = 0 on the first page).
      c[r] = _mm512_cvtss_f32(simd::Exp(_mm512_set1_ps(mx - new_max)));
      float& sum = st.sum()[pair[r]];
      sum = sum * c[r] + simd::ReduceAdd(vsum);
      mx = new_max;
    }
    switch (R) {
      case 4: Accumulate<4>(accr, c, s, np, vf, d, nt); break;
      case 3: Accumulate<3>(accr, c, s, np, vf, d, nt); break;
      case 2: Accumulate<2>(accr, c, s, np, vf, d, nt); break;
      default: Accumulate<1>(accr, c, s, np, vf, d, nt); break;
    }
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

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
  // Work items: kv head × query block × head block. Each item stages its kv head's page
  // once, so items are made as large as the thread count allows (about 4 per thread).
  // The split changes only which thread computes a row, never its arithmetic.
  const int64_t target = 4 * static_cast<int64_t>(pool.num_threads());
  const int64_t n_qb = std::clamp<int64_t>(CeilDiv(target, s.n_kv_head), 1, n_q);
  const int64_t n_hb = std::clamp<int64_t>(CeilDiv(target, s.n_kv_head * n_qb), 1, group);
  const int64_t n_items = s.n_kv_head * n_qb * n_hb;
  pool.ParallelFor(static_cast<size_t>(n_items), [&](size_t begin, size_t end, int) {
    for (size_t it = begin; it < end; ++it) {
      const int64_t item = static_cast<int64_t>(it);
      const int64_t g = item / (n_qb * n_hb), qb = item / n_hb % n_qb, hb = item % n_hb;
      const int64_t i0 = n_q * qb / n_qb, i1 = n_q * (qb + 1) / n_qb;
      const int64_t h0 = group * hb / n_hb, h1 = group * (hb + 1) / n_hb;
      if (i0 == i1 || h0 == h1) continue;
      if (page.dtype == DType::kF32) FoldItem<float>(s, q, pos_q, page, g, i0, i1, h0, h1, st);
      else FoldItem<uint16_t>(s, q, pos_q, page, g, i0, i1, h0, h1, st);
    }
  });
}

void AttentionFinalize(const AttentionShape& s, const AttentionState& st, float* out) {
  const int64_t pairs = st.n_q() * s.n_head;
  for (int64_t p = 0; p < pairs; ++p) {
    float inv = st.sum()[p] > 0.0f ? 1.0f / st.sum()[p] : 0.0f;
    if (s.sinks != nullptr && st.sum()[p] > 0.0f) {
      // The sink joins the denominator: rescale to m' = max(m, sink) as one more fold step.
      const float m = st.max()[p], sink = s.sinks[p % s.n_head];
      const float mx = std::max(m, sink);
      const float c = std::exp(m - mx);
      inv = c / (st.sum()[p] * c + std::exp(sink - mx));
    }
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
          if (s.window > 0 && pg.first_pos + t <= pos_q[i] - s.window) continue;
          double dot = 0;
          for (int64_t j = 0; j < s.head_dim; ++j)
            dot += static_cast<double>(q[(i * s.n_head + h) * s.head_dim + j]) *
                   elem(pg, pg.k, (t * s.n_kv_head + g) * s.head_dim + j);
          double score = dot * s.scale;
          if (s.softcap > 0.0f) score = s.softcap * std::tanh(score / s.softcap);
          scores.push_back(score);
          keys.emplace_back(&pg, t);
        }
      }
      float* o = out + (i * s.n_head + h) * s.head_dim;
      std::fill(o, o + s.head_dim, 0.0f);
      if (scores.empty()) continue;
      double mx = *std::max_element(scores.begin(), scores.end());
      if (s.sinks != nullptr) mx = std::max(mx, static_cast<double>(s.sinks[h]));
      double total = s.sinks != nullptr ? std::exp(static_cast<double>(s.sinks[h]) - mx) : 0.0;
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
