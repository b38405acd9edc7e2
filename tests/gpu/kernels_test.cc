// Every GPU kernel against its CPU reference kernel (spool_tensor) on random inputs of
// many shapes, edge sizes included (1, odd, one past a workgroup of 64, pages of 1 and
// of more than one 64-key chunk). Tolerances are stated per test.
#include "gpu/kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "../tensor/test_util.h"
#include "gpu_test_util.h"
#include "tensor/attention.h"
#include "tensor/dequant.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"
#include "tensor/quant_blocks.h"
#include "tensor/rope.h"
#include "tensor/vec_dot.h"

namespace spool::gpu {
namespace {

using spool::testing::RandomFloats;
using spool::testing::RandomWeights;

Buffer Make(VulkanDevice& dev, const void* data, uint64_t bytes) {
  auto b = dev.Allocate(bytes, MemoryKind::kDevice, "test");
  SPOOL_CHECK(b.ok());
  if (data) SPOOL_CHECK(dev.Upload(b.value(), 0, data, bytes).ok());
  return std::move(b.value());
}
template <typename T>
Buffer Make(VulkanDevice& dev, const std::vector<T>& v) {
  return Make(dev, v.data(), v.size() * sizeof(T));
}
std::vector<float> Read(VulkanDevice& dev, const Buffer& b, size_t n) {
  std::vector<float> out(n);
  Status s = dev.Download(b, 0, out.data(), n * 4);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

TEST(GpuKernels, QuantizeQ8MatchesCpuBlocks) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(1);
  for (int64_t n : {32, 64, 96, 4096}) {
    for (int64_t m : {1, 3}) {
      auto x = RandomFloats(rng, m * n, 2.0f);
      for (int64_t j = 0; j < 32; ++j) x[static_cast<size_t>(j)] = 0.0f;  // an all-zero block
      if (n >= 64) x[40] = 1e-6f;                                          // tiny scale (f16 subnormal d)
      Buffer xb = Make(*dev, x);
      Buffer qb = Make(*dev, nullptr, Q8ActBytes(m, n));
      ASSERT_TRUE(k.QuantizeQ8_0(xb, qb, m, n).ok());
      std::vector<uint8_t> got(Q8ActBytes(m, n));
      ASSERT_TRUE(dev->Download(qb, 0, got.data(), got.size()).ok());
      for (int64_t r = 0; r < m; ++r) {
        std::vector<quant::BlockQ8_0> ref(static_cast<size_t>(n / 32));
        PrepareActivationRowRef(ActFormat::kQ8_0, x.data() + r * n, ref.data(), n);
        std::vector<quant::BlockQ8_1> ref1(static_cast<size_t>(n / 32));
        PrepareActivationRowRef(ActFormat::kQ8_1, x.data() + r * n, ref1.data(), n);
        for (int64_t b = 0; b < n / 32; ++b) {
          const int64_t gb = r * (n / 32) + b;
          float d;
          std::memcpy(&d, got.data() + m * n + gb * 4, 4);
          ASSERT_EQ(d, F16ToF32(ref[static_cast<size_t>(b)].d)) << "n " << n << " row " << r << " block " << b;
          float sum_s;
          std::memcpy(&sum_s, got.data() + m * n + (m * n / 32) * 4 + gb * 4, 4);
          ASSERT_EQ(sum_s, F16ToF32(ref1[static_cast<size_t>(b)].s)) << "n " << n << " row " << r << " block " << b;
          for (int j = 0; j < 32; ++j)
            ASSERT_EQ(static_cast<int8_t>(got[static_cast<size_t>(gb * 32 + j)]), ref[static_cast<size_t>(b)].qs[j])
                << "n " << n << " block " << b << " j " << j;
        }
      }
    }
  }
}

// MatVec vs MatMulRef (the scalar GEMV math): |Δ| <= 2e-5 · Σ|w·x| + 1e-6; and equal to
// MatMulGemv (the CPU's decode kernel) bit for bit when the device's fma is fused or
// emulated in f64 (lavapipe: f64).
TEST(GpuKernels, MatVecMatchesCpuReference) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(2);
  auto fused = k.FusedFma();
  ASSERT_TRUE(fused.ok()) << fused.status().message();
  const bool exact_order = fused.value() || dev->info().shader_float64;
  std::printf("fused fma: %s, f64: %s\n", fused.value() ? "yes" : "no", dev->info().shader_float64 ? "yes" : "no");
  MatMulContext mm;
  ThreadPool pool(1);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                  DType::kQ5_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const bool q = GetDTypeInfo(t).quantized;
    const bool kq = MatVecUsesQ8K(t);
    const std::vector<int64_t> n_ins = kq  ? std::vector<int64_t>{256, 512, 2816}
                                       : q ? std::vector<int64_t>{32, 64, 96, 2080}
                                           : std::vector<int64_t>{1, 7, 16, 17, 31, 32, 48, 64, 65, 300};
    for (int64_t n_in : n_ins) {
      for (int64_t n_out : {1, 3, 64, 65, 257}) {
        for (int64_t m : {1, 2, 5}) {
          auto wbytes = RandomWeights(rng, t, n_out * n_in);
          auto x = RandomFloats(rng, m * n_in);
          const WeightView wv{t, wbytes.data(), n_out, n_in};
          std::vector<float> ref(static_cast<size_t>(m * n_out));
          MatMulRef(wv, x.data(), m, ref.data());
          Buffer wb = Make(*dev, wbytes), xb = Make(*dev, x), yb = Make(*dev, nullptr, ref.size() * 4);
          Status s = k.MatVec(WeightBuffer{&wb, 0, t, n_out, n_in}, xb, yb, m);
          ASSERT_TRUE(s.ok()) << s.message();
          auto got = Read(*dev, yb, ref.size());
          if (exact_order) {  // the CPU's GEMV (DotFloat's / llama.cpp's block order), bit for bit
            std::vector<float> cpu(ref.size());
            MatMulGemv(mm, pool, wv, x.data(), m, cpu.data());
            for (size_t i = 0; i < ref.size(); ++i)
              ASSERT_EQ(got[i], cpu[i]) << DTypeName(t) << " n_in " << n_in << " n_out " << n_out << " m " << m << " i " << i;
          }
          // Σ|w·x| per output from the dequantised weights (an upper bound on rounding).
          std::vector<float> wf(static_cast<size_t>(n_out * n_in));
          DequantizeRow(t, wbytes.data(), wf.data(), n_out * n_in);
          for (int64_t r = 0; r < m; ++r)
            for (int64_t o = 0; o < n_out; ++o) {
              double mag = 0;
              for (int64_t j = 0; j < n_in; ++j) mag += std::fabs(wf[o * n_in + j] * x[r * n_in + j]);
              const size_t i = static_cast<size_t>(r * n_out + o);
              ASSERT_NEAR(got[i], ref[i], 2e-5 * mag + 1e-6)
                  << DTypeName(t) << " n_in " << n_in << " n_out " << n_out << " m " << m << " row " << r << " out " << o;
            }
        }
      }
    }
  }
}

