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
    case Shader::kCopyWords: return "copy_words";
    case Shader::kQuantizeQ8_K: return "quantize_q8_k";
    case Shader::kGemvQ4_K: return "gemv_q4_k";
    case Shader::kGemvQ6_K: return "gemv_q6_k";
    case Shader::kGemvQ4_KF64: return "gemv_q4_k_f64";
    case Shader::kGemvQ6_KF64: return "gemv_q6_k_f64";
    case Shader::kGemmF32: return "gemm_f32";
    case Shader::kGemmF16: return "gemm_f16";
    case Shader::kGemmBF16: return "gemm_bf16";
    case Shader::kGemmQ8_0: return "gemm_q8_0";
    case Shader::kGemmQ4_0: return "gemm_q4_0";
    case Shader::kGemmQ4_1: return "gemm_q4_1";
    case Shader::kGemmF32F64: return "gemm_f32_f64";
    case Shader::kGemmF16F64: return "gemm_f16_f64";
    case Shader::kGemmBF16F64: return "gemm_bf16_f64";
    case Shader::kGemmQ8_0F64: return "gemm_q8_0_f64";
    case Shader::kGemmQ4_0F64: return "gemm_q4_0_f64";
    case Shader::kGemmQ4_1F64: return "gemm_q4_1_f64";
    case Shader::kGemmQ4_K: return "gemm_q4_k";
    case Shader::kGemmQ6_K: return "gemm_q6_k";
    case Shader::kGemmQ4_KF64: return "gemm_q4_k_f64";
    case Shader::kGemmQ6_KF64: return "gemm_q6_k_f64";
    case Shader::kGemvQ5_0: return "gemv_q5_0";
    case Shader::kGemvQ5_1: return "gemv_q5_1";
    case Shader::kGemvQ5_K: return "gemv_q5_k";
    case Shader::kGemvQ5_0F64: return "gemv_q5_0_f64";
    case Shader::kGemvQ5_1F64: return "gemv_q5_1_f64";
    case Shader::kGemvQ5_KF64: return "gemv_q5_k_f64";
    case Shader::kGemmQ5_0: return "gemm_q5_0";
    case Shader::kGemmQ5_1: return "gemm_q5_1";
    case Shader::kGemmQ5_K: return "gemm_q5_k";
    case Shader::kGemmQ5_0F64: return "gemm_q5_0_f64";
    case Shader::kGemmQ5_1F64: return "gemm_q5_1_f64";
    case Shader::kGemmQ5_KF64: return "gemm_q5_k_f64";
    case Shader::kGemvQ8_0IDot: return "gemv_q8_0_idot";
    case Shader::kGemvQ8_0IDotF64: return "gemv_q8_0_idot_f64";
    case Shader::kGemvQ4_0IDot: return "gemv_q4_0_idot";
    case Shader::kGemvQ4_0IDotF64: return "gemv_q4_0_idot_f64";
    case Shader::kGemvQ4_1IDot: return "gemv_q4_1_idot";
    case Shader::kGemvQ4_1IDotF64: return "gemv_q4_1_idot_f64";
    case Shader::kGemvQ5_0IDot: return "gemv_q5_0_idot";
    case Shader::kGemvQ5_0IDotF64: return "gemv_q5_0_idot_f64";
    case Shader::kGemvQ5_1IDot: return "gemv_q5_1_idot";
    case Shader::kGemvQ5_1IDotF64: return "gemv_q5_1_idot_f64";
    case Shader::kGemvQ4_KIDot: return "gemv_q4_k_idot";
    case Shader::kGemvQ4_KIDotF64: return "gemv_q4_k_idot_f64";
    case Shader::kGemvQ5_KIDot: return "gemv_q5_k_idot";
    case Shader::kGemvQ5_KIDotF64: return "gemv_q5_k_idot_f64";
    case Shader::kGemvQ6_KIDot: return "gemv_q6_k_idot";
    case Shader::kGemvQ6_KIDotF64: return "gemv_q6_k_idot_f64";
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
    case Shader::kCopyWords: return spv::k_copy_words;
    case Shader::kQuantizeQ8_K: return spv::k_quantize_q8_k;
    case Shader::kGemvQ4_K: return spv::k_gemv_q4_k;
    case Shader::kGemvQ6_K: return spv::k_gemv_q6_k;
    case Shader::kGemvQ4_KF64: return spv::k_gemv_q4_k_f64;
    case Shader::kGemvQ6_KF64: return spv::k_gemv_q6_k_f64;
    case Shader::kGemmF32: return spv::k_gemm_f32;
    case Shader::kGemmF16: return spv::k_gemm_f16;
    case Shader::kGemmBF16: return spv::k_gemm_bf16;
    case Shader::kGemmQ8_0: return spv::k_gemm_q8_0;
    case Shader::kGemmQ4_0: return spv::k_gemm_q4_0;
    case Shader::kGemmQ4_1: return spv::k_gemm_q4_1;
    case Shader::kGemmF32F64: return spv::k_gemm_f32_f64;
    case Shader::kGemmF16F64: return spv::k_gemm_f16_f64;
    case Shader::kGemmBF16F64: return spv::k_gemm_bf16_f64;
    case Shader::kGemmQ8_0F64: return spv::k_gemm_q8_0_f64;
    case Shader::kGemmQ4_0F64: return spv::k_gemm_q4_0_f64;
    case Shader::kGemmQ4_1F64: return spv::k_gemm_q4_1_f64;
    case Shader::kGemmQ4_K: return spv::k_gemm_q4_k;
    case Shader::kGemmQ6_K: return spv::k_gemm_q6_k;
    case Shader::kGemmQ4_KF64: return spv::k_gemm_q4_k_f64;
    case Shader::kGemmQ6_KF64: return spv::k_gemm_q6_k_f64;
    case Shader::kGemvQ5_0: return spv::k_gemv_q5_0;
    case Shader::kGemvQ5_1: return spv::k_gemv_q5_1;
    case Shader::kGemvQ5_K: return spv::k_gemv_q5_k;
    case Shader::kGemvQ5_0F64: return spv::k_gemv_q5_0_f64;
    case Shader::kGemvQ5_1F64: return spv::k_gemv_q5_1_f64;
    case Shader::kGemvQ5_KF64: return spv::k_gemv_q5_k_f64;
    case Shader::kGemmQ5_0: return spv::k_gemm_q5_0;
    case Shader::kGemmQ5_1: return spv::k_gemm_q5_1;
    case Shader::kGemmQ5_K: return spv::k_gemm_q5_k;
    case Shader::kGemmQ5_0F64: return spv::k_gemm_q5_0_f64;
    case Shader::kGemmQ5_1F64: return spv::k_gemm_q5_1_f64;
    case Shader::kGemmQ5_KF64: return spv::k_gemm_q5_k_f64;
    case Shader::kGemvQ8_0IDot: return spv::k_gemv_q8_0_idot;
    case Shader::kGemvQ8_0IDotF64: return spv::k_gemv_q8_0_idot_f64;
    case Shader::kGemvQ4_0IDot: return spv::k_gemv_q4_0_idot;
    case Shader::kGemvQ4_0IDotF64: return spv::k_gemv_q4_0_idot_f64;
    case Shader::kGemvQ4_1IDot: return spv::k_gemv_q4_1_idot;
    case Shader::kGemvQ4_1IDotF64: return spv::k_gemv_q4_1_idot_f64;
    case Shader::kGemvQ5_0IDot: return spv::k_gemv_q5_0_idot;
    case Shader::kGemvQ5_0IDotF64: return spv::k_gemv_q5_0_idot_f64;
    case Shader::kGemvQ5_1IDot: return spv::k_gemv_q5_1_idot;
    case Shader::kGemvQ5_1IDotF64: return spv::k_gemv_q5_1_idot_f64;
    case Shader::kGemvQ4_KIDot: return spv::k_gemv_q4_k_idot;
    case Shader::kGemvQ4_KIDotF64: return spv::k_gemv_q4_k_idot_f64;
    case Shader::kGemvQ5_KIDot: return spv::k_gemv_q5_k_idot;
    case Shader::kGemvQ5_KIDotF64: return spv::k_gemv_q5_k_idot_f64;
    case Shader::kGemvQ6_KIDot: return spv::k_gemv_q6_k_idot;
    case Shader::kGemvQ6_KIDotF64: return spv::k_gemv_q6_k_idot_f64;
  }
#endif
  (void)s;
  return {};
}

}  // namespace spool::gpu
