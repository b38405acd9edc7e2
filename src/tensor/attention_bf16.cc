// AVX-512 BF16 prefill attention (see attention_bf16.h). The structure follows
// attention.cc's FoldItem; only the dot products, the staged layouts and the loop over a
// span of pages differ:
//  1. Stage, once per page for all threads (AttentionBf16Span::Add, one ParallelFor over
//     kv heads), into the span's buffers after the pages already staged: K of kv head g
//     as 32-bit dim pairs, transposed in blocks of 64 keys:
//     kt[t/64][jp][t%64] = (k_t[2jp], k_t[2jp+1]) (the bf16 bytes as stored: 16×16
//     transposes of 32-bit words, no widening); V as key pairs:
//     vp[tp][j] = (v_{2tp}[j], v_{2tp+1}[j]) (a 16-bit interleave).
//  2. Fold: work items (kv head × ~64 (query, head) rows) from a shared counter,
//     head-major, so the threads share the staged head in the caches. An item converts its
//     q rows to bf16 pairs in one pass; per tile of up to kTile = 6 rows, and within the
//     tile per staged page in order (steps 2-4): scores of 16 keys per vector by
//     vdpbf16ps(broadcast q pair, K pairs), 6 rows × 4 key vectors in registers, one
//     contiguous 64-key K block per register tile.
//  3. Softmax per row, f32: the page max (a masking pass only for rows that do not see
//     every key of the tile's range: the diagonal, a window's edge); p = 2^(x·scale·log2e
//     − max·log2e) by a degree-5 polynomial (Exp2NonPositive), rounded to bf16; Σ p of the
//     rounded p by a bf16 dot with ones.
//  4. acc = c·acc + Σ_tp vdpbf16ps(broadcast (p_2tp, p_2tp+1), V pairs), 6 rows × 4 dim
//     vectors in registers.
// Causally masked work is skipped at 16-key granularity per tile (a tile's key range
// ends at its last row's last visible key), as in attention.cc.
// Measured (docs/benchmarks.md, "Prefill attention kernel at the peak"): with one page per
// call, what was left beyond the dot products was mostly memory latency: q (converted
// again for every page) and the f32 accumulators (read and written per page); the span
// (several pages per call, tile-outer) pays those once per span.
#include "tensor/attention_bf16.h"

#include "tensor/simd_util.h"  // first: wraps <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/aligned_buffer.h"
#include "base/check.h"
#include "tensor/simd_exp.h"