// The integer-dot-product GEMV variants (IntDotPath::kOn) equal the plain ones bit for bit
// (the same integers), and MatMulGemv where the fma order is exact, on every quantised
// type and edge shapes. lavapipe enables shaderIntegerDotProduct (not accelerated, so
// kAuto does not pick it there); a device without it must refuse kOn.
TEST(GpuKernels, IntegerDotGemvEqualsPlainPath) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  if (!dev->info().integer_dot_enabled) {
    Buffer b = Make(*dev, nullptr, 4096);
    k.set_int_dot_path(IntDotPath::kOn);
    EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kQ8_0, 1, 32}, b, b, 1).code(), ErrorCode::kUnsupported);
    GTEST_SKIP() << "device " << dev->info().name << " has no shaderIntegerDotProduct: only the refusal was tested";
  }
  std::printf("integer dot: enabled, accelerated: %s\n", dev->info().integer_dot_accelerated ? "yes" : "no");
  std::mt19937 rng(21);
  auto fused = k.FusedFma();
  ASSERT_TRUE(fused.ok());
  const bool exact_order = fused.value() || dev->info().shader_float64;
  MatMulContext mm;
  ThreadPool pool(1);
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ4_K, DType::kQ5_K,
                  DType::kQ6_K}) {
    const std::vector<int64_t> n_ins = MatVecUsesQ8K(t) ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{32, 96, 544};
    for (int64_t n_in : n_ins) {
      for (int64_t n_out : {1, 7, 65}) {
        for (int64_t m : {1, 3}) {
          auto wbytes = RandomWeights(rng, t, n_out * n_in);
          auto x = RandomFloats(rng, m * n_in);
          const size_t ny = static_cast<size_t>(m * n_out);
          Buffer wb = Make(*dev, wbytes), xb = Make(*dev, x);
          Buffer y_dot = Make(*dev, nullptr, ny * 4), y_plain = Make(*dev, nullptr, ny * 4);
          const WeightBuffer w{&wb, 0, t, n_out, n_in};
          k.set_int_dot_path(IntDotPath::kOn);
          Status s = k.MatVec(w, xb, y_dot, m);
          ASSERT_TRUE(s.ok()) << s.message();
          k.set_int_dot_path(IntDotPath::kOff);
          ASSERT_TRUE(k.MatVec(w, xb, y_plain, m).ok());
          auto got = Read(*dev, y_dot, ny), plain = Read(*dev, y_plain, ny);
          std::vector<float> cpu(ny);
          MatMulGemv(mm, pool, WeightView{t, wbytes.data(), n_out, n_in}, x.data(), m, cpu.data());
          for (size_t i = 0; i < ny; ++i) {
            ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(plain[i]))
                << DTypeName(t) << " n_in " << n_in << " n_out " << n_out << " m " << m << " i " << i;
            if (exact_order) ASSERT_EQ(got[i], cpu[i]) << DTypeName(t) << " n_in " << n_in << " i " << i;
          }
        }
      }
    }
  }
}

