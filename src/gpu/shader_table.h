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
};

std::string_view ShaderName(Shader s);
std::span<const uint32_t> ShaderSpirv(Shader s);

}  // namespace spool::gpu