namespace spool {

#if defined(__AVX512BF16__)

namespace {

constexpr int kTile = 6;     // rows per register tile (6 × 4 accumulators + 4 operands + 1 broadcast: 29 of 32 zmm)
constexpr int kKeyVecs = 4;  // 16-key vectors per score tile
constexpr int kDimVecs = 4;  // 16-dim vectors per accumulator tile
constexpr int64_t kKeyBlock = 16 * kKeyVecs;  // keys per staged K block (one score tile)

inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}
inline __mmask32 TailMask32(int64_t left) {
  return left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
}
inline int64_t RoundUp16(int64_t n) { return (n + 15) & ~int64_t{15}; }
inline __m512bh AsBh(__m512i x) { return reinterpret_cast<__m512bh&>(x); }

// In-register 16×16 transpose of 32-bit words: r[i] lane j → r[j] lane i.
inline void Transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  for (int m = 0; m < 4; ++m) {  // u[4m + c], 128-bit lane L: column 4L + c of rows 4m..4m+3
    u[4 * m + 0] = _mm512_unpacklo_epi64(t[4 * m], t[4 * m + 2]);
    u[4 * m + 1] = _mm512_unpackhi_epi64(t[4 * m], t[4 * m + 2]);
    u[4 * m + 2] = _mm512_unpacklo_epi64(t[4 * m + 1], t[4 * m + 3]);
    u[4 * m + 3] = _mm512_unpackhi_epi64(t[4 * m + 1], t[4 * m + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44),
                  w1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(v0, w0, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(v1, w1, 0xDD);
  }
}

// K of one kv head as 32-bit dim pairs, in blocks of kKeyBlock keys, each block
// transposed: kt[(t / kKeyBlock) · dp · kKeyBlock + jp · kKeyBlock + t % kKeyBlock] = dims
// (2jp, 2jp+1) of key t as one 32-bit word for t < n; 0 for n <= t < np (np a multiple of
// 16). A score tile then reads one contiguous block (dp · 256 bytes) instead of 16 rows
// np words apart (which mapped onto a few L1 sets). k: [n, stride] bf16, d even.
void StageKPairs(const uint16_t* k, int64_t stride, int64_t d, int64_t n, int64_t np, uint32_t* kt) {
  __m512i r[16];
  const int64_t row_bytes = d * 2, dp = d / 2;
  for (int64_t t0 = 0; t0 < np; t0 += 16) {
    // Rows of one kv head are n_kv_head rows apart: fetch the next block's lines ahead.
    for (int64_t t = t0 + 16; t < std::min(t0 + 32, n); ++t)
      for (int64_t b = 0; b < row_bytes; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(k + t * stride) + b, _MM_HINT_T0);
    uint32_t* blk = kt + t0 / kKeyBlock * dp * kKeyBlock + t0 % kKeyBlock;
    for (int64_t j0 = 0; j0 < d; j0 += 32) {
      const __mmask32 m = TailMask32(d - j0);
      for (int i = 0; i < 16; ++i)
        r[i] = t0 + i < n ? _mm512_maskz_loadu_epi16(m, k + (t0 + i) * stride + j0) : _mm512_setzero_si512();
      Transpose16(r);  // r[c]: the pair (j0 + 2c, j0 + 2c + 1) of the 16 keys
      for (int64_t c = 0; c < 16 && j0 + 2 * c < d; ++c)
        _mm512_storeu_si512(blk + (j0 / 2 + c) * kKeyBlock, r[c]);
    }
  }
}

// vp[tp · d + j] = (v_{2tp}[j], v_{2tp+1}[j]) as one 32-bit word for tp < ceil(n / 2);
// the missing second key of an odd n is 0. v: [n, stride] bf16.
void StageVPairs(const uint16_t* v, int64_t stride, int64_t d, int64_t n, uint32_t* vp) {
  alignas(64) uint16_t lo_idx[32], hi_idx[32];
  for (int l = 0; l < 32; ++l) {  // word l/2 of the result: (a[l/2], b[l/2]); 32 + i selects b[i]
    lo_idx[l] = static_cast<uint16_t>((l & 1 ? 32 : 0) + l / 2);
    hi_idx[l] = static_cast<uint16_t>((l & 1 ? 32 : 0) + 16 + l / 2);
  }
  const __m512i ilo = _mm512_load_si512(lo_idx), ihi = _mm512_load_si512(hi_idx);
  const int64_t row_bytes = d * 2;
  for (int64_t t = 0; t < n; t += 2) {
    for (int64_t tn = t + 16; tn < std::min(t + 18, n); ++tn)
      for (int64_t b = 0; b < row_bytes; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(v + tn * stride) + b, _MM_HINT_T0);
    const uint16_t* a = v + t * stride;
    const bool has_b = t + 1 < n;
    uint32_t* out = vp + (t / 2) * d;
    for (int64_t j0 = 0; j0 < d; j0 += 32) {
      const int64_t left = d - j0;
      const __mmask32 m = TailMask32(left);
      const __m512i A = _mm512_maskz_loadu_epi16(m, a + j0);
      const __m512i B = has_b ? _mm512_maskz_loadu_epi16(m, a + stride + j0) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(out + j0, TailMask(left), _mm512_permutex2var_epi16(A, ilo, B));
      if (left > 16) _mm512_mask_storeu_epi32(out + j0 + 16, TailMask(left - 16), _mm512_permutex2var_epi16(A, ihi, B));
    }
  }
}

// q2[jp] = (bf16(q[2jp]), bf16(q[2jp+1])) (RNE), d even.
void QueryPairs(const float* q, int64_t d, uint32_t* q2) {
  for (int64_t j0 = 0; j0 < d; j0 += 32) {
    const int64_t left = d - j0;
    const __m512 lo = _mm512_maskz_loadu_ps(TailMask(left), q + j0);
    const __m512 hi = left > 16 ? _mm512_maskz_loadu_ps(TailMask(left - 16), q + j0 + 16) : _mm512_setzero_ps();
    const __m512bh b = _mm512_cvtne2ps_pbh(hi, lo);  // words 0..15 from lo, 16..31 from hi
    _mm512_mask_storeu_epi32(q2 + j0 / 2, TailMask(left / 2), reinterpret_cast<const __m512i&>(b));
  }
}

// s[r · np + t0 + 16b + l] = q_r · k_{t0+16b+l} (unscaled) on bf16 pairs, R rows × KB key
// vectors; t0 a multiple of kKeyBlock (kt's block layout, StageKPairs).
// noinline: inlined into FoldItem, GCC spilled accumulators in the inner loops.
template <int R, int KB>
__attribute__((noinline)) void ScoreTile(const uint32_t* const* q2, const uint32_t* kt, int64_t np, int64_t dp, int64_t t0, float* s) {
  __m512 acc[R][KB];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int b = 0; b < KB; ++b) acc[r][b] = _mm512_setzero_ps();
  const uint32_t* kp = kt + t0 * dp;  // block t0 / kKeyBlock
  for (int64_t jp = 0; jp < dp; ++jp, kp += kKeyBlock) {
    __m512bh kv[KB];
#pragma GCC unroll 16
    for (int b = 0; b < KB; ++b) kv[b] = AsBh(_mm512_loadu_si512(kp + 16 * b));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh qb = AsBh(_mm512_set1_epi32(static_cast<int>(q2[r][jp])));
#pragma GCC unroll 16
      for (int b = 0; b < KB; ++b) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], qb, kv[b]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int b = 0; b < KB; ++b) _mm512_storeu_ps(s + r * np + t0 + 16 * b, acc[r][b]);
}

