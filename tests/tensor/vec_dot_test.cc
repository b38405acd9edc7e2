// Activation quantisers and row dot products.
//   Quantisers: AVX-512 version bit-identical to the reference.
//   DotRows (the m = 1 GEMV's row loop) equals DotRow bit for bit, every type, rows
//   shorter and longer than its 64-block sub-sum table, padded row strides.
//   Q4_K/Q6_K at their integer extremes (all-ones nibbles, largest scales/mins, x = ±127):
//   DotRow equals DotRowRef (the integer sums are exact and must not wrap or saturate).
//   DotRow vs DotRowRef: |Δ| <= 1e-5 · Σ|w·a| (same integer block sums, f32 order differs).
//   DotRowRef vs Σ dequant(w)·dequant(act) in double: |Δ| <= 1e-5 · Σ|w·a| + 1e-6.
//   DotRowRef vs Σ dequant(w)·x (unquantised x): within the activation quantisation
//   bound Σ|w_j|·(block amax/254) (+1e-3 relative slack for f16 scales).
#include "tensor/vec_dot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "tensor/dequant.h"
#include "tensor/quantize_act.h"
#include "test_util.h"

namespace spool {
namespace {

using namespace quant;

std::vector<float> TestActivations(std::mt19937& rng, int64_t n) {
  auto x = testing::RandomFloats(rng, n);
  for (int64_t i = 32; i < std::min<int64_t>(64, n); ++i) x[i] = 0.0f;  // an all-zero block
  if (n >= 64) {  // |max| tie with different signs: Q8_K must take the first
    x[10] = -30.0f;
    x[11] = 30.0f;
  }
  return x;
}

TEST(QuantizeAct, OptimisedEqualsReference) {
  std::mt19937 rng(1);
  for (int64_t n : {256, 768, 4096}) {
    auto x = TestActivations(rng, n);
    std::vector<BlockQ8_0> a0(n / 32), b0(n / 32);
    QuantizeRowQ8_0(x.data(), a0.data(), n);
    QuantizeRowQ8_0Ref(x.data(), b0.data(), n);
    EXPECT_EQ(0, std::memcmp(a0.data(), b0.data(), a0.size() * sizeof(BlockQ8_0))) << "q8_0 n=" << n;
    std::vector<BlockQ8_1> a1(n / 32), b1(n / 32);
    QuantizeRowQ8_1(x.data(), a1.data(), n);
    QuantizeRowQ8_1Ref(x.data(), b1.data(), n);
    EXPECT_EQ(0, std::memcmp(a1.data(), b1.data(), a1.size() * sizeof(BlockQ8_1))) << "q8_1 n=" << n;
    std::vector<BlockQ8_K> ak(n / 256), bk(n / 256);
    QuantizeRowQ8_K(x.data(), ak.data(), n);
    QuantizeRowQ8_KRef(x.data(), bk.data(), n);
    EXPECT_EQ(0, std::memcmp(ak.data(), bk.data(), ak.size() * sizeof(BlockQ8_K))) << "q8_k n=" << n;
  }
}

TEST(QuantizeAct, ValuesWithinHalfStep) {
  std::mt19937 rng(2);
  const int64_t n = 512;
  auto x = TestActivations(rng, n);
  std::vector<BlockQ8_0> q0(n / 32);
  QuantizeRowQ8_0Ref(x.data(), q0.data(), n);
  std::vector<BlockQ8_K> qk(n / 256);
  QuantizeRowQ8_KRef(x.data(), qk.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ8_0& b = q0[i / 32];
    const float d = F16ToF32(b.d);
    // d is stored as f16: the rounding of d adds up to 127·d·2^-11 to the half step.
    EXPECT_NEAR(b.qs[i % 32] * d, x[i], d * 0.57f + 1e-30f) << i;
    const BlockQ8_K& k = qk[i / 256];
    EXPECT_NEAR(k.qs[i % 256] * k.d, x[i], std::fabs(k.d) * 0.5001f + 1e-30f) << i;
  }
  for (const BlockQ8_K& k : qk)
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += k.qs[16 * g + j];
      EXPECT_EQ(s, k.bsums[g]);
    }
}

// Dequantised activation row in f32.
std::vector<float> DequantAct(ActFormat f, const void* a, int64_t n) {
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (f) {
      case ActFormat::kF32: out[i] = static_cast<const float*>(a)[i]; break;
      case ActFormat::kQ8_0: {
        const BlockQ8_0& b = static_cast<const BlockQ8_0*>(a)[i / 32];
        out[i] = F16ToF32(b.d) * b.qs[i % 32];
        break;
      }
      case ActFormat::kQ8_1: {
        const BlockQ8_1& b = static_cast<const BlockQ8_1*>(a)[i / 32];
        out[i] = F16ToF32(b.d) * b.qs[i % 32];
        break;
      }
      case ActFormat::kQ8_K: {
        const BlockQ8_K& b = static_cast<const BlockQ8_K*>(a)[i / 256];
        out[i] = b.d * b.qs[i % 256];
        break;
      }
    }
  }
  return out;
}