// The selection: kAuto takes integer dot only where the feature is enabled and the
// device says it is accelerated; kOn wherever it is enabled; kOff never.
TEST(GpuKernels, IntDotPathSelection) {
  DeviceInfo none, slow, fast;
  slow.integer_dot_product = slow.integer_dot_enabled = true;
  fast = slow;
  fast.integer_dot_accelerated = true;
  EXPECT_FALSE(SelectIntDot(none, IntDotPath::kAuto));
  EXPECT_FALSE(SelectIntDot(none, IntDotPath::kOn));
  EXPECT_FALSE(SelectIntDot(slow, IntDotPath::kAuto));  // lavapipe
  EXPECT_TRUE(SelectIntDot(slow, IntDotPath::kOn));
  EXPECT_TRUE(SelectIntDot(fast, IntDotPath::kAuto));
  EXPECT_FALSE(SelectIntDot(fast, IntDotPath::kOff));
  DeviceInfo listed_not_enabled = fast;  // the extension listed, the feature not enabled at Open
  listed_not_enabled.integer_dot_enabled = false;
  EXPECT_FALSE(SelectIntDot(listed_not_enabled, IntDotPath::kAuto));
}

TEST(GpuKernels, QuantizeQ8KMatchesCpuBlocks) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(11);
  for (int64_t n : {256, 512, 2816}) {
    for (int64_t m : {1, 3}) {
      auto x = RandomFloats(rng, m * n, 3.0f);
      for (int64_t j = 0; j < 256; ++j) x[static_cast<size_t>(j)] = 0.0f;  // an all-zero block
      if (n >= 512) {                                                      // a tie of |max|: the first wins
        x[300] = -4.0f;
        x[301] = 4.0f;
      }
      Buffer xb = Make(*dev, x);
      Buffer qb = Make(*dev, nullptr, Q8KActBytes(m, n));
      ASSERT_TRUE(k.QuantizeQ8_K(xb, qb, m, n).ok());
      std::vector<uint8_t> got(Q8KActBytes(m, n));
      ASSERT_TRUE(dev->Download(qb, 0, got.data(), got.size()).ok());
      for (int64_t r = 0; r < m; ++r) {
        std::vector<quant::BlockQ8_K> ref(static_cast<size_t>(n / 256));
        PrepareActivationRowRef(ActFormat::kQ8_K, x.data() + r * n, ref.data(), n);
        for (int64_t b = 0; b < n / 256; ++b) {
          const int64_t gb = r * (n / 256) + b;
          const auto& rb = ref[static_cast<size_t>(b)];
          float d;
          std::memcpy(&d, got.data() + m * n + gb * 4, 4);
          ASSERT_EQ(d, rb.d) << "n " << n << " row " << r << " block " << b;
          for (int g = 0; g < 16; ++g) {
            int32_t bs;
            std::memcpy(&bs, got.data() + m * n + (m * n / 256) * 4 + (gb * 16 + g) * 4, 4);
            ASSERT_EQ(bs, rb.bsums[g]) << "n " << n << " block " << b << " group " << g;
          }
          for (int j = 0; j < 256; ++j)
            ASSERT_EQ(static_cast<int8_t>(got[static_cast<size_t>(gb * 256 + j)]), rb.qs[j])
                << "n " << n << " block " << b << " j " << j;
        }
      }
    }
  }
}

