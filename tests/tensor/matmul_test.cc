// MatMul paths against references.
//   GEMV (any m, several threads) vs MatMulRef: |Δ| <= 1e-5 · Σ_j|w_j·x_j| + 1e-6.
//   GEMM vs f32 dot of dequantised weights with unquantised x (double accumulation):
//   inputs are rounded to bf16 (x always; weights unless bf16/f32/f16), so
//   |Δ| <= 2^-7 · Σ_j|w_j·x_j| + 1e-5 (f32 and f16 weights: 1e-4 · Σ|w·x|).
#include "tensor/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "tensor/dequant.h"
#include "tensor/gemm_int8_kcol.h"
#include "tensor/vec_dot.h"
#include "test_util.h"

namespace spool {
namespace {

struct Case {
  DType t;
  int64_t n_out, n_in, m;
};

struct Data {
  AlignedBuffer w;
  std::vector<float> x, wf;
};

Data MakeData(const Case& c, std::mt19937& rng) {
  Data d;
  auto bytes = testing::RandomWeights(rng, c.t, c.n_out * c.n_in);
  d.w.Reset(bytes.size(), 64);
  std::memcpy(d.w.data(), bytes.data(), bytes.size());
  d.x = testing::RandomFloats(rng, c.m * c.n_in);
  d.wf.resize(c.n_out * c.n_in);
  DequantizeRow(c.t, d.w.data(), d.wf.data(), c.n_out * c.n_in);
  return d;
}

double Magnitude(const Data& d, const Case& c, int64_t i, int64_t r) {
  double mag = 0;
  for (int64_t j = 0; j < c.n_in; ++j) mag += std::fabs(static_cast<double>(d.wf[r * c.n_in + j]) * d.x[i * c.n_in + j]);
  return mag;
}

class MatMulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatMulTest, GemvMatchesReference) {
  const DType t = GetParam();
  std::mt19937 rng(11);
  ThreadPool pool(2);
  MatMulContext ctx;
  // 4352: a row longer than 4096 (the down projection's shape class).
  for (Case c : {Case{t, 37, 512, 1}, Case{t, 64, 768, 3}, Case{t, 5, 256, 4}, Case{t, 19, 512, 9},
                 Case{t, 21, 4352, 1}}) {
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    std::vector<float> y(c.m * c.n_out), y_ref(c.m * c.n_out);
    MatMulGemv(ctx, pool, w, d.x.data(), c.m, y.data());
    MatMulRef(w, d.x.data(), c.m, y_ref.data());
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t r = 0; r < c.n_out; ++r)
        ASSERT_NEAR(y[i * c.n_out + r], y_ref[i * c.n_out + r], 1e-5 * Magnitude(d, c, i, r) + 1e-6)
            << DTypeName(t) << " row " << r << " m " << i;
  }
}

// Batch invariance, which decode relies on (a sequence's tokens must not depend on how
// many others share its step): every GEMV row is bit-identical to computing that row
// alone, for any m (float weights take a multi-row kernel for m > 1) and odd n_in
// (masked tails).
TEST_P(MatMulTest, GemvRowsAreBitIdenticalWhateverM) {
  const DType t = GetParam();
  std::mt19937 rng(23);
  ThreadPool pool(2);
  MatMulContext ctx;
  const int64_t block = GetDTypeInfo(t).block_elems;
  const int64_t n_in = block == 1 ? 16 * 7 + 5 : block * 5;  // tails for float types
  for (int64_t m : {2, 3, 4, 5, 8, 9, 17}) {
    Case c{t, 29, n_in, m};
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    std::vector<float> y(m * c.n_out), one(c.n_out);
    MatMulGemv(ctx, pool, w, d.x.data(), m, y.data());
    for (int64_t i = 0; i < m; ++i) {
      MatMulGemv(ctx, pool, w, d.x.data() + i * c.n_in, 1, one.data());
      ASSERT_EQ(0, std::memcmp(one.data(), y.data() + i * c.n_out, one.size() * sizeof(float)))
          << DTypeName(t) << " m=" << m << " row " << i;
    }
  }
}