template <int R>
void Scores(const uint32_t* const* q2, const uint32_t* kt, int64_t np, int64_t npt, int64_t dp, float* s) {
  int64_t t0 = 0;
  for (; t0 + kKeyBlock <= npt; t0 += kKeyBlock) ScoreTile<R, kKeyVecs>(q2, kt, np, dp, t0, s);
  switch ((npt - t0) / 16) {
    case 3: ScoreTile<R, 3>(q2, kt, np, dp, t0, s); break;
    case 2: ScoreTile<R, 2>(q2, kt, np, dp, t0, s); break;
    case 1: ScoreTile<R, 1>(q2, kt, np, dp, t0, s); break;
    default: break;
  }
}

// 2^x for x <= 0 (or NaN), 16 lanes, relative error < 4e-6 (then rounded to bf16 by the
// caller, 2^-9): n = round(x), f = x − n in [−1/2, 1/2], 2^f by its degree-5 Taylor
// polynomial (truncation (ln2/2)^6 / 720 < 2.5e-6, plus f32 rounding: measured 3.06e-6), 2^n by vscalefps. x is clamped to
// −150 first, so −inf → 0 (2^-150 rounds to 0); the clamp keeps NaN (vmaxps returns its
// second operand when either is NaN).
inline __m512 Exp2NonPositive(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-150.0f), x);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.3333558146e-3f);                  // ln2^5 / 120
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076e-3f));  // ln2^4 / 24
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108665e-2f));  // ln2^3 / 6
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650696e-1f));  // ln2^2 / 2
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718056e-1f));  // ln2
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// acc_r[j0 .. j0 + 16·NV) = c_r · acc_r + Σ_{tp < ntp} (p_r[2tp], p_r[2tp+1]) · vp[tp][j0 ..]
template <int R, int NV>
__attribute__((noinline)) void AccumulateTile(float* const* acc, const float* c, const uint32_t* const* p2, const uint32_t* vp, int64_t d,
                    int64_t j0, int64_t ntp, __mmask16 m_last) {
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
  const uint32_t* vq = vp + j0;
  for (int64_t tp = 0; tp < ntp; ++tp, vq += d) {
    __m512bh vv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) vv[v] = AsBh(_mm512_maskz_loadu_epi32(m[v], vq + 16 * v));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh pb = AsBh(_mm512_set1_epi32(static_cast<int>(p2[r][tp])));
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) a[r][v] = _mm512_dpbf16_ps(a[r][v], pb, vv[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(acc[r] + j0 + 16 * v, m[v], a[r][v]);
}

template <int R>
void Accumulate(float* const* acc, const float* c, const uint32_t* const* p2, const uint32_t* vp, int64_t d,
                int64_t ntp) {
  for (int64_t j0 = 0; j0 < d; j0 += 16 * kDimVecs) {
    const int64_t left = d - j0;
    const int nv = static_cast<int>(std::min<int64_t>(kDimVecs, (left + 15) / 16));
    const __mmask16 ml = TailMask(left - 16 * (nv - 1));
    switch (nv) {
      case 4: AccumulateTile<R, 4>(acc, c, p2, vp, d, j0, ntp, ml); break;
      case 3: AccumulateTile<R, 3>(acc, c, p2, vp, d, j0, ntp, ml); break;
      case 2: AccumulateTile<R, 2>(acc, c, p2, vp, d, j0, ntp, ml); break;
      default: AccumulateTile<R, 1>(acc, c, p2, vp, d, j0, ntp, ml); break;
    }
  }
}

struct Scratch {
  AlignedBuffer s, p, q;  // a work item's scores, bf16 p and bf16 query pairs
  template <typename T>
  static T* Get(AlignedBuffer& b, int64_t n) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    if (b.size() < bytes) b.Reset(std::max(bytes, 2 * b.size()), 64);
    return reinterpret_cast<T*>(b.data());
  }
};

