#include "gpu/shader_table.h"

#include "gpu/shaders_spv.h"

namespace spool::gpu {

std::string_view ShaderName(Shader s) {
  switch (s) {
    case Shader::kQuantizeQ8_0: return "quantize_q8_0";
    case Shader::kGemvF32: return "gemv_f32";
    case Shader::kGemvF16: return "gemv_f16";
    case Shader::kGemvBF16: return "gemv_bf16";
    case Shader::kGemvQ8_0: return "gemv_q8_0";
    case Shader::kGemvQ4_0: return "gemv_q4_0";
    case Shader::kRmsNorm: return "rms_norm";
    case Shader::kRope: return "rope";
    case Shader::kSwiGLU: return "swiglu";
    case Shader::kGetRows: return "get_rows";
    case Shader::kAttention: return "attention";
    case Shader::kAdd: return "add";
    case Shader::kKvStore: return "kv_store";
  }
  return "?";
}

std::span<const uint32_t> ShaderSpirv(Shader s) {
#if SPOOL_GPU_HAVE_SHADERS
  switch (s) {
    case Shader::kQuantizeQ8_0: return spv::k_quantize_q8_0;
    case Shader::kGemvF32: return spv::k_gemv_f32;
    case Shader::kGemvF16: return spv::k_gemv_f16;
    case Shader::kGemvBF16: return spv::k_gemv_bf16;
    case Shader::kGemvQ8_0: return spv::k_gemv_q8_0;
    case Shader::kGemvQ4_0: return spv::k_gemv_q4_0;
    case Shader::kRmsNorm: return spv::k_rms_norm;
    case Shader::kRope: return spv::k_rope;
    case Shader::kSwiGLU: return spv::k_swiglu;
    case Shader::kGetRows: return spv::k_get_rows;
    case Shader::kAttention: return spv::k_attention;
    case Shader::kAdd: return spv::k_add;
    case Shader::kKvStore: return spv::k_kv_store;
  }
#endif
  (void)s;
  return {};
}

}  // namespace spool::gpu