// Decode's GEMV (m = 1, rows split over the pool's threads) equals DotRow of each weight
// row, bit for bit, for short and long rows (n_in > 4096: the down projection), odd
// n_out and float tails; and m = 3 (float: 4-row × 3-row tiles) gives the same bits.
TEST_P(MatMulTest, GemvDecodeTilesEqualDotRow) {
  const DType t = GetParam();
  std::mt19937 rng(29);
  ThreadPool pool(2);
  MatMulContext ctx;
  const int64_t block = GetDTypeInfo(t).block_elems;
  for (int64_t n_in : {block == 1 ? int64_t{16 * 7 + 5} : block * 5, block == 1 ? int64_t{4096 + 16 * 3 + 5} : block * 17 * (256 / block)}) {
    Case c{t, 45, n_in, 3};
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    std::vector<float> y3(3 * c.n_out), one(c.n_out);
    MatMulGemv(ctx, pool, w, d.x.data(), 3, y3.data());
    const size_t row_bytes = *DTypeBytes(t, static_cast<uint64_t>(n_in));
    AlignedBuffer act(ActRowBytes(ActFormatFor(t), n_in), 64);
    for (int64_t i = 0; i < 3; ++i) {
      MatMulGemv(ctx, pool, w, d.x.data() + i * n_in, 1, one.data());
      ASSERT_EQ(0, std::memcmp(one.data(), y3.data() + i * c.n_out, one.size() * sizeof(float)))
          << DTypeName(t) << " n_in=" << n_in << " row " << i;
      PrepareActivationRow(ActFormatFor(t), d.x.data() + i * n_in, act.data(), n_in);
      for (int64_t r = 0; r < c.n_out; ++r) {
        const float want = DotRow(t, d.w.data() + r * row_bytes, act.data(), n_in);
        ASSERT_EQ(0, std::memcmp(&want, &one[r], sizeof(float))) << DTypeName(t) << " n_in=" << n_in << " out " << r;
      }
    }
  }
}

// Decode's GEMV hands rows to threads in guided chunks claimed at run time (matmul.cc
// ParallelRowsGuided), and long float rows go through 4-row tiles: whichever thread takes
// a row and however the chunk boundaries fall (any thread count, n_out not a multiple of
// the tile, rows short enough for many small chunks), each output equals DotRow bit for bit.
TEST_P(MatMulTest, GemvDecodeGuidedChunksEqualDotRowAnyThreads) {
  const DType t = GetParam();
  std::mt19937 rng(31);
  MatMulContext ctx;
  const int64_t block = GetDTypeInfo(t).block_elems;
  for (int64_t n_in : {block == 1 ? int64_t{64 + 5} : block, block == 1 ? int64_t{4096 + 16 * 2 + 7} : block * 33}) {
    Case c{t, 301, n_in, 1};
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    const size_t row_bytes = *DTypeBytes(t, static_cast<uint64_t>(n_in));
    AlignedBuffer act(ActRowBytes(ActFormatFor(t), n_in), 64);
    PrepareActivationRow(ActFormatFor(t), d.x.data(), act.data(), n_in);
    for (int threads : {1, 2, 3, 5}) {
      ThreadPool pool(threads);
      for (int rep = 0; rep < 3; ++rep) {  // claims race differently each call
        std::vector<float> y(c.n_out, NAN);
        MatMulGemv(ctx, pool, w, d.x.data(), 1, y.data());
        for (int64_t r = 0; r < c.n_out; ++r) {
          const float want = DotRow(t, d.w.data() + r * row_bytes, act.data(), n_in);
          ASSERT_EQ(0, std::memcmp(&want, &y[r], sizeof(float)))
              << DTypeName(t) << " n_in=" << n_in << " threads=" << threads << " out " << r;
        }
      }
    }
  }
}

