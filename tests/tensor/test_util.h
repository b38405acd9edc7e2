// Helpers shared by the tensor tests: random data and weight rows of every dtype.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <random>
#include <vector>

#include "base/dtype.h"
#include "tensor/quant_blocks.h"

namespace spool::testing {

// A whole file's bytes (a failed open adds a test failure and returns nothing).
inline std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline std::vector<float> RandomFloats(std::mt19937& rng, int64_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Random but valid stored data for n elements of type t: random bytes with small,
// finite f16 scales (f32/f16/bf16 get random values). Returned as bytes.
inline std::vector<uint8_t> RandomWeights(std::mt19937& rng, DType t, int64_t n) {
  const DTypeInfo& info = GetDTypeInfo(t);
  const int64_t nb = n / info.block_elems;
  std::vector<uint8_t> b(static_cast<size_t>(nb * info.block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& x : b) x = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  auto put_f16 = [&](uint8_t* p) {
    const uint16_t h = F32ToF16(u(rng));
    std::memcpy(p, &h, 2);
  };
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t* blk = b.data() + i * info.block_bytes;
    switch (t) {
      case DType::kF32: {
        const float f = u(rng) * 10;
        std::memcpy(blk, &f, 4);
        break;
      }
      case DType::kF16: put_f16(blk); break;
      case DType::kBF16: {
        const uint16_t h = F32ToBF16(u(rng) * 10);
        std::memcpy(blk, &h, 2);
        break;
      }
      case DType::kQ4_0: case DType::kQ5_0: case DType::kQ8_0: put_f16(blk); break;
      case DType::kQ4_1: case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K:
        put_f16(blk);
        put_f16(blk + 2);
        break;
      case DType::kQ6_K: put_f16(blk + info.block_bytes - 2); break;
      case DType::kMXFP4: blk[0] = static_cast<uint8_t>(118 + byte(rng) % 9); break;  // scales 2^-10..2^-2
      case DType::kI32: case DType::kU8: break;
    }
    if (t == DType::kQ8_0) {  // GGML's quantiser never writes -128; our sign trick relies on x, not w
      for (int j = 2; j < 34; ++j)
        if (blk[j] == 0x80) blk[j] = 0x81;
    }
  }
  return b;
}

inline const DType kWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0,
                                     DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                     DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kMXFP4};

}  // namespace spool::testing