// Visible keys of query i in a page: [first_valid, n_valid) (first_valid only with a window).
struct PageRange {
  const AttentionShape& sh;
  const int64_t* pos_q;
  int64_t first_pos, n_tokens;
  int64_t n_valid(int64_t i) const { return std::clamp<int64_t>(pos_q[i] - first_pos + 1, 0, n_tokens); }
  int64_t first_valid(int64_t i) const {
    return sh.window > 0 ? std::clamp<int64_t>(pos_q[i] - sh.window + 1 - first_pos, 0, n_tokens) : 0;
  }
};

// Keys of the page that queries [i0, i1) can see: the largest n_valid, or 0 when none of
// them sees any key (a window can exclude the whole page even when n_valid > 0).
int64_t KeysSeen(const PageRange& pr, int64_t i0, int64_t i1) {
  int64_t t_eff = 0;
  bool any = false;
  for (int64_t i = i0; i < i1; ++i) {
    t_eff = std::max(t_eff, pr.n_valid(i));
    any = any || pr.first_valid(i) < pr.n_valid(i);
  }
  return any ? t_eff : 0;
}

// One staged page as a work item of kv head g reads it.
struct PageOfHead {
  int64_t first_pos, n_tokens;
  const uint32_t* kt;  // StageKPairs' layout
  const uint32_t* vp;  // StageVPairs' layout
};