// Many rows (prefill chunks): quantised weights take the register-tiled integer kernel
// (gemm_int8.h), which walks the activation rows in L2-sized blocks. Every row must stay
// bit-identical to that row computed alone (DotRow's numerics, llama.cpp's order), across
// activation blocks, for n_out not a multiple of the tile, and for any thread count.
TEST_P(MatMulTest, GemvManyRowsBitIdenticalAcrossBlocksAndThreads) {
  const DType t = GetParam();
  std::mt19937 rng(29);
  MatMulContext ctx;
  const int64_t block = GetDTypeInfo(t).block_elems;
  const int64_t n_in = block == 1 ? 16 * 7 + 5 : 8192;  // ≥ 8 KiB activation rows: several L2 blocks
  Case c{t, 37, n_in, 71};
  Data d = MakeData(c, rng);
  WeightView w{t, d.w.data(), c.n_out, c.n_in};
  std::vector<float> one(c.n_out);
  std::vector<std::vector<float>> ys;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    ys.emplace_back(c.m * c.n_out);
    MatMulGemv(ctx, pool, w, d.x.data(), c.m, ys.back().data());
    if (threads == 1) {
      for (int64_t i = 0; i < c.m; ++i) {
        MatMulGemv(ctx, pool, w, d.x.data() + i * c.n_in, 1, one.data());
        ASSERT_EQ(0, std::memcmp(one.data(), ys.back().data() + i * c.n_out, one.size() * sizeof(float)))
            << DTypeName(t) << " row " << i;
      }
    } else {
      ASSERT_EQ(ys.front(), ys.back()) << DTypeName(t) << " threads=" << threads;
    }
  }
}

// The integer tiles at the edge of their integer ranges: every code at its largest value
// (Q8_0: −128), every activation at ±127 with one sign per row (the largest lane sums the
// K-quant kernels pack into 16-bit words: 4·63·127 for Q6_K), scales at their extremes.
// Rows must equal DotRow bit for bit and stay near the exact dot product (no saturation).
TEST_P(MatMulTest, GemvManyRowsAtIntegerExtremesEqualDotRow) {
  const DType t = GetParam();
  if (GetDTypeInfo(t).block_elems == 1 || t == DType::kMXFP4) GTEST_SKIP() << "no integer tiles for this type";
  const int64_t n_in = 1024, n_out = 9, m = 11;
  const size_t row_bytes = *DTypeBytes(t, n_in), blk = *DTypeBytes(t, GetDTypeInfo(t).block_elems);
  AlignedBuffer w(row_bytes * n_out, 64);
  std::memset(w.data(), t == DType::kQ8_0 ? 0x80 : 0xFF, row_bytes * n_out);
  // Normal f16 d (and m / dmin) in every block; Q6_K stores d last. Scale bytes stay 0xFF
  // (Q4_K/Q5_K: 6-bit scales and mins 63; Q6_K: int8 scales −1).
  const size_t d_at = t == DType::kQ6_K ? blk - 2 : 0;
  const bool has_m = t == DType::kQ4_1 || t == DType::kQ5_1 || t == DType::kQ4_K || t == DType::kQ5_K;
  for (int64_t r = 0; r < n_out; ++r)
    for (size_t off = 0; off < row_bytes; off += blk) {
      const uint16_t d = F32ToF16(r % 2 ? -0.02f : 0.01f), mm = F32ToF16(0.005f);
      std::memcpy(w.data() + r * row_bytes + off + d_at, &d, 2);
      if (has_m) std::memcpy(w.data() + r * row_bytes + off + 2, &mm, 2);
    }
  std::vector<float> x(m * n_in), wf(n_out * n_in);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n_in; ++j) x[i * n_in + j] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? -2.0f : (j % 2 ? 3.0f : -3.0f);
  DequantizeRow(t, w.data(), wf.data(), n_out * n_in);
  ThreadPool pool(2);
  MatMulContext ctx;
  std::vector<float> y(m * n_out);
  MatMulGemv(ctx, pool, WeightView{t, w.data(), n_out, n_in}, x.data(), m, y.data());
  AlignedBuffer act(ActRowBytes(ActFormatFor(t), n_in), 64);
  for (int64_t i = 0; i < m; ++i) {
    PrepareActivationRow(ActFormatFor(t), x.data() + i * n_in, act.data(), n_in);
    for (int64_t r = 0; r < n_out; ++r) {
      const float want = DotRow(t, w.data() + r * row_bytes, act.data(), n_in);
      ASSERT_EQ(0, std::memcmp(&want, &y[i * n_out + r], sizeof(float))) << DTypeName(t) << " row " << i << " out " << r;
      double exact = 0, mag = 0;
      for (int64_t j = 0; j < n_in; ++j) {
        exact += static_cast<double>(wf[r * n_in + j]) * x[i * n_in + j];
        mag += std::fabs(static_cast<double>(wf[r * n_in + j]) * x[i * n_in + j]);
      }
      ASSERT_NEAR(y[i * n_out + r], exact, 0.02 * mag + 1e-3) << DTypeName(t) << " row " << i << " out " << r;
    }
  }
}