// The tiled GEMM (prefill) equals the GEMV row by row, bit for bit, on every type and
// on tile edges (m and n_out not multiples of 8, n_in with a float tail); with a fused or
// emulated fma that is MatMulGemv's result. Against the CPU's own prefill GEMM for float
// weights (MatMulGemm: oneDNN, bf16 activations) the difference is within the CPU
// GEMM's stated tolerance, 1e-2 · Σ|w·x|.
TEST(GpuKernels, TiledGemmEqualsGemvRowByRow) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(12);
  auto fused = k.FusedFma();
  ASSERT_TRUE(fused.ok());
  const bool exact_order = fused.value() || dev->info().shader_float64;
  MatMulContext mm;
  ThreadPool pool(1);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                  DType::kQ5_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const bool q = GetDTypeInfo(t).quantized;
    const std::vector<int64_t> n_ins = MatVecUsesQ8K(t) ? std::vector<int64_t>{256, 768}
                                       : q ? std::vector<int64_t>{32, 96, 544}
                                           : std::vector<int64_t>{1, 17, 32, 45, 64, 300};
    for (int64_t n_in : n_ins) {
      for (int64_t n_out : {1, 8, 13, 67}) {
        for (int64_t m : {2, 8, 9, 21}) {
          auto wbytes = RandomWeights(rng, t, n_out * n_in);
          auto x = RandomFloats(rng, m * n_in);
          const WeightView wv{t, wbytes.data(), n_out, n_in};
          const size_t ny = static_cast<size_t>(m * n_out);
          Buffer wb = Make(*dev, wbytes), xb = Make(*dev, x);
          Buffer y_gemm = Make(*dev, nullptr, ny * 4), y_gemv = Make(*dev, nullptr, ny * 4);
          const WeightBuffer w{&wb, 0, t, n_out, n_in};
          Status s = k.MatMul(w, xb, y_gemm, m);
          ASSERT_TRUE(s.ok()) << s.message();
          ASSERT_TRUE(k.MatVec(w, xb, y_gemv, m).ok());
          auto got = Read(*dev, y_gemm, ny), row_by_row = Read(*dev, y_gemv, ny);
          std::vector<float> cpu(ny);
          MatMulGemv(mm, pool, wv, x.data(), m, cpu.data());
          for (size_t i = 0; i < ny; ++i) {
            ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(row_by_row[i]))
                << DTypeName(t) << " n_in " << n_in << " n_out " << n_out << " m " << m << " i " << i;
            if (exact_order) {
              ASSERT_EQ(got[i], cpu[i]) << DTypeName(t) << " n_in " << n_in << " n_out " << n_out << " m " << m;
            }
          }
          if (!q) {
            std::vector<float> gemm(ny);
            MatMulGemm(mm, pool, wv, x.data(), m, gemm.data());
            std::vector<float> wf(static_cast<size_t>(n_out * n_in));
            DequantizeRow(t, wbytes.data(), wf.data(), n_out * n_in);
            for (int64_t r = 0; r < m; ++r)
              for (int64_t o = 0; o < n_out; ++o) {
                double mag = 0;
                for (int64_t j = 0; j < n_in; ++j) mag += std::fabs(wf[o * n_in + j] * x[r * n_in + j]);
                const size_t i = static_cast<size_t>(r * n_out + o);
                ASSERT_NEAR(got[i], gemm[i], 1e-2 * mag + 1e-6) << DTypeName(t) << " n_in " << n_in << " m " << m;
              }
          }
        }
      }
    }
  }
}

TEST(GpuKernels, MatVecRefusesWhatItCannotRun) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  Buffer b = Make(*dev, nullptr, 4096);
  Status mx = k.MatVec(WeightBuffer{&b, 0, DType::kMXFP4, 1, 256}, b, b, 1);
  EXPECT_EQ(mx.code(), ErrorCode::kUnsupported);
  EXPECT_NE(mx.message().find("mxfp4"), std::string::npos) << mx.message();  // names the type
  EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kQ4_K, 1, 288}, b, b, 1).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kQ5_K, 1, 288}, b, b, 1).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kQ5_0, 1, 48}, b, b, 1).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.MatMul(WeightBuffer{&b, 0, DType::kMXFP4, 1, 256}, b, b, 4).code(), ErrorCode::kUnsupported);
  EXPECT_EQ(k.MatMul(WeightBuffer{&b, 0, DType::kQ5_1, 64, 256}, b, b, 4).code(), ErrorCode::kInvalidArgument);  // 12 KiB > 4 KiB
  EXPECT_EQ(k.MatMul(WeightBuffer{&b, 0, DType::kF32, 64, 64}, b, b, 2).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kQ8_0, 1, 33}, b, b, 1).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kF32, 64, 64}, b, b, 1).code(), ErrorCode::kInvalidArgument);  // 16 KiB > 4 KiB
  EXPECT_EQ(k.MatVec(WeightBuffer{&b, 0, DType::kF32, 1, 1}, b, b, 0).code(), ErrorCode::kInvalidArgument);
}

// RmsNorm: the CPU sums squares in double, the GPU in f32 (tree). |Δ| <= 1e-5·|y| + 1e-6.
TEST(GpuKernels, RmsNormMatchesCpu) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(3);
  for (int64_t dim : {1, 7, 64, 65, 576, 4096}) {
    for (int64_t rows : {1, 3}) {
      auto x = RandomFloats(rng, rows * dim, 3.0f);
      auto w = RandomFloats(rng, dim);
      std::vector<float> ref(x.size());
      RmsNorm(x.data(), w.data(), 1e-5f, rows, dim, ref.data());
      Buffer xb = Make(*dev, x), wb = Make(*dev, w), yb = Make(*dev, nullptr, x.size() * 4);
      ASSERT_TRUE(k.RmsNorm(xb, wb, 1e-5f, rows, dim, yb).ok());
      auto got = Read(*dev, yb, x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        if (dev->info().shader_float64) {
          ASSERT_EQ(got[i], ref[i]) << dim << " " << i;  // the CPU's numerics
        }
        ASSERT_NEAR(got[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-6) << dim << " " << i;
      }
      // In place (y = x).
      ASSERT_TRUE(k.RmsNorm(xb, wb, 1e-5f, rows, dim, xb).ok());
      auto inplace = Read(*dev, xb, x.size());
      EXPECT_EQ(inplace, got);
    }
  }
}

