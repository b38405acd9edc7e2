// DequantizeRow against gguf-py (fixtures from tools/gen_dequant_fixtures.py):
// every value must be bit-identical (0 ulp).
#include "tensor/dequant.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace spool {
namespace {

class DequantFixture : public ::testing::TestWithParam<DType> {};

TEST_P(DequantFixture, BitExactWithGgufPy) {
  const DType t = GetParam();
  const std::string base = std::string(SPOOL_TEST_FIXTURES) + "/tensor/dequant_" + std::string(DTypeName(t));
  std::vector<uint8_t> q = testing::ReadBytes(base + ".q");
  std::vector<uint8_t> expect_bytes = testing::ReadBytes(base + ".f32");
  ASSERT_EQ(expect_bytes.size() % 4, 0u);
  const int64_t n = static_cast<int64_t>(expect_bytes.size() / 4);
  ASSERT_EQ(*DTypeBytes(t, n), q.size());
  std::vector<float> expect(n), got(n);
  std::memcpy(expect.data(), expect_bytes.data(), expect_bytes.size());
  // Copy into 4-aligned storage (vector<uint8_t> data is malloc-aligned anyway).
  std::vector<uint32_t> aligned((q.size() + 3) / 4);
  std::memcpy(aligned.data(), q.data(), q.size());
  DequantizeRow(t, aligned.data(), got.data(), n);
  int mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, &expect[i], 4);
    std::memcpy(&b, &got[i], 4);
    if (a != b && ++mismatches <= 5) ADD_FAILURE() << DTypeName(t) << " element " << i << ": gguf-py " << expect[i] << " spool " << got[i];
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantFixture, ::testing::ValuesIn(testing::kWeightTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(DequantToBF16, RoundsDequantisedValues) {
  std::mt19937 rng(7);
  for (DType t : testing::kWeightTypes) {
    const int64_t n = 512;
    auto w = testing::RandomWeights(rng, t, n);
    std::vector<uint32_t> aligned((w.size() + 3) / 4);
    std::memcpy(aligned.data(), w.data(), w.size());
    std::vector<float> f(n);
    std::vector<uint16_t> b(n);
    DequantizeRow(t, aligned.data(), f.data(), n);
    DequantizeRowToBF16(t, aligned.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[i], F32ToBF16(f[i])) << DTypeName(t) << " " << i;
  }
}

}  // namespace
}  // namespace spool