TEST_P(MatMulTest, GemmMatchesDequantisedF32) {
  const DType t = GetParam();
  std::mt19937 rng(12);
  ThreadPool pool(2);
  MatMulContext ctx;
  const bool exact_weights = t == DType::kF32 || t == DType::kF16;
  // n_out not a multiple of the tile, m > kGemvMaxRows; run twice to hit the primitive cache.
  for (Case c : {Case{t, 300, 512, 7}, Case{t, 300, 512, 7}, Case{t, 40, 256, 33}}) {
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    std::vector<float> y(c.m * c.n_out, NAN);
    MatMulGemm(ctx, pool, w, d.x.data(), c.m, y.data());
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t r = 0; r < c.n_out; ++r) {
        double exact = 0;
        for (int64_t j = 0; j < c.n_in; ++j) exact += static_cast<double>(d.wf[r * c.n_in + j]) * d.x[i * c.n_in + j];
        const double tol = (exact_weights ? 1e-4 : 1.0 / 128) * Magnitude(d, c, i, r) + 1e-5;
        ASSERT_NEAR(y[i * c.n_out + r], exact, tol) << DTypeName(t) << " row " << r << " m " << i;
      }
  }
}

TEST_P(MatMulTest, DispatchPicksGemvThenGemm) {
  const DType t = GetParam();
  std::mt19937 rng(13);
  ThreadPool pool(2);
  MatMulContext ctx;
  const int64_t limit = GemvMaxRows(t);
  std::vector<int64_t> ms = {1, std::min<int64_t>(limit, 33)};
  if (limit < 1000) ms.push_back(limit + 1);  // quantised weights never switch to GEMM
  for (int64_t m : ms) {
    Case c{t, 40, 256, m};
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    std::vector<float> y(m * c.n_out), want(m * c.n_out);
    MatMul(ctx, pool, w, d.x.data(), m, y.data());
    if (m <= limit) MatMulGemv(ctx, pool, w, d.x.data(), m, want.data());
    else if (GemmKColSupported(t)) MatMulKQuantPrefill(ctx, pool, w, d.x.data(), m, want.data());
    else MatMulGemm(ctx, pool, w, d.x.data(), m, want.data());
    EXPECT_EQ(y, want) << DTypeName(t) << " m=" << m;
  }
}

// ---- K-quant prefill GEMM (gemm_int8_kcol.h): llama.cpp's prefill numerics -------------

