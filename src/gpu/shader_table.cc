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
    case Shader::kGemvQ4_1: return "gemv_q4_1";
    case Shader::kGemvF32F64: return "gemv_f32_f64";
    case Shader::kGemvF16F64: return "gemv_f16_f64";
    case Shader::kGemvBF16F64: return "gemv_bf16_f64";
    case Shader::kGemvQ8_0F64: return "gemv_q8_0_f64";
    case Shader::kGemvQ4_0F64: return "gemv_q4_0_f64";
    case Shader::kGemvQ4_1F64: return "gemv_q4_1_f64";
    case Shader::kFmaProbe: return "fma_probe";
    case Shader::kRmsNorm: return "rms_norm";
    case Shader::kRmsNormF64: return "rms_norm_f64";
    case Shader::kRope: return "rope";
    case Shader::kSwiGLU: return "swiglu";
    case Shader::kSwiGLUF64: return "swiglu_f64";
    case Shader::kGetRows: return "get_rows";
    case Shader::kAttention: return "attention";
    case Shader::kAttentionF64: return "attention_f64";
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
    case Shader::kGemvQ4_1: return spv::k_gemv_q4_1;
    case Shader::kGemvF32F64: return spv::k_gemv_f32_f64;
    case Shader::kGemvF16F64: return spv::k_gemv_f16_f64;
    case Shader::kGemvBF16F64: return spv::k_gemv_bf16_f64;
    case Shader::kGemvQ8_0F64: return spv::k_gemv_q8_0_f64;
    case Shader::kGemvQ4_0F64: return spv::k_gemv_q4_0_f64;
    case Shader::kGemvQ4_1F64: return spv::k_gemv_q4_1_f64;
    case Shader::kFmaProbe: return spv::k_fma_probe;
    case Shader::kRmsNorm: return spv::k_rms_norm;
    case Shader::kRmsNormF64: return spv::k_rms_norm_f64;
    case Shader::kRope: return spv::k_rope;
    case Shader::kSwiGLU: return spv::k_swiglu;
    case Shader::kSwiGLUF64: return spv::k_swiglu_f64;
    case Shader::kGetRows: return spv::k_get_rows;
    case Shader::kAttention: return spv::k_attention;
    case Shader::kAttentionF64: return spv::k_attention_f64;
    case Shader::kAdd: return spv::k_add;
    case Shader::kKvStore: return spv::k_kv_store;
  }
#endif
  (void)s;
  return {};
}

}  // namespace spool::gpu
