// The SPIR-V embedded in the binary (generated from src/gpu/shaders/*.comp at build
// time), by kernel. An empty span when the build had no glslc.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace spool::gpu {

enum class Shader : uint8_t {
  kQuantizeQ8_0,
  kGemvF32,
  kGemvF16,
  kGemvBF16,
  kGemvQ8_0,
  kGemvQ4_0,
  kGemvQ4_1,
  kGemvF32F64,
  kGemvF16F64,
  kGemvBF16F64,
  kGemvQ8_0F64,
  kGemvQ4_0F64,
  kGemvQ4_1F64,
  kFmaProbe,
  kRmsNorm,
  kRmsNormF64,
  kRope,
  kSwiGLU,
  kSwiGLUF64,
  kGetRows,
  kAttention,
  kAttentionF64,
  kAdd,
  kKvStore,
  kCopyWords,
  kQuantizeQ8_K,
  kGemvQ4_K,
  kGemvQ6_K,
  kGemvQ4_KF64,
  kGemvQ6_KF64,
  kGemmF32,
  kGemmF16,
  kGemmBF16,
  kGemmQ8_0,
  kGemmQ4_0,
  kGemmQ4_1,
  kGemmF32F64,
  kGemmF16F64,
  kGemmBF16F64,
  kGemmQ8_0F64,
  kGemmQ4_0F64,
  kGemmQ4_1F64,
  kGemmQ4_K,
  kGemmQ6_K,
  kGemmQ4_KF64,
  kGemmQ6_KF64,
  kGemvQ5_0,
  kGemvQ5_1,
  kGemvQ5_K,
  kGemvQ5_0F64,
  kGemvQ5_1F64,
  kGemvQ5_KF64,
  kGemmQ5_0,
  kGemmQ5_1,
  kGemmQ5_K,
  kGemmQ5_0F64,
  kGemmQ5_1F64,
  kGemmQ5_KF64,
  // Integer-dot-product GEMV variants (SPV_KHR_integer_dot_product; kernels.h IntDotPath).
  kGemvQ8_0IDot,
  kGemvQ8_0IDotF64,
  kGemvQ4_0IDot,
  kGemvQ4_0IDotF64,
  kGemvQ4_1IDot,
  kGemvQ4_1IDotF64,
  kGemvQ5_0IDot,
  kGemvQ5_0IDotF64,
  kGemvQ5_1IDot,
  kGemvQ5_1IDotF64,
  kGemvQ4_KIDot,
  kGemvQ4_KIDotF64,
  kGemvQ5_KIDot,
  kGemvQ5_KIDotF64,
  kGemvQ6_KIDot,
  kGemvQ6_KIDotF64,
};

std::string_view ShaderName(Shader s);
std::span<const uint32_t> ShaderSpirv(Shader s);

}  // namespace spool::gpu
