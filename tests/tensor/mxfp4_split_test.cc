// MXFP4 in both layouts (issue 14, gpt-oss): the HF/OpenAI split layout (`*_blocks` +
// `*_scales`, element 2j / 2j + 1 in byte j's low / high nibble) and GGUF's BlockMXFP4.
//  - Decoding: every (exponent 0..255, code 0..15) pair, both layouts, bit-exact against
//    gguf-py's dequantisation of what llama.cpp's converter repacks
//    (tests/fixtures/gptoss/mxfp4_codes.json, tools/gen_gptoss_fixtures.py).
//  - DotMXFP4Split (optimised) is bit-identical to DotRow(kMXFP4) on the GGUF layout of
//    the same values, and DotMXFP4SplitRef to DotRowRef; optimised vs reference within
//    1e-5 · Σ|w·a| (same integer block sums, f32 order differs).
//  - MatMulGemv on a split-layout WeightView == on the GGUF one (bit for bit, any m);
//    MatMulRef on it within 1e-5 · Σ|w·x|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/thread_pool.h"
#include "tensor/dequant.h"
#include "tensor/matmul.h"
#include "tensor/quant_blocks.h"
#include "tensor/quantize_act.h"
#include "tensor/vec_dot.h"

namespace spool {
namespace {

using namespace quant;

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Mxfp4Layouts, EveryCodeAndExponentDecodesAsGgufPy) {
  std::ifstream f(std::string(SPOOL_TEST_FIXTURES) + "/gptoss/mxfp4_codes.json");
  ASSERT_TRUE(f.good());
  const auto j = nlohmann::json::parse(f);
  const auto hf_blocks = j["hf_blocks"].get<std::vector<uint8_t>>();
  const auto hf_scales = j["hf_scales"].get<std::vector<uint8_t>>();
  const auto gguf = j["gguf"].get<std::vector<uint8_t>>();
  const auto want = j["value_bits"].get<std::vector<uint32_t>>();
  const int64_t n = static_cast<int64_t>(want.size());
  ASSERT_EQ(n, 256 * 32);
  ASSERT_EQ(hf_blocks.size(), static_cast<size_t>(n / 2));
  ASSERT_EQ(gguf.size(), static_cast<size_t>(n / 32 * 17));
  // Every pair is present.
  std::vector<int> seen(256 * 16, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t byte = hf_blocks[i / 2];
    seen[hf_scales[i / 32] * 16 + (i % 2 == 0 ? byte & 15 : byte >> 4)] = 1;
  }
  for (size_t p = 0; p < seen.size(); ++p) ASSERT_TRUE(seen[p]) << "exponent " << p / 16 << " code " << p % 16;
  std::vector<float> split(n), blocks(n);
  DequantizeMXFP4Split(hf_blocks.data(), hf_scales.data(), split.data(), n);
  AlignedBuffer g(gguf.size(), 64);
  std::memcpy(g.data(), gguf.data(), gguf.size());
  DequantizeRow(DType::kMXFP4, g.data(), blocks.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(Bits(split[i]), want[i]) << "split layout, element " << i << " (exponent " << i / 32 << ")";
    ASSERT_EQ(Bits(blocks[i]), want[i]) << "GGUF layout, element " << i << " (exponent " << i / 32 << ")";
  }
}

// Random MXFP4 rows in both layouts (exponents 118..134: products stay finite).
struct Rows {
  int64_t n_out, n_in;
  std::vector<uint8_t> blocks, scales;  // split
  AlignedBuffer gguf;                    // [n_out, n_in / 32] BlockMXFP4
};
Rows MakeRows(std::mt19937& rng, int64_t n_out, int64_t n_in) {
  Rows r{n_out, n_in, std::vector<uint8_t>(n_out * n_in / 2), std::vector<uint8_t>(n_out * n_in / 32), {}};
  r.gguf.Reset(static_cast<size_t>(n_out * n_in / 32) * sizeof(BlockMXFP4), 64);
  auto* b = reinterpret_cast<BlockMXFP4*>(r.gguf.data());
  std::uniform_int_distribution<int> code(0, 15), ex(118, 134);
  for (int64_t k = 0; k < n_out * n_in / 32; ++k) {
    const uint8_t e = static_cast<uint8_t>(ex(rng));
    r.scales[k] = e;
    b[k].e = e;
    std::memset(b[k].qs, 0, 16);
    for (int j = 0; j < 32; ++j) {
      const uint8_t c = static_cast<uint8_t>(code(rng));
      r.blocks[k * 16 + j / 2] |= j % 2 == 0 ? c : static_cast<uint8_t>(c << 4);
      b[k].qs[j % 16] |= j < 16 ? c : static_cast<uint8_t>(c << 4);
    }
  }
  return r;
}

TEST(Mxfp4Layouts, SplitDotEqualsBlockDotAndReference) {
  std::mt19937 rng(3);
  for (int64_t n : {32, 64, 96, 2880}) {  // odd block counts take the scalar tail
    Rows w = MakeRows(rng, 4, n);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(n);
    for (float& v : x) v = nd(rng);
    AlignedBuffer act(ActRowBytes(ActFormat::kQ8_0, n), 64);
    PrepareActivationRow(ActFormat::kQ8_0, x.data(), act.data(), n);
    for (int64_t r = 0; r < 4; ++r) {
      const uint8_t* bl = w.blocks.data() + r * n / 2;
      const uint8_t* sc = w.scales.data() + r * n / 32;
      const void* gg = w.gguf.data() + r * (n / 32) * sizeof(BlockMXFP4);
      const float split = DotMXFP4Split(bl, sc, act.data(), n);
      const float split_ref = DotMXFP4SplitRef(bl, sc, act.data(), n);
      EXPECT_EQ(Bits(split), Bits(DotRow(DType::kMXFP4, gg, act.data(), n))) << "n " << n << " row " << r;
      EXPECT_EQ(Bits(split_ref), Bits(DotRowRef(DType::kMXFP4, gg, act.data(), n))) << "n " << n << " row " << r;
      std::vector<float> wd(n);
      DequantizeMXFP4Split(bl, sc, wd.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::abs(static_cast<double>(wd[i]) * x[i]);
      EXPECT_LE(std::abs(split - split_ref), 1e-5 * mag + 1e-6) << "n " << n;
    }
  }
}

TEST(Mxfp4Layouts, GemvOnSplitViewEqualsGgufViewAndReference) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  MatMulContext ctx;
  const int64_t n_out = 48, n_in = 128;
  Rows w = MakeRows(rng, n_out, n_in);
  const WeightView split{DType::kMXFP4, w.blocks.data(), n_out, n_in, w.scales.data()};
  const WeightView blocks{DType::kMXFP4, w.gguf.data(), n_out, n_in};
  for (int64_t m : {1, 3, 7}) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(m * n_in), a(m * n_out), b(m * n_out), ref(m * n_out);
    for (float& v : x) v = nd(rng);
    MatMulGemv(ctx, pool, split, x.data(), m, a.data());
    MatMulGemv(ctx, pool, blocks, x.data(), m, b.data());
    MatMulRef(split, x.data(), m, ref.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "m " << m;
    std::vector<float> wd(n_in);
    for (int64_t r = 0; r < n_out; ++r) {
      DequantizeMXFP4Split(w.blocks.data() + r * n_in / 2, w.scales.data() + r * n_in / 32, wd.data(), n_in);
      for (int64_t i = 0; i < m; ++i) {
        double mag = 0;
        for (int64_t k = 0; k < n_in; ++k) mag += std::abs(static_cast<double>(wd[k]) * x[i * n_in + k]);
        EXPECT_LE(std::abs(a[i * n_out + r] - ref[i * n_out + r]), 1e-5 * mag + 1e-6);
      }
    }
  }
}

}  // namespace
}  // namespace spool