// One work item: kv head g, queries [i0, i1), the group's heads [h0, h1) (offsets in the
// group), over the span's pages of head g (pages[0 .. n_pages), folded in that order).
// Tile-outer: a register tile of rows takes every page before the next tile, so its q
// pairs and accumulators stay in L1 across the pages; per row the arithmetic is one
// page's fold after another, exactly as page-by-page calls would do it.
void FoldItem(const AttentionShape& sh, const float* q, const int64_t* pos_q, const PageOfHead* pages,
              int64_t n_pages, int64_t g, int64_t i0, int64_t i1, int64_t h0, int64_t h1, AttentionState& st) {
  thread_local Scratch sc;
  thread_local std::vector<int64_t> np_of;  // per page: RoundUp16(keys the item sees), 0: the item sees none
  const int64_t d = sh.head_dim, dp = d / 2, group = sh.n_head / sh.n_kv_head;
  np_of.assign(static_cast<size_t>(n_pages), 0);
  int64_t np_max = 0;
  for (int64_t p = 0; p < n_pages; ++p) {
    const int64_t t_eff = KeysSeen({sh, pos_q, pages[p].first_pos, pages[p].n_tokens}, i0, i1);
    if (t_eff == 0) continue;
    np_of[p] = RoundUp16(t_eff);
    np_max = std::max(np_max, np_of[p]);
  }
  if (np_max == 0) return;
  float* s = Scratch::Get<float>(sc.s, kTile * np_max);
  uint16_t* p16 = Scratch::Get<uint16_t>(sc.p, kTile * np_max);
  const int64_t nh = h1 - h0, n_rows = (i1 - i0) * nh;
  // The item's queries as bf16 pairs, once per span: one streaming pass over q (rows of
  // n_q·n_head·head_dim floats, far from the caches) instead of a miss per tile.
  uint32_t* q2 = Scratch::Get<uint32_t>(sc.q, n_rows * dp);
  constexpr int64_t kAhead = 4;  // queries fetched ahead (the hardware prefetcher misses the 8 KB strides)
  for (int64_t i = i0; i < i1; ++i) {
    if (i + kAhead < i1)
      for (int64_t b = 0; b < nh * d * 4; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(q + ((i + kAhead) * sh.n_head + g * group + h0) * d) + b,
                     _MM_HINT_T0);
    for (int64_t hr = 0; hr < nh; ++hr)
      QueryPairs(q + (i * sh.n_head + g * group + h0 + hr) * d, d, q2 + ((i - i0) * nh + hr) * dp);
  }

  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t r0 = 0; r0 < n_rows; r0 += kTile) {
    const int R = static_cast<int>(std::min<int64_t>(kTile, n_rows - r0));
    const uint32_t* qr[kTile];
    float* accr[kTile];
    int64_t pair[kTile], row_i[kTile];
    for (int r = 0; r < R; ++r) {
      const int64_t i = i0 + (r0 + r) / nh, h = g * group + h0 + (r0 + r) % nh;
      row_i[r] = i;
      pair[r] = i * sh.n_head + h;
      qr[r] = q2 + (r0 + r) * dp;
      accr[r] = st.acc() + pair[r] * d;
    }
    // The accumulators (far, like q) are needed after the first page's scores and
    // softmax; later pages find them in L1.
    for (int r = 0; r < R; ++r)
      for (int64_t b = 0; b < d * 4; b += 64) _mm_prefetch(reinterpret_cast<const char*>(accr[r]) + b, _MM_HINT_T0);
    for (int64_t p = 0; p < n_pages; ++p) {
      const int64_t np = np_of[p];
      if (np == 0) continue;
      const PageRange range{sh, pos_q, pages[p].first_pos, pages[p].n_tokens};
      const uint32_t* kt = pages[p].kt;
      const uint32_t* vp = pages[p].vp;
      const uint32_t* pr[kTile];
      int64_t nv[kTile], lo[kTile];
      int64_t nt = 0;  // keys any row of the tile sees
      for (int r = 0; r < R; ++r) {
        pr[r] = reinterpret_cast<const uint32_t*>(p16 + r * np);
        nv[r] = range.n_valid(row_i[r]);
        lo[r] = range.first_valid(row_i[r]);
        if (lo[r] >= nv[r]) nv[r] = lo[r] = 0;  // the window excludes the whole page
        nt = std::max(nt, nv[r]);
      }
      if (nt == 0) continue;
      const int64_t npt = RoundUp16(nt);
      switch (R) {
        case 6: Scores<6>(qr, kt, np, npt, dp, s); break;
        case 5: Scores<5>(qr, kt, np, npt, dp, s); break;
        case 4: Scores<4>(qr, kt, np, npt, dp, s); break;
        case 3: Scores<3>(qr, kt, np, npt, dp, s); break;
        case 2: Scores<2>(qr, kt, np, npt, dp, s); break;
        default: Scores<1>(qr, kt, np, npt, dp, s); break;
      }
      // Online softmax per row: mask, page max, p = exp(scale·s − new max) rounded to bf16, Σ p.
      float c[kTile];
      for (int r = 0; r < R; ++r) {
        float* sr = s + r * np;
        uint16_t* pw = p16 + r * np;
        c[r] = 1.0f;
        if (nv[r] == 0) {  // sees nothing of this page: p = 0, state unchanged
          std::fill(pw, pw + npt, uint16_t{0});
          continue;
        }
        float mul = sh.scale;  // what multiplies sr[t] to give the score
        if (sh.softcap > 0.0f) {  // Gemma 2: cap · tanh(s / cap) on the scaled score
          const float cap = sh.softcap;
          for (int64_t t = 0; t < nv[r]; ++t) sr[t] = cap * std::tanh(sh.scale * sr[t] / cap);
          mul = 1.0f;
        }
        // The page max of the unscaled scores; mul > 0, so mul · max = the max of the
        // scores (rounding is monotonic). Keys the row cannot see (past nv, before lo, or
        // the zero padding up to npt) become −inf, in a masked pass that only rows on the
        // diagonal or at a window's edge take.
        __m512 vmax = _mm512_set1_ps(neg_inf);
        if (nv[r] < npt || lo[r] > 0) {
          vmax = simd::MaskScoresAndMax(sr, npt, nv[r], lo[r]);
        } else {
          for (int64_t t = 0; t < npt; t += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(sr + t));
        }
        float& mx = st.max()[pair[r]];
        const float new_max = std::max(mx, mul * simd::ReduceMax(vmax));
        // p = 2^(sr · mul·log2e − new_max·log2e); the sum Σ p of the rounded p by a bf16 dot
        // with ones (the p that P·V multiplies; DAZ flushes the same denormals in both).
        constexpr float kLog2e = 1.44269504088896341f;
        const __m512 va = _mm512_set1_ps(mul * kLog2e), vb = _mm512_set1_ps(new_max * kLog2e);
        const __m512bh ones = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
        __m512 vsum = _mm512_setzero_ps();
        int64_t t = 0;
        for (; t + 32 <= npt; t += 32) {
          const __m512 p0 = Exp2NonPositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + t), va, vb));
          const __m512 p1 = Exp2NonPositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + t + 16), va, vb));
          const __m512bh pb = _mm512_cvtne2ps_pbh(p1, p0);  // p0 → words 0..15, p1 → 16..31
          _mm512_storeu_si512(pw + t, reinterpret_cast<const __m512i&>(pb));
          vsum = _mm512_dpbf16_ps(vsum, pb, ones);
        }
        if (t < npt) {  // a last 16 keys
          const __m256bh pb = _mm512_cvtneps_pbh(Exp2NonPositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + t), va, vb)));
          const __m256i pi = reinterpret_cast<const __m256i&>(pb);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(pw + t), pi);
          vsum = _mm512_dpbf16_ps(vsum, AsBh(_mm512_zextsi256_si512(pi)), ones);
        }
        // Rescale what was accumulated under the old max (exp(-inf) = 0 on the first page).
        c[r] = _mm512_cvtss_f32(simd::Exp(_mm512_set1_ps(mx - new_max)));
        float& sum = st.sum()[pair[r]];
        sum = sum * c[r] + simd::ReduceAdd(vsum);
        mx = new_max;
      }
      const int64_t ntp = (nt + 1) / 2;
      switch (R) {
        case 6: Accumulate<6>(accr, c, pr, vp, d, ntp); break;
        case 5: Accumulate<5>(accr, c, pr, vp, d, ntp); break;
        case 4: Accumulate<4>(accr, c, pr, vp, d, ntp); break;
        case 3: Accumulate<3>(accr, c, pr, vp, d, ntp); break;
        case 2: Accumulate<2>(accr, c, pr, vp, d, ntp); break;
        default: Accumulate<1>(accr, c, pr, vp, d, ntp); break;
      }
    }
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void AttentionBf16Exp2ForTest(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    _mm512_mask_storeu_ps(out + i, m, Exp2NonPositive(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

bool AttentionBf16Supported() {
  static const bool ok = __builtin_cpu_supports("avx512bf16");
  return ok;
}

void AttentionBf16Span::Begin(const AttentionShape& shape, const int64_t* pos_q, int64_t n_q) {
  SPOOL_CHECK(shape.n_kv_head > 0 && shape.n_head % shape.n_kv_head == 0 && shape.head_dim > 0 &&
              shape.head_dim % 2 == 0);
  shape_ = shape;
  pos_q_ = pos_q;
  n_q_ = n_q;
  pages_.clear();
  keys_ = kt_used_ = vp_used_ = 0;
  if (shape.n_kv_head != staged_heads_ || shape.head_dim != staged_dim_) kt_stride_ = vp_stride_ = 0;
}

bool AttentionBf16Span::Add(ThreadPool& pool, const KvPageView& page) {
  SPOOL_CHECK_MSG(AttentionBf16Accepts(shape_, page), "AttentionBf16Span: needs bf16 K/V, even head_dim, AVX-512 BF16");
  if (page.n_tokens <= 0 || n_q_ == 0) return true;
  const int64_t t_eff = KeysSeen({shape_, pos_q_, page.first_pos, page.n_tokens}, 0, n_q_);
  if (t_eff == 0) return true;  // no query sees a key: folding it would change nothing
  if (!pages_.empty() && keys_ + t_eff > max_keys_) return false;
  const int64_t d = shape_.head_dim, dp = d / 2, n_kv = shape_.n_kv_head, stride = n_kv * d;
  const int64_t np = RoundUp16(t_eff);
  const int64_t kt_need = dp * ((np + kKeyBlock - 1) / kKeyBlock * kKeyBlock), vp_need = (t_eff + 1) / 2 * d;
  if (kt_used_ + kt_need > kt_stride_ || vp_used_ + vp_need > vp_stride_) {
    if (!pages_.empty()) return false;
    // Empty: size each kv head's region for max_keys (or this page, if larger).
    const int64_t cap = std::max(max_keys_, t_eff);
    kt_stride_ = std::max(kt_need, dp * ((RoundUp16(cap) + kKeyBlock - 1) / kKeyBlock * kKeyBlock));
    vp_stride_ = std::max(vp_need, (cap + 1) / 2 * d);
    staged_heads_ = n_kv, staged_dim_ = d;
    const size_t kt_bytes = static_cast<size_t>(n_kv * kt_stride_) * 4, vp_bytes = static_cast<size_t>(n_kv * vp_stride_) * 4;
    if (kt_.size() < kt_bytes) kt_.Reset(kt_bytes, 64);
    if (vp_.size() < vp_bytes) vp_.Reset(vp_bytes, 64);
  }
  // Stage K and V of every kv head (one ParallelFor over the heads): shared by all threads
  // in Fold, one copy per page instead of one per work item.
  uint32_t* kt = kt_.as<uint32_t>() + kt_used_;
  uint32_t* vp = vp_.as<uint32_t>() + vp_used_;
  const int64_t kts = kt_stride_, vps = vp_stride_;
  pool.ParallelFor(static_cast<size_t>(n_kv), [&](size_t begin, size_t end, int) {
    for (size_t gi = begin; gi < end; ++gi) {
      const int64_t g = static_cast<int64_t>(gi);
      StageKPairs(static_cast<const uint16_t*>(page.k) + g * d, stride, d, t_eff, np, kt + g * kts);
      StageVPairs(static_cast<const uint16_t*>(page.v) + g * d, stride, d, t_eff, vp + g * vps);
    }
  });
  pages_.push_back({page.first_pos, page.n_tokens, t_eff, kt_used_, vp_used_});
  keys_ += t_eff;
  kt_used_ += kt_need;
  vp_used_ += vp_need;
  return true;
}

void AttentionBf16Span::Fold(ThreadPool& pool, const float* q, AttentionState& st) {
  SPOOL_CHECK(st.n_q() == n_q_);
  if (pages_.empty()) return;
  const AttentionShape& s = shape_;
  const int64_t group = s.n_head / s.n_kv_head, n_pages = static_cast<int64_t>(pages_.size());
  // Work items: kv head × query block (about kItemRows rows) × head block (only when
  // that leaves fewer items than threads), ordered head-major and taken from a shared
  // counter, so that the threads work on the same staged head at the same time and a
  // thread that was held up (the VM's other tenants) does not hold the span's barrier.
  // The split and the order change only which thread computes a row, never its arithmetic.
  constexpr int64_t kItemRows = 64;
  const int64_t parts = pool.num_threads();
  const int64_t n_qb = std::clamp<int64_t>(CeilDiv(n_q_ * group, kItemRows), 1, n_q_);
  const int64_t n_hb = std::clamp<int64_t>(CeilDiv(parts, s.n_kv_head * n_qb), 1, group);
  const int64_t n_items = s.n_kv_head * n_qb * n_hb;
  std::atomic<int64_t> next{0};
  pool.ParallelFor(static_cast<size_t>(std::min(parts, n_items)), [&](size_t, size_t, int) {
    thread_local std::vector<PageOfHead> heads_pages;
    int64_t g_ready = -1;
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) {
      const int64_t g = item / (n_qb * n_hb), qb = item / n_hb % n_qb, hb = item % n_hb;
      const int64_t i0 = n_q_ * qb / n_qb, i1 = n_q_ * (qb + 1) / n_qb;
      const int64_t h0 = group * hb / n_hb, h1 = group * (hb + 1) / n_hb;
      if (i0 == i1 || h0 == h1) continue;
      if (g != g_ready) {
        heads_pages.resize(static_cast<size_t>(n_pages));
        for (int64_t p = 0; p < n_pages; ++p)
          heads_pages[p] = {pages_[p].first_pos, pages_[p].n_tokens,
                            kt_.as<uint32_t>() + g * kt_stride_ + pages_[p].kt_off,
                            vp_.as<uint32_t>() + g * vp_stride_ + pages_[p].vp_off};
        g_ready = g;
      }
      FoldItem(s, q, pos_q_, heads_pages.data(), n_pages, g, i0, i1, h0, h1, st);
    }
  });
  pages_.clear();
  keys_ = kt_used_ = vp_used_ = 0;
}

void AttentionFoldPageBf16(ThreadPool& pool, const AttentionShape& s, const float* q, const int64_t* pos_q,
                           int64_t n_q, const KvPageView& page, AttentionState& st) {
  thread_local AttentionBf16Span span;  // Begin, Add and Fold check the shape, the page and st
  span.Begin(s, pos_q, n_q);
  span.Add(pool, page);  // an empty span takes any page
  span.Fold(pool, q, st);
}

#else  // no AVX-512 BF16 in this build: callers use AttentionFoldPage

bool AttentionBf16Supported() { return false; }

void AttentionFoldPageBf16(ThreadPool&, const AttentionShape&, const float*, const int64_t*, int64_t,
                           const KvPageView&, AttentionState&) {
  SPOOL_CHECK_MSG(false, "AttentionFoldPageBf16: built without AVX-512 BF16");
}

void AttentionBf16Exp2ForTest(const float*, int64_t, float*) {
  SPOOL_CHECK_MSG(false, "AttentionBf16Exp2ForTest: built without AVX-512 BF16");
}

void AttentionBf16Span::Begin(const AttentionShape&, const int64_t*, int64_t) {
  SPOOL_CHECK_MSG(false, "AttentionBf16Span: built without AVX-512 BF16");
}
bool AttentionBf16Span::Add(ThreadPool&, const KvPageView&) {
  SPOOL_CHECK_MSG(false, "AttentionBf16Span: built without AVX-512 BF16");
  return false;
}
void AttentionBf16Span::Fold(ThreadPool&, const float*, AttentionState&) {
  SPOOL_CHECK_MSG(false, "AttentionBf16Span: built without AVX-512 BF16");
}

#endif

bool AttentionBf16Accepts(const AttentionShape& shape, const KvPageView& page) {
  return page.dtype == DType::kBF16 && shape.head_dim % 2 == 0 && AttentionBf16Supported();
}

}  // namespace spool
