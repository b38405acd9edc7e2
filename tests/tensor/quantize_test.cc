// The Q8_0 / Q4_0 quantiser against gguf-py's (fixtures from tools/gen_quant_fixtures.py):
// byte for byte, incl. rounding ties, zero blocks, negative and tied maxima, subnormal
// scales; and quantise → dequantise stays within half a step of the input (Q4_0: one
// step where its clip applies).
#include "tensor/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tensor/dequant.h"
#include "test_util.h"

namespace spool {
namespace {

class QuantizeFixture : public ::testing::TestWithParam<DType> {};

TEST_P(QuantizeFixture, BytesEqualGgufPy) {
  const DType t = GetParam();
  const std::string dir = std::string(SPOOL_TEST_FIXTURES) + "/tensor/";
  const std::vector<uint8_t> in = testing::ReadBytes(dir + "quant_input.f32");
  const std::vector<uint8_t> want = testing::ReadBytes(dir + "quant_" + std::string(DTypeName(t)) + ".q");
  const int64_t n = static_cast<int64_t>(in.size() / 4);
  ASSERT_EQ(n % 32, 0);
  std::vector<float> x(n);
  std::memcpy(x.data(), in.data(), in.size());
  ASSERT_EQ(*DTypeBytes(t, n), want.size());
  std::vector<uint8_t> got(want.size());
  QuantizeWeightRow(t, x.data(), n, got.data());
  const size_t block = want.size() / static_cast<size_t>(n / 32);
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && ++bad <= 5)
      ADD_FAILURE() << DTypeName(t) << " block " << i / block << " byte " << i % block << ": gguf-py "
                    << int(want[i]) << " spool " << int(got[i]);
  EXPECT_EQ(bad, 0);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizeFixture, ::testing::Values(DType::kQ8_0, DType::kQ4_0),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(DTypeName(i.param)); });

TEST(Quantize, RoundTripWithinAboutHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 32 * 64;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng);
  for (DType t : {DType::kQ8_0, DType::kQ4_0}) {
    std::vector<uint32_t> q((*DTypeBytes(t, n) + 3) / 4);
    QuantizeWeightRow(t, x.data(), n, reinterpret_cast<uint8_t*>(q.data()));
    DequantizeRow(t, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      // Q4_0 clips q = 16 (values near +|m| when m < 0) to 15: up to one step there.
      // The scale is stored as f16 (relative error 2^-11, times |q| <= 127 or 8).
      const float step = t == DType::kQ8_0 ? amax / 127 : amax / 8;
      const float bound = t == DType::kQ8_0 ? step * (0.5f + 127.0f / 2048) : step * (1.0f + 8.0f / 2048);
      for (int i = 0; i < 32; ++i) ASSERT_LE(std::fabs(x[b * 32 + i] - y[b * 32 + i]), bound * 1.001f + 1e-7f);
    }
  }
}

}  // namespace
}  // namespace spool