// RoPE: bit-identical to ApplyRope (same cos/sin table, same FMA-free rotation), both
// pairings, partial rotary dims, plain and llama3-scaled frequencies.
TEST(GpuKernels, RopeIsBitIdenticalToCpu) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(4);
  RopeScaling llama3;
  llama3.kind = RopeScaling::Kind::kLlama3;
  llama3.factor = 32.0f;
  llama3.original_max_position = 8192;
  for (bool neox : {false, true}) {
    for (auto [head_dim, rope_dim] : {std::pair<int64_t, int64_t>{2, 2}, {8, 8}, {64, 64}, {64, 32}, {80, 80}, {128, 128}}) {
      for (const RopeScaling& sc : {RopeScaling{}, llama3}) {
        const int64_t n_tok = 5, n_head = 3;
        std::vector<int64_t> pos = {0, 1, 17, 4095, 131071};
        const auto inv_freq = RopeFrequencies(head_dim, rope_dim, 500000.0f, sc);
        auto x = RandomFloats(rng, n_tok * n_head * head_dim);
        auto ref = x;
        ApplyRope(neox ? RopeStyle::kNeox : RopeStyle::kInterleaved, ref.data(), n_tok, n_head, head_dim, rope_dim,
                  pos.data(), inv_freq.data());
        Buffer xb = Make(*dev, x), table;
        ASSERT_TRUE(k.RopeTable(pos, inv_freq, 1.0f, table).ok());
        ASSERT_TRUE(k.Rope(neox, xb, n_tok, n_head, head_dim, rope_dim, table).ok());
        auto got = Read(*dev, xb, x.size());
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_EQ(got[i], ref[i]) << "neox " << neox << " head_dim " << head_dim << " rope_dim " << rope_dim << " i " << i;
      }
    }
  }
  Buffer xb = Make(*dev, nullptr, 64), table;
  EXPECT_EQ(k.Rope(true, xb, 1, 1, 8, 3, xb).code(), ErrorCode::kInvalidArgument);
}

// SwiGLU: GPU exp (Vulkan: within 3 + 2|x| ulp). |Δ| <= 1e-5·|ref| + 1e-6. With f64 the
// exp is correctly rounded and glibc's expf nearly so: at most 1 in 1000 results differ.
TEST(GpuKernels, SwiGluMatchesCpu) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(5);
  size_t mismatches = 0, total = 0;
  for (int64_t n : {1, 63, 64, 65, 1536, 8193}) {
    auto g = RandomFloats(rng, n, 4.0f), u = RandomFloats(rng, n);
    std::vector<float> ref(static_cast<size_t>(n));
    SwiGLU(g.data(), u.data(), n, ref.data());
    Buffer gb = Make(*dev, g), ub = Make(*dev, u), ob = Make(*dev, nullptr, static_cast<uint64_t>(n) * 4);
    ASSERT_TRUE(k.SwiGLU(gb, ub, n, ob).ok());
    auto got = Read(*dev, ob, ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_NEAR(got[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-6) << n << " " << i;
      if (dev->info().shader_float64) mismatches += got[i] != ref[i];
    }
    total += ref.size();
  }
  std::printf("SwiGLU: %zu of %zu differ from the CPU\n", mismatches, total);
  if (dev->info().shader_float64) {
    EXPECT_LE(mismatches * 1000, total);
  }
}

// Residual add: bit-identical to Add.
TEST(GpuKernels, AddIsBitIdentical) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(8);
  for (int64_t n : {1, 63, 65, 4097}) {
    auto a = RandomFloats(rng, n), b = RandomFloats(rng, n, 1e-3f);
    std::vector<float> ref(static_cast<size_t>(n));
    Add(a.data(), b.data(), n, ref.data());
    Buffer ab = Make(*dev, a), bb = Make(*dev, b);
    ASSERT_TRUE(k.Add(ab, bb, n, ab).ok());
    EXPECT_EQ(Read(*dev, ab, ref.size()), ref) << n;
  }
}

// A bias added to every row (Qwen2's QKV bias): bit-identical to the CPU's Add row by
// row, as models::Transformer applies it; odd row lengths, one past a workgroup, in place
// and into another buffer.
TEST(GpuKernels, AddBiasIsBitIdenticalToAddPerRow) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(18);
  for (int64_t dim : {1, 16, 63, 65, 896}) {
    for (int64_t rows : {1, 3, 70}) {
      auto x = RandomFloats(rng, rows * dim, 4.0f), bias = RandomFloats(rng, dim, 0.5f);
      std::vector<float> ref(x.size());
      for (int64_t r = 0; r < rows; ++r) Add(x.data() + r * dim, bias.data(), dim, ref.data() + r * dim);
      Buffer xb = Make(*dev, x), bb = Make(*dev, bias), ob = Make(*dev, nullptr, x.size() * 4);
      ASSERT_TRUE(k.AddBias(xb, bb, rows, dim, ob).ok());
      EXPECT_EQ(Read(*dev, ob, ref.size()), ref) << rows << "x" << dim;
      ASSERT_TRUE(k.AddBias(xb, bb, rows, dim, xb).ok());  // in place
      EXPECT_EQ(Read(*dev, xb, ref.size()), ref) << rows << "x" << dim << " in place";
    }
  }
  // A bias shorter than a row, or rows beyond the buffer: refused before any dispatch.
  std::vector<float> v(64, 1.0f);
  Buffer xb = Make(*dev, v), bb = Make(*dev, std::vector<float>(8, 1.0f));
  EXPECT_EQ(k.AddBias(xb, bb, 4, 16, xb).code(), ErrorCode::kInvalidArgument);  // bias [8] < dim 16
  EXPECT_EQ(k.AddBias(xb, bb, 9, 8, xb).code(), ErrorCode::kInvalidArgument);   // 72 > 64 elements
  EXPECT_EQ(k.AddBias(xb, bb, 0, 8, xb).code(), ErrorCode::kInvalidArgument);
}