const DType kKQuants[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// y[i, r] == DotKColRef(W row r, act row i) bit for bit.
void ExpectEqualsKColRef(const WeightView& w, const float* x, int64_t m, const float* y, const std::string& what) {
  const size_t row_bytes = *DTypeBytes(w.dtype, static_cast<uint64_t>(w.n_in));
  AlignedBuffer act(ActRowBytes(ActFormat::kQ8_K, w.n_in), 64);
  for (int64_t i = 0; i < m; ++i) {
    PrepareActivationRow(ActFormat::kQ8_K, x + i * w.n_in, act.data(), w.n_in);
    for (int64_t r = 0; r < w.n_out; ++r) {
      const float want = DotKColRef(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes, act.data(), w.n_in);
      ASSERT_EQ(0, std::memcmp(&want, &y[i * w.n_out + r], sizeof(float)))
          << what << " " << DTypeName(w.dtype) << " act row " << i << " out " << r << ": " << y[i * w.n_out + r]
          << " vs " << want;
    }
  }
}

// Bit for bit the reference's per-pair numerics, for m below, at and past a 16-row band
// (padding lanes), n_out not a multiple of the 8-row panel, 1-3 threads; and within
// f32 rounding of DotRow (the decode GEMV: the same exact integers, other f32 steps).
TEST(KQuantPrefill, EqualsReferenceBitForBitAndDotRowWithinRounding) {
  std::mt19937 rng(41);
  for (DType t : kKQuants)
    for (Case c : {Case{t, 37, 512, 8}, Case{t, 16, 256, 16}, Case{t, 29, 1024, 33}, Case{t, 8, 768, 1},
                   Case{t, 3, 256, 17}}) {
      Data d = MakeData(c, rng);
      WeightView w{t, d.w.data(), c.n_out, c.n_in};
      for (int threads : {1, 3}) {
        ThreadPool pool(threads);
        MatMulContext ctx;
        std::vector<float> y(c.m * c.n_out), gemv(c.m * c.n_out);
        MatMulKQuantPrefill(ctx, pool, w, d.x.data(), c.m, y.data());
        ExpectEqualsKColRef(w, d.x.data(), c.m, y.data(), "threads " + std::to_string(threads));
        MatMulGemv(ctx, pool, w, d.x.data(), c.m, gemv.data());
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t r = 0; r < c.n_out; ++r)
            ASSERT_NEAR(y[i * c.n_out + r], gemv[i * c.n_out + r], 1e-5 * Magnitude(d, c, i, r) + 1e-6)
                << DTypeName(t) << " row " << r << " m " << i;
      }
    }
}

// A row's result does not depend on the other rows of the call (m, band) or the thread count.
TEST(KQuantPrefill, RowsIndependentOfMAndThreads) {
  std::mt19937 rng(43);
  for (DType t : kKQuants) {
    Case c{t, 27, 768, 40};
    Data d = MakeData(c, rng);
    WeightView w{t, d.w.data(), c.n_out, c.n_in};
    ThreadPool pool1(1), pool3(3);
    MatMulContext ctx;
    std::vector<float> all(c.m * c.n_out), part(c.m * c.n_out);
    MatMulKQuantPrefill(ctx, pool3, w, d.x.data(), c.m, all.data());
    for (int64_t first : {int64_t{0}, int64_t{5}, int64_t{19}})
      for (int64_t m : {int64_t{1}, int64_t{9}, int64_t{21}}) {
        MatMulKQuantPrefill(ctx, pool1, w, d.x.data() + first * c.n_in, m, part.data());
        ASSERT_EQ(0, std::memcmp(part.data(), all.data() + first * c.n_out, m * c.n_out * sizeof(float)))
            << DTypeName(t) << " rows " << first << "+" << m;
      }
  }
}