class DotTest : public ::testing::TestWithParam<DType> {};

TEST_P(DotTest, OptimisedMatchesReferenceAndDequantisedDot) {
  const DType t = GetParam();
  std::mt19937 rng(3 + static_cast<int>(t));
  const bool kquant = GetDTypeInfo(t).block_elems == 256;
  const std::vector<int64_t> sizes = kquant ? std::vector<int64_t>{256, 768, 2048}
                                     : GetDTypeInfo(t).quantized ? std::vector<int64_t>{32, 96, 2048}
                                                                 : std::vector<int64_t>{1, 17, 100, 2048};
  for (int64_t n : sizes) {
    for (int trial = 0; trial < 5; ++trial) {
      auto wbytes = testing::RandomWeights(rng, t, n);
      AlignedBuffer w(wbytes.size(), 64);
      std::memcpy(w.data(), wbytes.data(), wbytes.size());
      auto x = TestActivations(rng, n);
      const ActFormat f = ActFormatFor(t);
      AlignedBuffer act(ActRowBytes(f, n) + 1, 64), act_ref(ActRowBytes(f, n) + 1, 64);
      PrepareActivationRow(f, x.data(), act.data(), n);
      PrepareActivationRowRef(f, x.data(), act_ref.data(), n);
      ASSERT_EQ(0, std::memcmp(act.data(), act_ref.data(), ActRowBytes(f, n)));

      std::vector<float> wf(n);
      DequantizeRow(t, w.data(), wf.data(), n);
      std::vector<float> af = DequantAct(f, act.data(), n);
      double exact = 0, mag = 0, quant_bound = 0, exact_x = 0;
      for (int64_t j = 0; j < n; ++j) {
        exact += static_cast<double>(wf[j]) * af[j];
        exact_x += static_cast<double>(wf[j]) * x[j];
        mag += std::fabs(static_cast<double>(wf[j]) * af[j]);
      }
      if (f != ActFormat::kF32) {
        const int64_t blk = f == ActFormat::kQ8_K ? 256 : 32;
        for (int64_t b = 0; b < n / blk; ++b) {
          double amax = 0;
          for (int64_t j = 0; j < blk; ++j) amax = std::max(amax, std::fabs(static_cast<double>(x[b * blk + j])));
          for (int64_t j = 0; j < blk; ++j) quant_bound += std::fabs(static_cast<double>(wf[b * blk + j])) * amax / 254.0;
        }
      }
      const float got = DotRow(t, w.data(), act.data(), n);
      const float ref = DotRowRef(t, w.data(), act_ref.data(), n);
      const std::string where = std::string(DTypeName(t)) + " n=" + std::to_string(n);
      EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-6) << where;
      // The Q*_1 offset uses f16 s = d·Σq: allow its rounding (2^-11 relative per block).
      EXPECT_NEAR(ref, exact, 1e-5 * mag + 1e-3 * quant_bound + 1e-6) << where;
      EXPECT_NEAR(ref, exact_x, quant_bound * 1.01 + 1e-3 * mag + 1e-6) << where;
    }
  }
}