// Qwen3's q/k norm: RmsNorm over each head (rows = tokens × heads, dim = head_dim), as
// models::Transformer calls it; with f64 bit-identical, else within 1e-5 relative.
TEST(GpuKernels, PerHeadRmsNormMatchesCpu) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(19);
  for (int64_t head_dim : {16, 32, 64, 128}) {
    for (int64_t heads : {1, 2, 14}) {
      for (int64_t n : {1, 5}) {
        const int64_t rows = n * heads;
        auto x = RandomFloats(rng, rows * head_dim, 6.0f), w = RandomFloats(rng, head_dim);
        std::vector<float> ref(x.size());
        RmsNorm(x.data(), w.data(), 1e-6f, rows, head_dim, ref.data());
        Buffer xb = Make(*dev, x), wb = Make(*dev, w);
        ASSERT_TRUE(k.RmsNorm(xb, wb, 1e-6f, rows, head_dim, xb).ok());
        auto got = Read(*dev, xb, x.size());
        for (size_t i = 0; i < x.size(); ++i) {
          if (dev->info().shader_float64) ASSERT_EQ(got[i], ref[i]) << head_dim << " " << heads << " " << i;
          ASSERT_NEAR(got[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-6) << head_dim << " " << i;
        }
      }
    }
  }
}

// KV writes: f32 copied, bf16 rounded as F32ToBF16 (ties, NaN), at an offset; the
// elements around the written range are untouched.
TEST(GpuKernels, KvStoreIsBitIdentical) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(9);
  for (DType t : {DType::kF32, DType::kBF16}) {
    for (int64_t n : {2, 64, 130}) {
      auto src = RandomFloats(rng, n);
      float tie;
      const uint32_t tie_bits = 0x3f808000u;  // exactly halfway between two bf16 values
      std::memcpy(&tie, &tie_bits, 4);
      src[0] = tie;
      src[1] = std::nanf("");
      const uint64_t off = 6, total = off + static_cast<uint64_t>(n) + 4;
      const size_t es = t == DType::kF32 ? 4 : 2;
      std::vector<uint8_t> init(total * es, 0x5a);
      Buffer sb = Make(*dev, src), db = Make(*dev, init);
      ASSERT_TRUE(k.KvStore(sb, n, t, db, off).ok());
      std::vector<uint8_t> got(total * es);
      ASSERT_TRUE(dev->Download(db, 0, got.data(), got.size()).ok());
      if (n > 2) {
        // From an offset in the source (a chunk's rows split where the KV ring wraps).
        const uint64_t src_off = 2;
        Buffer db2 = Make(*dev, init);
        ASSERT_TRUE(k.KvStore(sb, n - 2, t, db2, off, src_off).ok());
        std::vector<uint8_t> got2(total * es);
        ASSERT_TRUE(dev->Download(db2, 0, got2.data(), got2.size()).ok());
        for (uint64_t i = off; i < off + static_cast<uint64_t>(n - 2); ++i) {
          const float v = src[i - off + src_off];
          if (t == DType::kF32)
            ASSERT_EQ(std::memcmp(got2.data() + i * 4, &v, 4), 0) << i;
          else {
            uint16_t g;
            std::memcpy(&g, got2.data() + i * 2, 2);
            ASSERT_EQ(g, F32ToBF16(v)) << i;
          }
        }
        for (size_t b = 0; b < es; ++b) ASSERT_EQ(got2[(off + static_cast<uint64_t>(n) - 2) * es + b], 0x5a);
      }
      for (uint64_t i = 0; i < total; ++i) {
        if (i < off || i >= off + static_cast<uint64_t>(n)) {
          for (size_t b = 0; b < es; ++b) ASSERT_EQ(got[i * es + b], 0x5a) << i;
          continue;
        }
        const float v = src[i - off];
        if (t == DType::kF32) {
          float g;
          std::memcpy(&g, got.data() + i * 4, 4);
          ASSERT_EQ(std::memcmp(&g, &v, 4), 0) << i;
        } else {
          uint16_t g;
          std::memcpy(&g, got.data() + i * 2, 2);
          ASSERT_EQ(g, F32ToBF16(v)) << i;
        }
      }
    }
  }
  Buffer b = Make(*dev, nullptr, 64);
  EXPECT_EQ(k.KvStore(b, 3, DType::kBF16, b, 0).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.KvStore(b, 2, DType::kF32, b, 15).code(), ErrorCode::kInvalidArgument);  // past the buffer
  EXPECT_EQ(k.KvStore(b, 2, DType::kF32, b, 0, 15).code(), ErrorCode::kInvalidArgument);  // source past its buffer
}