// Every code at its largest value, the largest scales/mins, activations at ±127 (−128 in
// Q8_K where a row's extreme is negative): the integer sums at their extremes stay exact.
TEST(KQuantPrefill, IntegerExtremesEqualReference) {
  for (DType t : kKQuants) {
    const int64_t n_in = 1024, n_out = 9, m = 11;
    const size_t row_bytes = *DTypeBytes(t, n_in), blk = *DTypeBytes(t, 256);
    AlignedBuffer w(row_bytes * n_out, 64);
    std::memset(w.data(), 0xFF, row_bytes * n_out);
    const size_t d_at = t == DType::kQ6_K ? blk - 2 : 0;
    for (int64_t r = 0; r < n_out; ++r)
      for (size_t off = 0; off < row_bytes; off += blk) {
        const uint16_t dd = F32ToF16(r % 2 ? -0.02f : 0.01f), mm = F32ToF16(0.005f);
        std::memcpy(w.data() + r * row_bytes + off + d_at, &dd, 2);
        if (t != DType::kQ6_K) std::memcpy(w.data() + r * row_bytes + off + 2, &mm, 2);
      }
    std::vector<float> x(m * n_in), wf(n_out * n_in);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n_in; ++j) x[i * n_in + j] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? -2.0f : (j % 2 ? 3.0f : -3.0f);
    DequantizeRow(t, w.data(), wf.data(), n_out * n_in);
    ThreadPool pool(2);
    MatMulContext ctx;
    WeightView wv{t, w.data(), n_out, n_in};
    std::vector<float> y(m * n_out);
    MatMulKQuantPrefill(ctx, pool, wv, x.data(), m, y.data());
    ExpectEqualsKColRef(wv, x.data(), m, y.data(), "extremes");
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n_out; ++r) {
        double exact = 0, mag = 0;
        for (int64_t j = 0; j < n_in; ++j) {
          exact += static_cast<double>(wf[r * n_in + j]) * x[i * n_in + j];
          mag += std::fabs(static_cast<double>(wf[r * n_in + j]) * x[i * n_in + j]);
        }
        ASSERT_NEAR(y[i * n_out + r], exact, 0.02 * mag + 1e-3) << DTypeName(t) << " row " << i << " out " << r;
      }
  }
}

// Bit for bit llama.cpp's own prefill: fixtures written by bench/prefill/ggml_mulmat.cc
// (--dump) with the libggml of llama-cpp-python 0.3.36 (ggml's tiled K-quant matmul,
// AVX-512 VNNI kernel): W [12, 512] quantised by ggml, x [9, 512] by a formula, y = ggml's.
TEST(KQuantPrefill, EqualsLlamaCppTiledMatmul) {
  const int64_t n_out = 12, n_in = 512, m = 9;
  for (const char* name : {"q4_K", "q5_K", "q6_K"}) {
    const DType t = std::string(name) == "q4_K" ? DType::kQ4_K : std::string(name) == "q5_K" ? DType::kQ5_K : DType::kQ6_K;
    const std::string base = std::string(SPOOL_TEST_FIXTURES) + "/tensor/ggml_mulmat_" + name + "_12x512_m9";
    const std::vector<uint8_t> wb = testing::ReadBytes(base + ".w"), yb = testing::ReadBytes(base + ".y");
    ASSERT_EQ(wb.size(), *DTypeBytes(t, n_in) * n_out) << base;
    ASSERT_EQ(yb.size(), sizeof(float) * n_out * m) << base;
    AlignedBuffer w(wb.size(), 64);
    std::memcpy(w.data(), wb.data(), wb.size());
    std::vector<float> x(m * n_in), want(m * n_out), y(m * n_out);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n_in; ++j) x[i * n_in + j] = static_cast<float>((i * 131 + j * 71) % 255 - 127) / 37.0f;
    std::memcpy(want.data(), yb.data(), yb.size());
    ThreadPool pool(2);
    MatMulContext ctx;
    MatMul(ctx, pool, WeightView{t, w.data(), n_out, n_in}, x.data(), m, y.data());
    for (int64_t k = 0; k < m * n_out; ++k)
      ASSERT_EQ(0, std::memcmp(&want[k], &y[k], sizeof(float))) << name << " act row " << k / n_out << " out "
                                                                 << k % n_out << ": " << y[k] << " vs ggml " << want[k];
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulTest, ::testing::ValuesIn(testing::kWeightTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace spool