TEST_P(DotTest, DotRowsEqualsDotRowBitForBit) {
  const DType t = GetParam();
  std::mt19937 rng(17 + static_cast<int>(t));
  const int64_t blk = GetDTypeInfo(t).block_elems;
  // K-quants: 8 blocks (a decode row), 64 (the sub-sum table's limit), 65 (past it).
  const std::vector<int64_t> sizes = blk == 256 ? std::vector<int64_t>{2048, 64 * 256, 65 * 256}
                                                : std::vector<int64_t>{std::max<int64_t>(blk, 32) * 4, 2048};
  for (int64_t n : sizes) {
    const int64_t rows = 7;
    const size_t row_bytes = *DTypeBytes(t, static_cast<uint64_t>(n));
    for (size_t pad : {size_t{0}, size_t{64}}) {
      const size_t stride = row_bytes + pad;
      AlignedBuffer w(stride * rows, 64);
      for (int64_t r = 0; r < rows; ++r) {
        auto wb = testing::RandomWeights(rng, t, n);
        std::memcpy(w.data() + r * stride, wb.data(), wb.size());
      }
      auto x = TestActivations(rng, n);
      const ActFormat f = ActFormatFor(t);
      AlignedBuffer act(ActRowBytes(f, n) + 1, 64);
      PrepareActivationRow(f, x.data(), act.data(), n);
      std::vector<float> y(rows, -1.0f);
      DotRows(t, w.data(), stride, act.data(), n, rows, y.data());
      for (int64_t r = 0; r < rows; ++r) {
        const float want = DotRow(t, w.data() + r * stride, act.data(), n);
        ASSERT_EQ(0, std::memcmp(&want, &y[r], sizeof(float))) << DTypeName(t) << " n=" << n << " pad=" << pad << " row " << r;
      }
    }
  }
}

TEST(DotKQuant, IntegerExtremesMatchReference) {
  // Largest magnitudes of every integer field: nibbles/6-bit values all ones, scales and
  // mins 63 (Q4_K) or ±127/-128 (Q6_K), activations all +127 or alternating ±127.
  for (DType t : {DType::kQ4_K, DType::kQ6_K}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      const int64_t n = 2048, nb = n / 256;
      const size_t bytes = *DTypeBytes(t, static_cast<uint64_t>(n));
      AlignedBuffer w(bytes, 64);
      std::memset(w.data(), 0xFF, bytes);
      const uint16_t d = F32ToF16(0.5f);
      for (int64_t b = 0; b < nb; ++b) {
        if (t == DType::kQ4_K) {
          auto& blk = w.as<BlockQ4_K>()[b];
          blk.d = blk.dmin = d;
        } else {
          auto& blk = w.as<BlockQ6_K>()[b];
          for (int g = 0; g < 16; ++g) blk.scales[g] = static_cast<int8_t>(pattern == 2 ? -128 : 127);
          if (pattern == 1) std::memset(blk.ql, 0, sizeof(blk.ql)), std::memset(blk.qh, 0, sizeof(blk.qh));  // q - 32 = -32
          blk.d = d;
        }
      }
      AlignedBuffer act(ActRowBytes(ActFormat::kQ8_K, n), 64);
      for (int64_t b = 0; b < nb; ++b) {
        auto& xb = act.as<BlockQ8_K>()[b];
        xb.d = 0.25f;
        for (int j = 0; j < 256; ++j) xb.qs[j] = static_cast<int8_t>(pattern == 0 || j % 2 == 0 ? 127 : -127);
        for (int g = 0; g < 16; ++g) {
          int sum = 0;
          for (int j = 0; j < 16; ++j) sum += xb.qs[16 * g + j];
          xb.bsums[g] = static_cast<int16_t>(sum);
        }
      }
      const float got = DotRow(t, w.data(), act.data(), n), ref = DotRowRef(t, w.data(), act.data(), n);
      std::vector<float> rows(1);
      DotRows(t, w.data(), bytes, act.data(), n, 1, rows.data());
      EXPECT_NEAR(got, ref, 1e-5 * std::fabs(ref) + 1e-3) << DTypeName(t) << " pattern " << pattern;
      EXPECT_EQ(got, rows[0]) << DTypeName(t) << " pattern " << pattern;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DotTest, ::testing::ValuesIn(testing::kWeightTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace spool