// Embedding rows: exact widening of f32/f16/bf16 rows; a bad id is refused.
TEST(GpuKernels, GetRowsIsExact) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  std::mt19937 rng(6);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t dim : {1, 3, 64, 65}) {
      const int64_t rows = 37;
      auto table = RandomWeights(rng, t, rows * dim);
      std::vector<int32_t> ids = {0, 36, 5, 5, 17};
      Buffer tb = Make(*dev, table), ob = Make(*dev, nullptr, ids.size() * static_cast<uint64_t>(dim) * 4);
      ASSERT_TRUE(k.GetRows(tb, t, rows, dim, ids, ob).ok());
      auto got = Read(*dev, ob, ids.size() * static_cast<size_t>(dim));
      std::vector<float> all(static_cast<size_t>(rows * dim));
      DequantizeRow(t, table.data(), all.data(), rows * dim);
      for (size_t i = 0; i < ids.size(); ++i)
        for (int64_t d = 0; d < dim; ++d)
          ASSERT_EQ(got[i * dim + d], all[ids[i] * dim + d]) << DTypeName(t) << " " << dim;
      std::vector<int32_t> bad = {0, 37};
      Status s = k.GetRows(tb, t, rows, dim, bad, ob);
      EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(s.message().find("id 37"), std::string::npos) << s.message();
      std::vector<int32_t> neg = {-1};
      EXPECT_EQ(k.GetRows(tb, t, rows, dim, neg, ob).code(), ErrorCode::kInvalidArgument);
    }
  }
}

// Attention over pages vs AttentionRef (materialised scores, double softmax):
// |Δ| <= 1e-4 · max|v| + 1e-6; and, with a fused (or f64-emulated) fma and no
// soft-capping, bit-identical to the CPU kernel (AttentionFoldPage + AttentionFinalize).
TEST(GpuKernels, AttentionMatchesCpuReference) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  auto fused = k.FusedFma();
  ASSERT_TRUE(fused.ok());
  const bool exact = fused.value() || dev->info().shader_float64;
  std::mt19937 rng(7);
  struct Case {
    int64_t n_head, n_kv_head, head_dim;
    std::vector<int64_t> page_tokens;
    std::vector<int64_t> pos_q;
    int64_t window;
    float softcap;
  };
  const std::vector<Case> cases = {
      {1, 1, 1, {1}, {0}, 0, 0.0f},
      {4, 4, 16, {17}, {16}, 0, 0.0f},
      {8, 2, 64, {64, 64, 5}, {132}, 0, 0.0f},          // decode after 133 tokens, GQA
      {4, 1, 80, {65, 1, 130}, {195}, 0, 0.0f},         // pages of 65 / 1 / 130 (> 2 chunks)
      {6, 3, 128, {64, 64}, {100, 127, 50}, 0, 0.0f},   // three queries (causal mask inside the pages)
      {4, 2, 256, {33, 40}, {72}, 0, 0.0f},             // head_dim 256
      {4, 2, 64, {64, 64, 64}, {191, 150}, 70, 0.0f},   // sliding window
      {2, 1, 32, {50}, {49}, 0, 30.0f},                 // soft-capping
      {2, 2, 16, {10}, {20}, 0, 0.0f},                  // query past the page (all visible)
  };
  for (DType kv : {DType::kF32, DType::kBF16}) {
    for (const Case& c : cases) {
      AttentionShape shape{c.n_head, c.n_kv_head, c.head_dim, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                           c.window, c.softcap};
      const int64_t row = c.n_kv_head * c.head_dim;
      std::vector<std::vector<uint8_t>> kp, vp;
      std::vector<KvPageView> views;
      std::vector<GpuKvPage> gpages;
      std::vector<uint8_t> kall, vall;
      int64_t first = 0;
      const size_t es = kv == DType::kF32 ? 4 : 2;
      for (int64_t nt : c.page_tokens) {
        kp.push_back(RandomWeights(rng, kv, nt * row));
        vp.push_back(RandomWeights(rng, kv, nt * row));
        gpages.push_back({kall.size() / es, vall.size() / es, nt, first});
        kall.insert(kall.end(), kp.back().begin(), kp.back().end());
        vall.insert(vall.end(), vp.back().begin(), vp.back().end());
        first += nt;
      }
      for (size_t i = 0; i < kp.size(); ++i)
        views.push_back({kv, kp[i].data(), vp[i].data(), c.page_tokens[i], gpages[i].first_pos});
      const int64_t n_q = static_cast<int64_t>(c.pos_q.size());
      auto q = RandomFloats(rng, n_q * c.n_head * c.head_dim);
      std::vector<float> ref(q.size());
      AttentionRef(shape, q.data(), c.pos_q.data(), n_q, views, ref.data());
      Buffer qb = Make(*dev, q), kb = Make(*dev, kall), vb = Make(*dev, vall), ob = Make(*dev, nullptr, q.size() * 4);
      GpuAttentionShape gs{c.n_head, c.n_kv_head, c.head_dim, shape.scale, c.window, c.softcap};
      Status s = k.Attention(gs, qb, c.pos_q, kv, kb, vb, gpages, ob);
      ASSERT_TRUE(s.ok()) << s.message();
      auto got = Read(*dev, ob, q.size());
      {
        // The same pages folded one call per page, each page in a buffer of its own (as
        // cold KV pages staged from host RAM), the online softmax's state carried between
        // the calls through the state buffer: bit-identical to the single call.
        Buffer sb = Make(*dev, nullptr, AttentionStateBytes(n_q, c.n_head, c.head_dim));
        Buffer ob2 = Make(*dev, nullptr, q.size() * 4);
        std::vector<Buffer> kbs, vbs;
        for (size_t i = 0; i < kp.size(); ++i) {
          kbs.push_back(Make(*dev, kp[i]));
          vbs.push_back(Make(*dev, vp[i]));
          const GpuKvPage one[] = {{0, 0, c.page_tokens[i], gpages[i].first_pos}};
          const GpuAttentionState st{&sb, i > 0, i + 1 < kp.size()};
          Status s2 = k.Attention(gs, qb, c.pos_q, kv, kbs.back(), vbs.back(), one, ob2, st);
          ASSERT_TRUE(s2.ok()) << s2.message();
        }
        auto grouped = Read(*dev, ob2, q.size());
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(std::bit_cast<uint32_t>(grouped[i]), std::bit_cast<uint32_t>(got[i]))
              << "page by page " << DTypeName(kv) << " heads " << c.n_head << "/" << c.n_kv_head << " hd "
              << c.head_dim << " i " << i;
      }
      if (exact && c.softcap == 0.0f) {  // the CPU kernel, bit for bit
        ThreadPool pool(1);
        AttentionState st;
        st.Reset(n_q, shape);
        for (const KvPageView& pv : views) AttentionFoldPage(pool, shape, q.data(), c.pos_q.data(), n_q, pv, st);
        std::vector<float> cpu(q.size());
        AttentionFinalize(shape, st, cpu.data());
        for (size_t i = 0; i < cpu.size(); ++i)
          ASSERT_EQ(got[i], cpu[i]) << DTypeName(kv) << " heads " << c.n_head << "/" << c.n_kv_head << " hd "
                                    << c.head_dim << " i " << i;
      }
      std::vector<float> vf(vall.size() / es);
      DequantizeRow(kv, vall.data(), vf.data(), static_cast<int64_t>(vf.size()));
      float vmax = 0;
      for (float x : vf) vmax = std::max(vmax, std::fabs(x));
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], 1e-4 * vmax + 1e-6)
            << DTypeName(kv) << " heads " << c.n_head << "/" << c.n_kv_head << " hd " << c.head_dim << " i " << i;
    }
  }
}

TEST(GpuKernels, AttentionRefusesBadShapes) {
  GPU_TEST_DEVICE(dev);
  Kernels k(*dev);
  Buffer b = Make(*dev, nullptr, 1 << 16);
  std::vector<int64_t> pos = {0};
  std::vector<GpuKvPage> pages = {{0, 0, 1, 0}};
  EXPECT_EQ(k.Attention({1, 1, 300, 1.0f}, b, pos, DType::kF32, b, b, pages, b).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.Attention({3, 2, 16, 1.0f}, b, pos, DType::kF32, b, b, pages, b).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.Attention({1, 1, 16, 1.0f}, b, pos, DType::kQ8_0, b, b, pages, b).code(), ErrorCode::kUnsupported);
  std::vector<GpuKvPage> outside = {{(1 << 16), 0, 4, 0}};
  std::vector<GpuKvPage> too_long = {{0, 0, 1025, 0}};
  EXPECT_EQ(k.Attention({1, 1, 1, 1.0f}, b, pos, DType::kF32, b, b, too_long, b).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(k.Attention({1, 1, 16, 1.0f}, b, pos, DType::kF32, b, b, outside, b).code(), ErrorCode::kInvalidArgument);
  // A state to load or store needs a buffer of [n_q, n_head, head_dim + 2] floats.
  EXPECT_EQ(k.Attention({1, 1, 16, 1.0f}, b, pos, DType::kF32, b, b, pages, b, {nullptr, true, false}).code(),
            ErrorCode::kInvalidArgument);
  Buffer small = Make(*dev, nullptr, AttentionStateBytes(1, 1, 16) - 4);
  EXPECT_EQ(k.Attention({1, 1, 16, 1.0f}, b, pos, DType::kF32, b, b, pages, b, {&small, false, true}).code(),
            ErrorCode::kInvalidArgument);
  std::vector<int64_t> negpos = {-1};
  EXPECT_EQ(k.Attention({1, 1, 16, 1.0f}, b, negpos, DType::kF32, b, b, pages, b).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace spool::gpu
