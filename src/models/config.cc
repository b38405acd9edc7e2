#include "models/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "models/multimodal.h"  // IsMultimodalClass
#include "models/weights.h"     // ReadTensorF32

namespace spool::models {

namespace {

// How an architecture's HF checkpoint names its experts (per-expert layout):
// model.layers.{l}.<prefix>experts.{e}.<gate|up|down>.weight, router <prefix>gate.weight.
struct HfExpertNames {
  const char* prefix;
  const char* gate;
  const char* up;
  const char* down;
};
constexpr HfExpertNames kQwenExperts{"mlp.", "gate_proj", "up_proj", "down_proj"};
constexpr HfExpertNames kMixtralExperts{"block_sparse_moe.", "w1", "w3", "w2"};

// Which layers' feed-forward block is a mixture of experts.
enum class MoeLayers {
  kNone,        // dense everywhere
  kAll,         // every layer (Mixtral, OLMoE)
  kSparseStep,  // Qwen2/3-MoE: (l + 1) % decoder_sparse_step == 0 and l not in mlp_only_layers
};

// Mixture-of-experts GGUF (llama.cpp's ffn_{gate,up,down}_exps 3-D tensors): read or
// not, and whether the top-k weights are renormalised (llama.cpp fixes it per arch:
// build_moe_ffn's norm_w in src/models/<arch>.cpp). For `llama` (Mixtral's conversion)
// a file is MoE when it has `llama.expert_count`; for the MoE architectures always.
enum class GgufMoe { kNotRead, kNoRenorm, kRenorm };

// Model families whose layers differ from the plain pre-norm SwiGLU decoder beyond the
// flags above; each has its own config reader (GemmaFromHf / GemmaFromGguf).
enum class Family {
  kPlain,
  kGemma2,  // sandwich norms, (1 + w) RMSNorm, GeGLU, √n_embd embeddings, soft-capping, sliding/global alternate
  kGemma3,  // as Gemma 2 without soft-capping, with q/k norm and 5 sliding : 1 global layers, local/global RoPE
  kGptOss,  // attention sinks, o bias, sliding (even) / full layers, router bias + top-k softmax, biased clamped-SwiGLU MXFP4 experts
  kQwen3Next,  // Gated DeltaNet : gated attention layers (layer_types), (1 + w) RMSNorms, partial RoPE
  kQwen35,     // Qwen3-Next's layers with Qwen3.5's checkpoint layout: ungrouped DeltaNet projections, M-RoPE sections
};

struct ArchEntry {
  const char* id;         // ModelConfig::arch; general.architecture for GGUF
  const char* hf_class;   // config.json architectures[0]
  const char* model_type; // config.json model_type (when architectures is missing)
  RopeStyle gguf_rope;    // rope pairing of the GGUF conversion (HF is always kHalf)
  bool qkv_bias;
  bool qk_norm;
  bool rope_freqs;        // llama.cpp loads a `rope_freqs.weight` tensor for this architecture
  bool qk_norm_full;      // q/k norm over the whole projection (OLMoE), not per head
  MoeLayers moe;
  bool shared_expert;     // Qwen2-MoE: a shared expert behind a sigmoid gate
  const HfExpertNames* experts;
  GgufMoe gguf_moe;
  Family family = Family::kPlain;
};

// The one table of supported architectures. Columns: id, HF class, model_type, GGUF
// rope, qkv_bias, qk_norm, rope_freqs, qk_norm_full, / MoE layers, shared expert, expert
// names, GGUF MoE, / family.
constexpr ArchEntry kArchs[] = {
    {"llama", "LlamaForCausalLM", "llama", RopeStyle::kInterleaved, false, false, true, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kRenorm},
    {"mistral", "MistralForCausalLM", "mistral", RopeStyle::kInterleaved, false, false, true, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", RopeStyle::kNeox, true, false, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", RopeStyle::kNeox, false, true, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"qwen2moe", "Qwen2MoeForCausalLM", "qwen2_moe", RopeStyle::kNeox, true, false, false, false,
     MoeLayers::kSparseStep, true, &kQwenExperts, GgufMoe::kNoRenorm},
    {"qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe", RopeStyle::kNeox, false, true, false, false,
     MoeLayers::kSparseStep, false, &kQwenExperts, GgufMoe::kRenorm},
    {"mixtral", "MixtralForCausalLM", "mixtral", RopeStyle::kInterleaved, false, false, true, false,
     MoeLayers::kAll, false, &kMixtralExperts, GgufMoe::kNotRead},
    {"olmoe", "OlmoeForCausalLM", "olmoe", RopeStyle::kNeox, false, true, false, true,
     MoeLayers::kAll, false, &kQwenExperts, GgufMoe::kNoRenorm},
    {"gemma2", "Gemma2ForCausalLM", "gemma2", RopeStyle::kNeox, false, false, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead, Family::kGemma2},
    {"gemma3", "Gemma3ForCausalLM", "gemma3_text", RopeStyle::kNeox, false, true, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead, Family::kGemma3},
    {"gpt-oss", "GptOssForCausalLM", "gpt_oss", RopeStyle::kNeox, true, false, false, false,
     MoeLayers::kAll, false, &kQwenExperts, GgufMoe::kNoRenorm, Family::kGptOss},
    {"qwen3next", "Qwen3NextForCausalLM", "qwen3_next", RopeStyle::kNeox, false, true, false, false,
     MoeLayers::kSparseStep, true, &kQwenExperts, GgufMoe::kRenorm, Family::kQwen3Next},
    // Qwen3.5 (dense SwiGLU MLP in every layer) and Qwen3.5-MoE (every layer MoE + shared
    // expert, always renormalised); their multimodal checkpoints through models/multimodal.h.
    // GGUF rope: llama.cpp's IMROPE, which for text positions pairs dims as NeoX does.
    {"qwen35", "Qwen3_5ForCausalLM", "qwen3_5_text", RopeStyle::kNeox, false, true, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead, Family::kQwen35},
    {"qwen35moe", "Qwen3_5MoeForCausalLM", "qwen3_5_moe_text", RopeStyle::kNeox, false, true, false, false,
     MoeLayers::kAll, true, &kQwenExperts, GgufMoe::kRenorm, Family::kQwen35},
};

const ArchEntry* FindArch(const std::string& id) {
  for (auto& a : kArchs)
    if (id == a.id) return &a;
  return nullptr;
}

std::string SupportedList() {
  std::string s;
  for (auto& a : kArchs) s += std::string(s.empty() ? "" : ", ") + a.id + " (" + a.hf_class + ")";
  return s;
}

// llama.cpp's yarn for llama/mistral/qwen2/qwen3 (llama-model.cpp, llama-context.cpp):
// it reads `rope.scaling.factor`, `.original_context_length` (missing: the training
// context) and `.attn_factor`; the `yarn_*` keys are read only for other architectures
// (grok, deepseek2, mistral3), so here beta_fast 32, beta_slow 1, ext_factor 1 and no
// log multiplier always apply. A file whose `yarn_*` keys ask for other values is
// refused: llama.cpp would ignore them and transformers would not, so either answer
// would be wrong for someone. The attention factor is computed in f32 in llama.cpp's
// order (libllama's arithmetic is not FMA-contracted; ggml-cpu's is, see ApplyRopeGgml).
Status ReadGgufYarn(const formats::ModelSource& src, const std::string& p, float factor, float rope_attn_factor,
                    ModelConfig* c) {
  const formats::GgufFile& g = *src.gguf;
  RopeScaling& s = c->rope_scaling;
  s.kind = RopeScaling::Kind::kYarn;
  s.factor = factor;
  s.original_max_position = c->n_ctx_train;
  const std::string orig_key = p + "rope.scaling.original_context_length";
  if (g.Find(orig_key)) {
    SPOOL_ASSIGN_OR_RETURN(s.original_max_position, g.GetInt(orig_key));
    if (s.original_max_position <= 0 || s.original_max_position > c->n_ctx_train)
      return InvalidFile(src.root + ": " + orig_key + " is " + std::to_string(s.original_max_position) +
                         ", expected 1 to the context length " + std::to_string(c->n_ctx_train));
  }
  auto read = [&](const char* key, double* out) -> Status {
    if (!g.Find(p + key)) return Status::Ok();
    SPOOL_ASSIGN_OR_RETURN(*out, g.GetFloat(p + key));
    if (!std::isfinite(*out))
      return InvalidFile(src.root + ": " + p + key + " is " + std::to_string(*out) + ", expected a finite number");
    return Status::Ok();
  };
  double beta_fast = 32, beta_slow = 1, ext_factor = 1, yarn_attn_factor = 1, log_mul = 0;
  SPOOL_TRY(read("rope.scaling.yarn_beta_fast", &beta_fast));
  SPOOL_TRY(read("rope.scaling.yarn_beta_slow", &beta_slow));
  SPOOL_TRY(read("rope.scaling.yarn_ext_factor", &ext_factor));
  SPOOL_TRY(read("rope.scaling.yarn_attn_factor", &yarn_attn_factor));
  SPOOL_TRY(read("rope.scaling.yarn_log_multiplier", &log_mul));
  if (!(beta_fast > beta_slow) || !(beta_slow > 0))
    return InvalidFile(src.root + ": " + p + "rope.scaling.yarn_beta_fast " + std::to_string(beta_fast) +
                       " and yarn_beta_slow " + std::to_string(beta_slow) + ": expected beta_fast > beta_slow > 0");
  const struct {
    const char* key;
    double value, llama_cpp;
  } ignored[] = {{"yarn_beta_fast", beta_fast, 32},
                 {"yarn_beta_slow", beta_slow, 1},
                 {"yarn_ext_factor", ext_factor, 1},
                 {"yarn_attn_factor", yarn_attn_factor, 1},
                 {"yarn_log_multiplier", log_mul, 0}};
  for (const auto& k : ignored)
    if (k.value != k.llama_cpp)
      return Unsupported(src.root + ": " + p + "rope.scaling." + k.key + " is " + std::to_string(k.value) +
                         "; llama.cpp ignores this key for '" + c->arch + "' and uses " + std::to_string(k.llama_cpp) +
                         ", so spool refuses the file rather than pick one");
  s.beta_fast = 32.0f;
  s.beta_slow = 1.0f;
  s.truncate = true;  // ggml always floors/ceils the correction range
  // llama.cpp: freq_scale = 1/factor; factor' = 1/freq_scale; attn = mscale(factor') /
  // (1 + 0.1·ln factor') · attn_factor, each step an f32 rounding; ggml then multiplies
  // by fma(0.1, ln(1/freq_scale), 1).
  const float freq_scale = 1.0f / factor;
  const float f = 1.0f / freq_scale;
  volatile float tenth_log = 0.1f * std::log(f);  // volatile: no contraction into an FMA
  const float mscale = f <= 1.0f ? 1.0f : tenth_log + 1.0f;
  const float denominator = tenth_log + 1.0f;
  s.ggml_attn_factor = mscale * (1.0f / denominator) * rope_attn_factor;
  s.attention_factor = s.ggml_attn_factor * std::fma(0.1f, std::log(1.0f / freq_scale), 1.0f);
  return Status::Ok();
}

// GGUF rope scaling, as llama.cpp reads it: `{arch}.rope.scaling.type` (none, linear,
// yarn, longrope) with `.factor`, and the `rope_freqs.weight` tensor, [rope_dim/2] f32
// frequency divisors, which is how llama.cpp's converter stores llama3 scaling (Llama
// 3.1/3.2: no scaling key at all). Everything spool cannot compute the same way is
// refused here, naming the key or tensor; see docs/parts/formats.md for the audit.
Status ReadGgufRopeScaling(const formats::ModelSource& src, const ArchEntry& entry, const std::string& p,
                           ModelConfig* c) {
  const formats::GgufFile& g = *src.gguf;
  // llama.cpp: a missing type means "linear", and the factor (or the older
  // `rope.scale_linear`) applies unless the type is "none"; missing or 0 means 1.
  std::string type = "linear";
  if (g.Find(p + "rope.scaling.type")) {
    SPOOL_ASSIGN_OR_RETURN(type, g.GetString(p + "rope.scaling.type"));
  }
  if (type != "none" && type != "linear" && type != "yarn")
    return Unsupported(src.root + ": " + p + "rope.scaling.type '" + type +
                       "' is not supported (supported: none, linear, yarn; llama3 scaling as the rope_freqs.weight tensor)");
  double factor = 0;
  for (const char* key : {"rope.scaling.factor", "rope.scale_linear"}) {
    if (!g.Find(p + key)) continue;
    SPOOL_ASSIGN_OR_RETURN(factor, g.GetFloat(p + key));
    if (!std::isfinite(factor) || factor < 0 || (type == "yarn" && factor == 0))
      return InvalidFile(src.root + ": " + p + key + " is " + std::to_string(factor) + ", expected a positive number");
    break;
  }
  if (type == "linear" && factor > 0) {
    c->rope_scaling.kind = RopeScaling::Kind::kLinear;
    c->rope_scaling.factor = static_cast<float>(factor);
  }
  // llama.cpp multiplies every rotated value by this (its yarn "mscale"), for any type.
  float rope_attn_factor = 1.0f;
  if (g.Find(p + "rope.scaling.attn_factor")) {
    SPOOL_ASSIGN_OR_RETURN(double f, g.GetFloat(p + "rope.scaling.attn_factor"));
    if (!std::isfinite(f) || !(f > 0))
      return InvalidFile(src.root + ": " + p + "rope.scaling.attn_factor is " + std::to_string(f) +
                         ", expected a finite positive number");
    if (f != 1.0 && type != "yarn")
      return Unsupported(src.root + ": " + p + "rope.scaling.attn_factor " + std::to_string(f) +
                         " is not supported without yarn (only 1)");
    rope_attn_factor = static_cast<float>(f);
  }
  if (type == "yarn") {
    if (factor == 0)
      return InvalidFile(src.root + ": " + p + "rope.scaling.type is yarn but " + p +
                         "rope.scaling.factor is missing (expected a positive number)");
    SPOOL_TRY(ReadGgufYarn(src, p, static_cast<float>(factor), rope_attn_factor, c));
  }

  const formats::TensorInfo* t = src.FindTensor("rope_freqs.weight");
  if (!t) return Status::Ok();
  const std::string what = src.root + ": tensor 'rope_freqs.weight' ";
  // llama.cpp loads rope_freqs only for the llama family; for others it refuses the
  // file (an unused tensor), and so does spool rather than guess.
  if (!entry.rope_freqs) return Unsupported(what + "is not used by architecture '" + c->arch + "'");
  if (c->rope_scaling.kind == RopeScaling::Kind::kYarn)
    return Unsupported(what + "together with yarn rope scaling is not supported (no converter writes both)");
  if (c->rope_dim <= 0 || c->rope_dim % 2 != 0) return Status::Ok();  // Validate() names the bad rope_dim
  const uint64_t want = static_cast<uint64_t>(c->rope_dim / 2);
  if (t->shape.size() != 1 || t->shape[0] != want) {
    std::string shape;
    for (size_t i = 0; i < t->shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t->shape[i]);
    return InvalidFile(what + "has shape [" + shape + "], expected [" + std::to_string(want) +
                       "] (rope dimension count / 2)");
  }
  if (t->dtype != DType::kF32)
    return InvalidFile(what + "has type " + std::string(DTypeName(t->dtype)) + ", expected f32 (llama.cpp's rope requires f32)");
  SPOOL_ASSIGN_OR_RETURN(std::vector<float> factors, ReadTensorF32(src, *t));
  for (size_t i = 0; i < factors.size(); ++i) {
    if (!std::isfinite(factors[i]) || !(factors[i] > 0))
      return InvalidFile(what + "value " + std::to_string(i) + " is " + std::to_string(factors[i]) +
                         ", expected a finite positive frequency factor");
  }
  c->rope_scaling.freq_factors = std::move(factors);
  return Status::Ok();
}

// A tensor spool would not read changes the model (an output bias, MoE experts, ...):
// refuse the file, naming it, instead of silently computing something else. llama.cpp
// refuses files with tensors it did not load too ("wrong number of tensors").
Status CheckNoUnusedTensors(const formats::ModelSource& src, const ModelConfig& c) {
  if (c.n_layer <= 0 || c.n_layer > 1024) return Status::Ok();  // Validate() names the bad count
  std::unordered_set<std::string> used = {"token_embd.weight", "output.weight", "output_norm.weight", "rope_freqs.weight"};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (TensorRole r : {TensorRole::kAttnNorm, TensorRole::kWq, TensorRole::kWk, TensorRole::kWv, TensorRole::kWo,
                         TensorRole::kFfnNorm})
      used.insert(TensorName(src.kind, r, l));
    const bool moe = static_cast<size_t>(l) < c.layers.size() && c.layers[l].ffn == FfnKind::kMoe;
    if (!moe) {
      for (TensorRole r : {TensorRole::kWGate, TensorRole::kWUp, TensorRole::kWDown}) used.insert(TensorName(src.kind, r, l));
    } else {
      // llama.cpp's expert layout (ModelWeights::InitMoe reads exactly these).
      used.insert(TensorName(src.kind, TensorRole::kFfnRouter, l));
      for (const char* t : {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"})
        used.insert("blk." + std::to_string(l) + "." + t + ".weight");
      if (c.moe.n_ff_shared > 0)
        for (TensorRole r : {TensorRole::kShexpGate, TensorRole::kShexpUp, TensorRole::kShexpDown, TensorRole::kShexpRouter})
          used.insert(TensorName(src.kind, r, l));
    }
    if (c.qkv_bias)
      for (TensorRole r : {TensorRole::kBq, TensorRole::kBk, TensorRole::kBv}) used.insert(TensorName(src.kind, r, l));
    if (c.qk_norm)
      for (TensorRole r : {TensorRole::kQNorm, TensorRole::kKNorm}) used.insert(TensorName(src.kind, r, l));
    if (c.sandwich_norms)
      for (TensorRole r : {TensorRole::kPostAttnNorm, TensorRole::kPostFfnNorm}) used.insert(TensorName(src.kind, r, l));
    if (c.arch == "qwen3next") {  // llama.cpp's qwen3next (InitLinear reads these; the FFN norm is post_attention_norm)
      const std::string b = "blk." + std::to_string(l) + ".";
      for (const char* t : {"attn_qkv.weight", "attn_gate.weight", "ssm_in.weight", "ssm_ba.weight", "ssm_conv1d.weight",
                            "ssm_dt.bias", "ssm_a", "ssm_norm.weight", "ssm_out.weight", "post_attention_norm.weight"})
        used.insert(b + t);
    }
    if (c.arch == "qwen35" || c.arch == "qwen35moe") {  // llama.cpp's qwen35*: separate ssm_beta / ssm_alpha
      const std::string b = "blk." + std::to_string(l) + ".";
      for (const char* t : {"attn_qkv.weight", "attn_gate.weight", "ssm_beta.weight", "ssm_alpha.weight",
                            "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a", "ssm_norm.weight", "ssm_out.weight",
                            "post_attention_norm.weight"})
        used.insert(b + t);
    }
    if (c.arch == "gpt-oss") {  // llama.cpp's openai-moe: these, and the FFN norm named post_attention_norm
      const std::string b = "blk." + std::to_string(l) + ".";
      for (const char* t : {"attn_sinks.weight", "attn_output.bias", "ffn_gate_inp.bias", "ffn_gate_exps.bias",
                            "ffn_up_exps.bias", "ffn_down_exps.bias", "post_attention_norm.weight"})
        used.insert(b + t);
    }
  }
  // Multi-token-prediction blocks (nextn_predict_layers) after the trunk: not run.
  auto mtp_block = [&](const std::string& name) {
    if (c.n_nextn_layers <= 0 || name.rfind("blk.", 0) != 0) return false;
    const int64_t b = std::atoll(name.c_str() + 4);
    return b >= c.n_layer && b < c.n_layer + c.n_nextn_layers;
  };
  for (const formats::TensorInfo& t : src.tensors)
    if (!used.count(t.name) && !mtp_block(t.name))
      return Unsupported(src.root + ": tensor '" + t.name + "' is not used by spool's " + c.arch +
                         " (an unsupported model variant: biases, experts, extra layers?)");
  return Status::Ok();
}

// GGUF mixture of experts, as llama.cpp loads it (src/models/{llama,qwen2moe,qwen3moe,
// olmoe}.cpp): `expert_count`, `expert_used_count` (required), `expert_feed_forward_length`
// (default: feed_forward_length), `expert_shared_feed_forward_length` (qwen2moe);
// renormalisation is fixed per architecture. A layer is MoE when it has a router
// (`ffn_gate_inp`), else dense: llama.cpp requires one in every layer (spool's own
// tools/gen_moe_gguf.py writes Qwen's dense layers between sparse ones, which llama.cpp's
// format cannot say otherwise).
// Keys that would change the arithmetic and that spool does not implement are refused.
Status ReadGgufMoe(const formats::ModelSource& src, const ArchEntry& entry, const std::string& p, int64_t n_expert,
                   ModelConfig* c) {
  const formats::GgufFile& g = *src.gguf;
  auto get_int = [&](const std::string& key, int64_t* out) -> Status {
    auto r = g.GetInt(p + key);
    if (!r.ok()) return r.status().WithContext(src.root);
    *out = *r;
    return Status::Ok();
  };
  c->moe.n_expert = n_expert;
  if (c->arch == "llama") c->hf_class = "MixtralForCausalLM";  // llama with experts: Mixtral's conversion
  SPOOL_TRY(get_int("expert_used_count", &c->moe.n_expert_used));
  c->moe.n_ff_expert = c->n_ff;
  if (g.Find(p + "expert_feed_forward_length")) SPOOL_TRY(get_int("expert_feed_forward_length", &c->moe.n_ff_expert));
  if (entry.shared_expert) {
    SPOOL_TRY(get_int("expert_shared_feed_forward_length", &c->moe.n_ff_shared));
    if (c->moe.n_ff_shared <= 0)
      return InvalidFile(src.root + ": " + p + "expert_shared_feed_forward_length is " +
                         std::to_string(c->moe.n_ff_shared) + ", expected a positive size");
  } else if (g.Find(p + "expert_shared_feed_forward_length") || g.Find(p + "expert_shared_count")) {
    // llama: Granite-MoE's shared expert (an ungated one); not a spool architecture.
    return Unsupported(src.root + ": " + p + "expert_shared_feed_forward_length/expert_shared_count: a shared expert "
                       "is not supported for '" + c->arch + "' (only qwen2moe's gated one)");
  }
  c->moe.norm_topk_prob = entry.gguf_moe == GgufMoe::kRenorm;
  if (auto r = g.GetBool(p + "expert_weights_norm"); r.ok()) c->moe.norm_topk_prob = *r;
  if (g.Find(p + "expert_weights_scale")) {
    SPOOL_ASSIGN_OR_RETURN(double scale, g.GetFloat(p + "expert_weights_scale"));
    if (scale != 0.0 && scale != 1.0)  // llama.cpp: 0 and 1 both mean "no scaling"
      return Unsupported(src.root + ": " + p + "expert_weights_scale " + std::to_string(scale) +
                         " is not supported (only 1)");
  }
  if (g.Find(p + "expert_gating_func")) {
    SPOOL_ASSIGN_OR_RETURN(int64_t func, g.GetInt(p + "expert_gating_func"));
    const bool gptoss_ok = entry.family == Family::kGptOss && func == 3;  // SOFTMAX_WEIGHT: gpt-oss's own
    if (func != 1 && !gptoss_ok)  // LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX
      return Unsupported(src.root + ": " + p + "expert_gating_func " + std::to_string(func) +
                         " is not supported (only 1, softmax)");
  }
  for (size_t l = 0; l < c->layers.size(); ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    // Older Mixtral conversions stored one 2-D tensor per expert (blk.N.ffn_gate.E.weight);
    // current llama.cpp does not load them either.
    if (src.FindTensor(b + "ffn_gate.0.weight") || src.FindTensor(b + "ffn_down.0.weight"))
      return Unsupported(src.root + ": tensor '" + b + (src.FindTensor(b + "ffn_gate.0.weight") ? "ffn_gate" : "ffn_down") +
                         ".0.weight': experts stored one tensor each (an old GGUF conversion) are not supported; "
                         "re-convert with a current convert_hf_to_gguf.py (ffn_{gate,up,down}_exps)");
    if (!src.FindTensor(b + "ffn_gate_inp.weight")) continue;  // a dense layer (spool's own writer allows them)
    // An MoE layer's tensors, named here rather than as "unused" or "missing" one by one.
    std::vector<std::string> required = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    if (entry.shared_expert)
      for (const char* t : {"ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp"}) required.push_back(t);
    for (const std::string& t : required)
      if (!src.FindTensor(b + t + ".weight"))
        return InvalidFile(src.root + ": missing tensor '" + b + t + ".weight': layer " + std::to_string(l) +
                           " is a mixture of experts (it has '" + b + "ffn_gate_inp.weight')" +
                           (t == "ffn_gate_inp_shexp" ? ", and its shared expert needs this gate" : ""));
    c->layers[l].ffn = FfnKind::kMoe;
  }
  if (!c->has_moe() && !c->layers.empty())
    return InvalidFile(src.root + ": " + p + "expert_count is " + std::to_string(n_expert) +
                       " but no layer has a router (missing tensor 'blk.0.ffn_gate_inp.weight')");
  return Status::Ok();
}

// Gemma 2/3 GGUF as llama.cpp reads it (src/models/gemma2.cpp, gemma3.cpp):
// `attention.sliding_window` (gemma2: 4096 when absent; gemma3: no sliding layers when
// absent), `attention.sliding_window_pattern` (an integer n: layer l slides when
// l % n < n − 1, 0: all; default gemma2 2, gemma3 6; llama.cpp's per-layer array form is
// refused), `attn_logit_softcapping` (gemma2), `final_logit_softcapping`; sliding layers'
// RoPE: θ `rope.freq_base_swa` (default: gemma2 the global θ, gemma3 10000), gemma2
// with the global scaling, gemma3 unscaled; the score scale is 1/sqrt(head_dim), except
// the 27B models (gemma2 46 layers, gemma3 62) which use 1/sqrt(n_embd / n_head) — no
// key carries query_pre_attn_scalar; embeddings × sqrtf(n_embd) in f32; the norm
// weights were stored as 1 + w by the converter.
Status GemmaFromGguf(const formats::ModelSource& src, const ArchEntry& a, const std::string& p, ModelConfig* c) {
  const formats::GgufFile& g = *src.gguf;
  const bool g2 = a.family == Family::kGemma2;
  auto get_float = [&](const std::string& key, float* out) -> Status {
    if (!g.Find(p + key)) return Status::Ok();
    SPOOL_ASSIGN_OR_RETURN(double v, g.GetFloat(p + key));
    if (!std::isfinite(v) || v < 0)
      return InvalidFile(src.root + ": " + p + key + " is " + std::to_string(v) + ", expected a finite number >= 0");
    *out = static_cast<float>(v);
    return Status::Ok();
  };
  c->ffn_act = FfnAct::kGeluTanh;
  c->sandwich_norms = true;
  c->qk_norm = a.qk_norm;
  c->embd_scale = std::sqrt(static_cast<float>(c->n_embd));
  const bool is_27b = (g2 && c->n_layer == 46) || (!g2 && c->n_layer == 62);
  c->attn_scale = 1.0f / std::sqrt(static_cast<float>(is_27b && c->n_head > 0 ? c->n_embd / c->n_head : c->head_dim));
  if (g2) SPOOL_TRY(get_float("attn_logit_softcapping", &c->attn_softcap));
  SPOOL_TRY(get_float("final_logit_softcapping", &c->final_softcap));
  int64_t window = g2 ? 4096 : 0;
  if (g.Find(p + "attention.sliding_window")) {
    SPOOL_ASSIGN_OR_RETURN(window, g.GetInt(p + "attention.sliding_window"));
    if (window < 0 || (g2 && window == 0))
      return InvalidFile(src.root + ": " + p + "attention.sliding_window is " + std::to_string(window) +
                         ", expected > 0");
  }
  if (window == 0) return Status::Ok();  // gemma3 without sliding layers
  int64_t pattern = g2 ? 2 : 6;
  if (g.Find(p + "attention.sliding_window_pattern")) {
    auto r = g.GetInt(p + "attention.sliding_window_pattern");
    if (!r.ok())
      return Unsupported(src.root + ": " + p + "attention.sliding_window_pattern is not an integer (the per-layer " +
                         "array form is not supported yet)");
    pattern = *r;
    if (pattern < 0)
      return InvalidFile(src.root + ": " + p + "attention.sliding_window_pattern is " + std::to_string(pattern) +
                         ", expected >= 0");
  }
  float local_theta = g2 ? c->rope_theta : 10000.0f;
  SPOOL_TRY(get_float("rope.freq_base_swa", &local_theta));
  for (int64_t l = 0; l < static_cast<int64_t>(c->layers.size()); ++l) {
    if (pattern != 0 && l % pattern >= pattern - 1) continue;
    LayerSpec& s = c->layers[l];
    s.mixer = MixerKind::kSlidingAttention;
    s.window = window;
    s.rope_theta = local_theta;
    s.rope_scaling = g2 ? c->rope_scaling : RopeScaling{};
  }
  return Status::Ok();
}

// gpt-oss GGUF as llama.cpp's openai-moe reads it (src/models/openai-moe.cpp):
// `attention.sliding_window` (required), even layers slide (load_swa_pattern(2)),
// sliding layers' θ `rope.freq_base_swa` (default: the global θ) with the global
// scaling; yarn from the usual keys (ggml floors/ceils the correction range); per
// layer attn_sinks [n_head], attn_output.bias, ffn_gate_inp.bias and the experts'
// biases ffn_{gate,up}_exps.bias [E, F], ffn_down_exps.bias [E, D]; the FFN norm is
// `post_attention_norm`; routing SOFTMAX_WEIGHT (softmax over the top-k logits);
// SwiGLU-OAI with α 1.702 and limit 7 (constants in llama.cpp, no keys).
Status GptOssFromGguf(const formats::ModelSource& src, const std::string& p, ModelConfig* c) {
  const formats::GgufFile& g = *src.gguf;
  c->ffn_act = FfnAct::kSwiGluOai;
  c->attn_sinks = true;
  c->o_bias = true;
  c->moe.softmax_after_topk = true;
  c->moe.router_bias = true;
  c->moe.expert_bias = true;
  c->moe.norm_topk_prob = false;
  if (!c->qkv_bias)
    return InvalidFile(src.root + ": missing tensor 'blk.0.attn_q.bias' (gpt-oss has q/k/v biases)");
  if (!g.Find(p + "attention.sliding_window"))
    return InvalidFile(src.root + ": missing key " + p + "attention.sliding_window (gpt-oss needs it)");
  SPOOL_ASSIGN_OR_RETURN(int64_t window, g.GetInt(p + "attention.sliding_window"));
  if (window <= 0)
    return InvalidFile(src.root + ": " + p + "attention.sliding_window is " + std::to_string(window) + ", expected > 0");
  if (g.Find(p + "attention.sliding_window_pattern"))
    return Unsupported(src.root + ": " + p + "attention.sliding_window_pattern is not supported for gpt-oss "
                       "(llama.cpp's converter writes none: even layers slide)");
  float local_theta = c->rope_theta;
  if (g.Find(p + "rope.freq_base_swa")) {
    SPOOL_ASSIGN_OR_RETURN(double v, g.GetFloat(p + "rope.freq_base_swa"));
    if (!std::isfinite(v) || v <= 0)
      return InvalidFile(src.root + ": " + p + "rope.freq_base_swa is " + std::to_string(v) + ", expected > 0");
    local_theta = static_cast<float>(v);
  }
  for (int64_t l = 0; l < static_cast<int64_t>(c->layers.size()); l += 2) {
    LayerSpec& s = c->layers[l];
    s.mixer = MixerKind::kSlidingAttention;
    s.window = window;
    s.rope_theta = local_theta;
    s.rope_scaling = c->rope_scaling;
  }
  return Status::Ok();
}

// Qwen3-Next GGUF as llama.cpp reads it (src/models/qwen3next.cpp, load_arch_hparams):
// `ssm.conv_kernel`, `ssm.state_size` (key head dim), `ssm.group_count` (key heads),
// `ssm.time_step_rank` (value heads), `ssm.inner_size` (value heads × value head dim);
// which layers are Gated DeltaNet: `attention.recurrent_layers` (bool per block), else
// `full_attention_interval` (default 4: every 4th layer full attention); partial RoPE
// as `rope.dimension_count`. The converter stored every RMSNorm but the DeltaNet's
// output norm as 1 + w and A_log as −exp(A_log) (ModelWeights::InitLinear reads both
// as stored). llama.cpp itself assumes the value head dim equals the key head dim (its
// state is [dk, dk] per head); spool takes inner_size / time_step_rank.
Status Qwen3NextFromGguf(const formats::ModelSource& src, const std::string& p, ModelConfig* c) {
  const formats::GgufFile& g = *src.gguf;
  c->attn_output_gate = true;
  if (c->qkv_bias)
    return Unsupported(src.root + ": tensor 'blk.N.attn_q.bias': q/k/v biases are not supported for " + c->arch);
  auto get_int = [&](const char* key, int64_t* out) -> Status {
    auto r = g.GetInt(p + key);
    if (!r.ok()) return r.status().WithContext(src.root + " (" + c->arch + " needs it)");
    *out = *r;
    return Status::Ok();
  };
  LinearAttnSpec& s = c->linear;
  int64_t inner = 0;
  SPOOL_TRY(get_int("ssm.conv_kernel", &s.conv_kernel));
  SPOOL_TRY(get_int("ssm.state_size", &s.k_head_dim));
  SPOOL_TRY(get_int("ssm.group_count", &s.n_k_heads));
  SPOOL_TRY(get_int("ssm.time_step_rank", &s.n_v_heads));
  SPOOL_TRY(get_int("ssm.inner_size", &inner));
  if (s.n_v_heads <= 0 || inner <= 0 || inner % s.n_v_heads != 0)
    return InvalidFile(src.root + ": " + p + "ssm.inner_size " + std::to_string(inner) + " is not a positive multiple of " +
                       p + "ssm.time_step_rank " + std::to_string(s.n_v_heads) + " (value heads)");
  s.v_head_dim = inner / s.n_v_heads;
  const int64_t L = static_cast<int64_t>(c->layers.size());
  const std::string rec_key = p + "attention.recurrent_layers";
  if (const formats::GgufValue* v = g.Find(rec_key)) {
    // llama.cpp: one bool per block, MTP blocks included (false).
    if (v->type != formats::GgufType::kArray || v->array_type != formats::GgufType::kBool ||
        static_cast<int64_t>(v->array.size()) != L + c->n_nextn_layers)
      return InvalidFile(src.root + ": " + rec_key + " must be an array of " + std::to_string(L + c->n_nextn_layers) +
                         " bools (one per block), got " +
                         (v->type == formats::GgufType::kArray ? std::to_string(v->array.size()) + " values" : "a scalar"));
    for (int64_t l = 0; l < L; ++l)
      if (v->array[static_cast<size_t>(l)].AsBool().value_or(false)) c->layers[l].mixer = MixerKind::kLinearAttention;
  } else {
    int64_t interval = 4;
    if (g.Find(p + "full_attention_interval")) SPOOL_TRY(get_int("full_attention_interval", &interval));
    if (interval <= 0)
      return InvalidFile(src.root + ": " + p + "full_attention_interval is " + std::to_string(interval) + ", expected > 0");
    for (int64_t l = 0; l < L; ++l)
      if ((l + 1) % interval != 0) c->layers[l].mixer = MixerKind::kLinearAttention;
  }
  // A Gated DeltaNet layer's tensors, named here (as ReadGgufMoe does for experts) rather
  // than as some other tensor being "unused".
  for (int64_t l = 0; l < L; ++l) {
    if (c->layers[l].mixer != MixerKind::kLinearAttention) continue;
    const std::string b = "blk." + std::to_string(l) + ".";
    const bool legacy = !s.ungrouped && src.FindTensor(b + "ssm_in.weight") != nullptr;
    std::vector<std::string> required = {"ssm_conv1d.weight", "ssm_dt.bias", "ssm_a", "ssm_norm.weight", "ssm_out.weight"};
    if (s.ungrouped) required.insert(required.begin(), {"ssm_beta.weight", "ssm_alpha.weight"});  // qwen35*
    else required.insert(required.begin(), "ssm_ba.weight");
    if (!legacy) required.insert(required.begin(), {"attn_qkv.weight", "attn_gate.weight"});
    for (const std::string& t : required)
      if (!src.FindTensor(b + t))
        return InvalidFile(src.root + ": missing tensor '" + b + t + "'" +
                           (t == "attn_qkv.weight" && !s.ungrouped ? " (or the legacy '" + b + "ssm_in.weight')" : std::string()) +
                           ": layer " + std::to_string(l) + " is a Gated DeltaNet layer (" +
                           (g.Find(rec_key) ? rec_key : p + "full_attention_interval") + ")");
  }
  return Status::Ok();
}

// llama.cpp's interleaved M-RoPE (ggml_mrope_cache_init, is_imrope) for a text token,
// whose positions are (p, p, p, 0): rotated pair i (of rope_dim / 2) takes sector
// i % Σsections; sectors 3j, 3j+1, 3j+2 below 3·sections[0/1/2] take t/h/w (= p), any
// other takes the 4th position (0: not rotated). spool's text-only RoPE is the plain
// partial RoPE, which equals that only when no rotated pair falls to the 4th position
// (Qwen3.5's [11, 11, 10, 0] over 32 pairs). Returns the first pair that does, or -1.
int64_t FirstUnrotatedMropePair(const int64_t sections[4], int64_t n_pairs) {
  const int64_t sum = sections[0] + sections[1] + sections[2] + sections[3];
  for (int64_t i = 0; i < n_pairs; ++i) {
    const int64_t sector = i % sum;
    if (sector >= 3 * sections[sector % 3]) return i;
  }
  return -1;
}

// Qwen3.5 / Qwen3.5-MoE GGUF (llama.cpp's qwen35, qwen35moe: src/models/qwen35*.cpp) is
// Qwen3-Next's GGUF with: separate ssm_beta / ssm_alpha, value heads in tiled order (the
// converter's _reorder_v_heads), and `rope.dimension_sections` (4 ints, required).
Status Qwen35FromGguf(const formats::ModelSource& src, const std::string& p, ModelConfig* c) {
  c->linear.ungrouped = true;
  c->linear.v_heads_tiled = true;
  SPOOL_TRY(Qwen3NextFromGguf(src, p, c));
  const std::string key = p + "rope.dimension_sections";
  const formats::GgufValue* v = src.gguf->Find(key);
  if (!v) return InvalidFile(src.root + ": missing key '" + key + "' (" + c->arch + " needs its M-RoPE sections)");
  if (v->type != formats::GgufType::kArray || v->array.size() != 4)
    return InvalidFile(src.root + ": " + key + " must be an array of 4 integers, got " +
                       (v->type == formats::GgufType::kArray ? std::to_string(v->array.size()) + " values" : "a scalar"));
  int64_t sec[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < 4; ++i) {
    auto x = v->array[i].AsInt();
    if (!x || *x < 0 || *x > 4096)
      return InvalidFile(src.root + ": " + key + "[" + std::to_string(i) + "] must be an integer in [0, 4096]");
    sec[i] = *x;
  }
  const int64_t pairs = c->rope_dim / 2, sum = sec[0] + sec[1] + sec[2] + sec[3];
  if (sum <= 0 || sum > pairs)
    return InvalidFile(src.root + ": " + key + " [" + std::to_string(sec[0]) + ", " + std::to_string(sec[1]) + ", " +
                       std::to_string(sec[2]) + ", " + std::to_string(sec[3]) + "] sums to " + std::to_string(sum) +
                       ", expected 1 to rope.dimension_count / 2 (" + std::to_string(pairs) + ")");
  if (const int64_t i = FirstUnrotatedMropePair(sec, pairs); i >= 0)
    return Unsupported(src.root + ": " + key + " [" + std::to_string(sec[0]) + ", " + std::to_string(sec[1]) + ", " +
                       std::to_string(sec[2]) + ", " + std::to_string(sec[3]) + "]: rotated pair " + std::to_string(i) +
                       " takes llama.cpp's 4th M-RoPE position, which spool's text-only RoPE does not model");
  return Status::Ok();
}

Result<ModelConfig> FromGguf(const formats::ModelSource& src) {
  const formats::GgufFile& g = *src.gguf;
  ModelConfig c;
  SPOOL_ASSIGN_OR_RETURN(c.arch, g.GetString("general.architecture"));
  const ArchEntry* entry = nullptr;
  for (auto& a : kArchs)
    if (c.arch == a.id) entry = &a;
  if (!entry)
    return Unsupported(src.root + ": architecture '" + c.arch + "' is not supported (supported: " + SupportedList() + ")");
  c.hf_class = entry->hf_class;
  const std::string p = c.arch + ".";
  auto get_int = [&](const std::string& key, int64_t* out) -> Status {
    auto r = g.GetInt(p + key);
    if (!r.ok()) return r.status().WithContext(src.root);
    *out = *r;
    return Status::Ok();
  };
  int64_t n_expert = 0;
  if (g.Find(p + "expert_count")) SPOOL_TRY(get_int("expert_count", &n_expert));
  if (n_expert > 0 && entry->gguf_moe == GgufMoe::kNotRead)
    return Unsupported(src.root + ": GGUF mixture-of-experts models ('" + c.arch + "' with " + p +
                       "expert_count " + std::to_string(n_expert) +
                       ") are not supported (GGUF MoE: qwen2moe, qwen3moe, olmoe, llama with experts as Mixtral)");
  if (entry->moe != MoeLayers::kNone && n_expert <= 0)
    return InvalidFile(src.root + ": " + p + "expert_count is " + (g.Find(p + "expert_count") ? std::to_string(n_expert) : "missing") +
                       ", expected a positive expert count for the mixture-of-experts architecture '" + c.arch + "'");
  SPOOL_TRY(get_int("block_count", &c.n_layer));
  // Multi-token-prediction blocks (llama.cpp's converter appends them after the trunk and
  // counts them in block_count; `nextn_predict_layers` says how many): not run by the
  // main pass, so not layers of spool's model; their tensors are ignored.
  if (g.Find(p + "nextn_predict_layers")) {
    int64_t n_nextn = 0;
    SPOOL_TRY(get_int("nextn_predict_layers", &n_nextn));
    if (n_nextn < 0 || n_nextn >= c.n_layer)
      return InvalidFile(src.root + ": " + p + "nextn_predict_layers is " + std::to_string(n_nextn) +
                         ", expected 0 to block_count - 1 (" + std::to_string(c.n_layer - 1) + ")");
    c.n_nextn_layers = n_nextn;
    c.n_layer -= n_nextn;
  }
  SPOOL_TRY(get_int("embedding_length", &c.n_embd));
  if (c.arch == "qwen35moe" && !g.Find(p + "feed_forward_length")) {
    // llama.cpp's converter writes none for Qwen3.5-MoE (no dense layer, no
    // intermediate_size); as from HF, n_ff is the experts' size (only scratch sizing reads it).
    SPOOL_TRY(get_int("expert_feed_forward_length", &c.n_ff));
  } else {
    SPOOL_TRY(get_int("feed_forward_length", &c.n_ff));
  }
  SPOOL_TRY(get_int("attention.head_count", &c.n_head));
  c.n_head_kv = c.n_head;
  if (g.Find(p + "attention.head_count_kv")) SPOOL_TRY(get_int("attention.head_count_kv", &c.n_head_kv));
  c.n_ctx_train = 2048;
  if (g.Find(p + "context_length")) SPOOL_TRY(get_int("context_length", &c.n_ctx_train));
  if (auto r = g.GetFloat(p + "attention.layer_norm_rms_epsilon"); r.ok()) c.rms_eps = static_cast<float>(*r);
  if (auto r = g.GetFloat(p + "rope.freq_base"); r.ok()) c.rope_theta = static_cast<float>(*r);
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  if (g.Find(p + "attention.key_length")) SPOOL_TRY(get_int("attention.key_length", &c.head_dim));
  if (g.Find(p + "attention.value_length")) {  // the converter writes it beside key_length
    int64_t v = 0;
    SPOOL_TRY(get_int("attention.value_length", &v));
    if (v != c.head_dim)
      return Unsupported(src.root + ": " + p + "attention.value_length " + std::to_string(v) +
                         " differs from the key length " + std::to_string(c.head_dim) + " (not supported)");
  }
  c.rope_dim = c.head_dim;
  if (g.Find(p + "rope.dimension_count")) SPOOL_TRY(get_int("rope.dimension_count", &c.rope_dim));
  // Vocabulary size: the metadata key if present, else the embedding table's rows.
  if (g.Find(p + "vocab_size")) {
    SPOOL_TRY(get_int("vocab_size", &c.n_vocab));
  } else if (auto* t = src.FindTensor("token_embd.weight"); t && t->shape.size() == 2) {
    c.n_vocab = static_cast<int64_t>(t->shape[0]);
  } else if (auto toks = g.GetStringArray("tokenizer.ggml.tokens"); toks.ok()) {
    c.n_vocab = static_cast<int64_t>(toks->size());
  }
  SPOOL_TRY(ReadGgufRopeScaling(src, *entry, p, &c));
  c.rope_style = entry->gguf_rope;
  // Q/K/V biases: Qwen2 always; llama.cpp's llama loads them when present too.
  c.qkv_bias = src.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = entry->qk_norm;
  c.qk_norm_full = entry->qk_norm_full;  // OLMoE: over the whole q / k projection
  c.layers.assign(static_cast<size_t>(std::clamp<int64_t>(c.n_layer, 0, 1024)), LayerSpec{});
  if (n_expert > 0) SPOOL_TRY(ReadGgufMoe(src, *entry, p, n_expert, &c));
  c.tied_embeddings = src.FindTensor("output.weight") == nullptr;
  switch (entry->family) {
    case Family::kPlain: break;
    case Family::kGptOss: SPOOL_TRY(GptOssFromGguf(src, p, &c)); break;
    case Family::kQwen3Next: SPOOL_TRY(Qwen3NextFromGguf(src, p, &c)); break;
    case Family::kQwen35: SPOOL_TRY(Qwen35FromGguf(src, p, &c)); break;
    case Family::kGemma2:
    case Family::kGemma3: SPOOL_TRY(GemmaFromGguf(src, *entry, p, &c)); break;
  }
  SPOOL_TRY(CheckNoUnusedTensors(src, c));
  return c;
}

// transformers' yarn (modeling_rope_utils.py _compute_yarn_parameters and the config
// standardisation before it): original_max_position_embeddings defaults to
// max_position_embeddings, factor to max_position_embeddings / original; beta_fast and
// beta_slow default (also when 0) to 32 and 1; truncate to true; attention_factor, when
// absent, is mscale(factor, mscale) / mscale(factor, mscale_all_dim) if both are given
// and non-zero, else mscale(factor) = 0.1·ln(factor) + 1 (1 for factor <= 1), computed
// in double as Python does. Values transformers would only warn about but that make
// the frequencies meaningless (factor <= 0, original context outside [1, max
// positions], beta_fast <= beta_slow, NaN) are refused, naming the field.
Status ReadHfYarn(const nlohmann::ordered_json& rs, const std::string& where, ModelConfig* c) {
  RopeScaling& s = c->rope_scaling;
  s.kind = RopeScaling::Kind::kYarn;
  auto field = [&](const char* k) -> const nlohmann::ordered_json* {
    return rs.contains(k) && !rs[k].is_null() ? &rs[k] : nullptr;
  };
  auto number = [&](const char* k, double* out) -> Status {
    const auto* v = field(k);
    if (!v) return Status::Ok();
    if (!v->is_number()) return InvalidFile(where + ": rope_scaling." + k + " must be a number");
    *out = v->get<double>();
    if (!std::isfinite(*out)) return InvalidFile(where + ": rope_scaling." + k + " is not finite");
    return Status::Ok();
  };
  int64_t original = c->n_ctx_train;
  if (const auto* v = field("original_max_position_embeddings")) {
    if (!v->is_number_integer())
      return InvalidFile(where + ": rope_scaling.original_max_position_embeddings must be an integer");
    original = v->get<int64_t>();
  }
  if (original <= 0 || original > c->n_ctx_train)
    return InvalidFile(where + ": rope_scaling.original_max_position_embeddings is " + std::to_string(original) +
                       ", expected 1 to max_position_embeddings " + std::to_string(c->n_ctx_train));
  s.original_max_position = original;
  double factor = static_cast<double>(c->n_ctx_train) / static_cast<double>(original);
  SPOOL_TRY(number("factor", &factor));
  if (!(factor > 0))
    return InvalidFile(where + ": rope_scaling.factor is " + std::to_string(factor) + ", expected a positive number");
  s.factor = static_cast<float>(factor);
  double beta_fast = 0, beta_slow = 0;
  SPOOL_TRY(number("beta_fast", &beta_fast));
  SPOOL_TRY(number("beta_slow", &beta_slow));
  if (beta_fast == 0) beta_fast = 32;  // Python's `or`: 0 means the default too
  if (beta_slow == 0) beta_slow = 1;
  if (!(beta_fast > beta_slow) || !(beta_slow > 0))
    return InvalidFile(where + ": rope_scaling.beta_fast " + std::to_string(beta_fast) + " and beta_slow " +
                       std::to_string(beta_slow) + ": expected beta_fast > beta_slow > 0");
  s.beta_fast = static_cast<float>(beta_fast);
  s.beta_slow = static_cast<float>(beta_slow);
  s.truncate = true;
  if (const auto* v = field("truncate")) {
    if (!v->is_boolean()) return InvalidFile(where + ": rope_scaling.truncate must be true or false");
    s.truncate = v->get<bool>();
  }
  auto mscale_of = [&](double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; };
  double attention = 0, mscale = 0, mscale_all_dim = 0;
  SPOOL_TRY(number("mscale", &mscale));
  SPOOL_TRY(number("mscale_all_dim", &mscale_all_dim));
  if (field("attention_factor")) {
    SPOOL_TRY(number("attention_factor", &attention));
    if (!(attention > 0))
      return InvalidFile(where + ": rope_scaling.attention_factor is " + std::to_string(attention) +
                         ", expected a positive number");
  } else if (mscale != 0 && mscale_all_dim != 0) {
    attention = mscale_of(mscale) / mscale_of(mscale_all_dim);
  } else {
    attention = mscale_of(1.0);
  }
  if (!(attention > 0) || !std::isfinite(attention))
    return InvalidFile(where + ": rope_scaling gives the attention factor " + std::to_string(attention) +
                       " (from mscale/mscale_all_dim), expected a positive number");
  s.attention_factor = static_cast<float>(attention);
  return Status::Ok();
}

// Layer specs and MoE parameters from config.json (n_layer and n_ff already read).
Status MoeFromHf(const ArchEntry& a, const nlohmann::ordered_json& j, const std::string& where, ModelConfig* c) {
  c->layers.assign(static_cast<size_t>(std::clamp<int64_t>(c->n_layer, 0, 1024)), LayerSpec{});
  if (a.moe == MoeLayers::kNone) return Status::Ok();
  auto get_int = [&](const char* key, int64_t def) -> Result<int64_t> {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_number_integer()) return InvalidFile(where + ": field '" + key + "' must be an integer");
    return j[key].get<int64_t>();
  };
  MoeSpec& m = c->moe;
  // transformers writes num_local_experts for Mixtral (and, 5.x, for Qwen3-MoE); hub
  // Qwen/OLMoE checkpoints write num_experts.
  SPOOL_ASSIGN_OR_RETURN(m.n_expert, get_int("num_local_experts", 0));
  SPOOL_ASSIGN_OR_RETURN(m.n_expert, get_int("num_experts", m.n_expert));
  SPOOL_ASSIGN_OR_RETURN(m.n_expert_used, get_int("num_experts_per_tok", 0));
  SPOOL_ASSIGN_OR_RETURN(m.n_ff_expert, get_int("moe_intermediate_size", c->n_ff));
  if (a.shared_expert) {
    SPOOL_ASSIGN_OR_RETURN(m.n_ff_shared, get_int("shared_expert_intermediate_size", 0));
  }
  if (a.moe == MoeLayers::kAll) {
    m.norm_topk_prob = std::string(a.id) == "mixtral";  // Mixtral always renormalises
  }
  if (j.contains("norm_topk_prob") && j["norm_topk_prob"].is_boolean()) m.norm_topk_prob = j["norm_topk_prob"].get<bool>();
  if (a.shared_expert && m.n_ff_shared <= 0)
    return InvalidFile(where + ": shared_expert_intermediate_size must be positive, got " + std::to_string(m.n_ff_shared));
  int64_t step = 1;
  std::vector<int64_t> dense_only;
  if (a.moe == MoeLayers::kSparseStep) {
    SPOOL_ASSIGN_OR_RETURN(step, get_int("decoder_sparse_step", 1));
    if (step <= 0) return InvalidFile(where + ": decoder_sparse_step must be positive, got " + std::to_string(step));
    if (j.contains("mlp_only_layers") && !j["mlp_only_layers"].is_null()) {
      if (!j["mlp_only_layers"].is_array()) return InvalidFile(where + ": mlp_only_layers must be an array of integers");
      for (auto& v : j["mlp_only_layers"]) {
        if (!v.is_number_integer()) return InvalidFile(where + ": mlp_only_layers must be an array of integers");
        dense_only.push_back(v.get<int64_t>());
      }
    }
  }
  for (int64_t l = 0; l < static_cast<int64_t>(c->layers.size()); ++l) {
    const bool sparse = m.n_expert > 0 && (l + 1) % step == 0 &&
                        std::find(dense_only.begin(), dense_only.end(), l) == dense_only.end();
    c->layers[l].ffn = sparse ? FfnKind::kMoe : FfnKind::kDense;
  }
  return Status::Ok();
}

// One RoPE parameter dict of a Gemma 3 config (transformers 5's
// rope_parameters.{sliding_attention,full_attention}, or the legacy top-level
// rope_scaling): rope_type default or linear (factor); rope_theta when present.
Status GemmaRope(const nlohmann::ordered_json& rp, const std::string& where, const std::string& field, float* theta,
                 RopeScaling* scaling) {
  if (!rp.is_object()) return InvalidFile(where + ": " + field + " must be an object");
  if (rp.contains("rope_theta") && !rp["rope_theta"].is_null()) {
    if (!rp["rope_theta"].is_number()) return InvalidFile(where + ": " + field + ".rope_theta must be a number");
    *theta = rp["rope_theta"].get<float>();
  }
  std::string type = "default";
  for (const char* k : {"rope_type", "type"})
    if (rp.contains(k) && rp[k].is_string()) type = rp[k].get<std::string>();
  if (type == "default") return Status::Ok();
  if (type != "linear")
    return Unsupported(where + ": " + field + " rope type '" + type + "' is not supported for Gemma (default, linear)");
  if (!rp.contains("factor") || !rp["factor"].is_number())
    return InvalidFile(where + ": " + field + " has rope type linear without a numeric 'factor'");
  scaling->kind = RopeScaling::Kind::kLinear;
  scaling->factor = rp["factor"].get<float>();
  if (!(scaling->factor > 0) || !std::isfinite(scaling->factor))
    return InvalidFile(where + ": " + field + ".factor is " + std::to_string(scaling->factor) + ", expected > 0");
  return Status::Ok();
}

// Gemma 2 / Gemma 3 text (transformers' Gemma2Config, Gemma3TextConfig; defaults as
// theirs): (1 + w) RMSNorms, four per layer; GeGLU (hidden_activation
// gelu_pytorch_tanh only); score scale query_pre_attn_scalar^-0.5; embeddings ×
// √hidden_size rounded to the embedding's dtype (transformers multiplies by
// embed_scale.to(weight.dtype)); soft-capping (Gemma 2 by default); per-layer
// sliding/full attention from layer_types, else Gemma 2 alternates (layer 0 sliding)
// and Gemma 3 follows sliding_window_pattern (default 6: every 6th layer global);
// Gemma 3's local layers use rope_local_base_freq (10000) unscaled, the global ones
// rope_theta (1e6) with rope_scaling. A window at least as long as the context acts
// as full attention (the mask is exact either way).
Status GemmaFromHf(const ArchEntry& a, const formats::ModelSource& src, const std::string& where, ModelConfig* c) {
  const auto& j = src.hf_config;
  const bool g3 = a.family == Family::kGemma3;
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto number = [&](const char* k, double def, double* out) -> Status {
    *out = def;
    if (!present(k)) return Status::Ok();
    if (!j[k].is_number()) return InvalidFile(where + ": field '" + std::string(k) + "' must be a number");
    *out = j[k].get<double>();
    if (!std::isfinite(*out) || *out <= 0)
      return InvalidFile(where + ": field '" + std::string(k) + "' is " + std::to_string(*out) + ", expected > 0");
    return Status::Ok();
  };
  c->norm_plus_one = true;
  c->sandwich_norms = true;
  std::string act = "gelu_pytorch_tanh";
  for (const char* k : {"hidden_act", "hidden_activation"})
    if (present(k)) {
      if (!j[k].is_string()) return InvalidFile(where + ": field '" + std::string(k) + "' must be a string");
      act = j[k].get<std::string>();
    }
  if (act != "gelu_pytorch_tanh")
    return Unsupported(where + ": hidden_activation '" + act + "' is not supported for " + c->arch +
                       " (supported: gelu_pytorch_tanh)");
  c->ffn_act = FfnAct::kGeluTanh;
  if (!j.contains("tie_word_embeddings")) c->tied_embeddings = true;  // transformers' default for Gemma
  double scalar = 0;
  SPOOL_TRY(number("query_pre_attn_scalar", 256, &scalar));
  c->attn_scale = static_cast<float>(std::pow(scalar, -0.5));  // Python's float, then f32 in the multiply
  double cap = 0;
  // A missing key takes Gemma2Config's default (50, 30); null means none.
  if (!j.contains("attn_logit_softcapping") && !g3) cap = 50;
  else SPOOL_TRY(number("attn_logit_softcapping", 0, &cap));
  c->attn_softcap = static_cast<float>(cap);
  if (!j.contains("final_logit_softcapping") && !g3) cap = 30;
  else SPOOL_TRY(number("final_logit_softcapping", 0, &cap));
  c->final_softcap = static_cast<float>(cap);
  if (j.contains("use_bidirectional_attention") && j["use_bidirectional_attention"].is_boolean() &&
      j["use_bidirectional_attention"].get<bool>())
    return Unsupported(where + ": use_bidirectional_attention (EmbeddingGemma) is not supported");
  // Embedding scale: sqrt in Python's double, a f32 tensor, then rounded to the
  // embedding weight's dtype.
  float scale = static_cast<float>(std::sqrt(static_cast<double>(c->n_embd)));
  if (const auto* t = src.FindTensor("model.embed_tokens.weight")) {
    if (t->dtype == DType::kBF16) scale = BF16ToF32(F32ToBF16(scale));
    else if (t->dtype == DType::kF16) scale = F16ToF32(F32ToF16(scale));
  }
  c->embd_scale = scale;

  // Which layers slide.
  const int64_t L = static_cast<int64_t>(c->layers.size());
  std::vector<bool> sliding(static_cast<size_t>(L));
  if (present("layer_types")) {
    if (!j["layer_types"].is_array() || static_cast<int64_t>(j["layer_types"].size()) != c->n_layer)
      return InvalidFile(where + ": layer_types must be an array of num_hidden_layers (" + std::to_string(c->n_layer) +
                         ") strings");
    for (int64_t l = 0; l < L; ++l) {
      const auto& v = j["layer_types"][l];
      const std::string t = v.is_string() ? v.get<std::string>() : "";
      if (t != "sliding_attention" && t != "full_attention")
        return InvalidFile(where + ": layer_types[" + std::to_string(l) + "] is " + v.dump() +
                           ", expected \"sliding_attention\" or \"full_attention\"");
      sliding[l] = t == "sliding_attention";
    }
  } else if (g3) {
    int64_t pattern = 6;
    if (present("sliding_window_pattern")) {
      if (!j["sliding_window_pattern"].is_number_integer() || j["sliding_window_pattern"].get<int64_t>() <= 0)
        return InvalidFile(where + ": sliding_window_pattern must be a positive integer");
      pattern = j["sliding_window_pattern"].get<int64_t>();
    }
    for (int64_t l = 0; l < L; ++l) sliding[l] = (l + 1) % pattern != 0;
  } else {
    for (int64_t l = 0; l < L; ++l) sliding[l] = l % 2 == 0;
  }
  int64_t window = 4096;  // transformers' default
  if (j.contains("sliding_window")) {
    if (j["sliding_window"].is_null()) {
      window = 0;
    } else if (!j["sliding_window"].is_number_integer() || j["sliding_window"].get<int64_t>() <= 0) {
      return InvalidFile(where + ": sliding_window must be a positive integer, got " + j["sliding_window"].dump());
    } else {
      window = j["sliding_window"].get<int64_t>();
    }
  }

  // RoPE per layer type (Gemma 3); Gemma 2 has one RoPE (already read).
  float local_theta = 10000.0f;
  RopeScaling local_scaling;
  if (g3) {
    float global_theta = 1000000.0f;
    RopeScaling global_scaling;
    const nlohmann::ordered_json* rp = present("rope_parameters") ? &j["rope_parameters"] : nullptr;
    if (rp && rp->is_object() && (rp->contains("sliding_attention") || rp->contains("full_attention"))) {
      if (rp->contains("full_attention"))
        SPOOL_TRY(GemmaRope((*rp)["full_attention"], where, "rope_parameters.full_attention", &global_theta, &global_scaling));
      if (rp->contains("sliding_attention"))
        SPOOL_TRY(GemmaRope((*rp)["sliding_attention"], where, "rope_parameters.sliding_attention", &local_theta,
                            &local_scaling));
    } else {  // legacy keys (hub configs)
      double v = 0;
      SPOOL_TRY(number("rope_theta", 1000000.0, &v));
      global_theta = static_cast<float>(v);
      SPOOL_TRY(number("rope_local_base_freq", 10000.0, &v));
      local_theta = static_cast<float>(v);
      if (present("rope_scaling")) SPOOL_TRY(GemmaRope(j["rope_scaling"], where, "rope_scaling", &global_theta, &global_scaling));
      else if (rp) SPOOL_TRY(GemmaRope(*rp, where, "rope_parameters", &global_theta, &global_scaling));
    }
    c->rope_theta = global_theta;
    c->rope_scaling = global_scaling;
  }
  for (int64_t l = 0; l < L; ++l) {
    if (!sliding[l]) continue;
    if (window == 0)
      return InvalidFile(where + ": sliding_window is null but layer " + std::to_string(l) + " is a sliding_attention layer");
    LayerSpec& s = c->layers[l];
    s.mixer = MixerKind::kSlidingAttention;
    s.window = window;
    if (g3) {
      s.rope_theta = local_theta;
      s.rope_scaling = local_scaling;
    }
  }
  return Status::Ok();
}

// gpt-oss (transformers' GptOssConfig; defaults as its): attention_bias (default
// true) gives q/k/v and o biases; `sinks` per layer; every layer MoE
// (num_local_experts, num_experts_per_tok, intermediate_size per expert) with a biased
// router whose top-k logits are softmaxed; swiglu_alpha (1.702), swiglu_limit (7);
// layer_types (default: even layers sliding) with sliding_window (128); RoPE θ
// default 150000 and yarn (factor 32, truncate false, original 4096) when config.json
// names no RoPE. Experts must be MXFP4 (`*_blocks` / `*_scales`, the released
// checkpoints): the unquantised layout (gate_up_proj [E, D, 2F], transposed) is refused.
Status GptOssFromHf(const formats::ModelSource& src, const std::string& where, ModelConfig* c) {
  const auto& j = src.hf_config;
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto number = [&](const char* k, float* out) -> Status {
    if (!present(k)) return Status::Ok();
    if (!j[k].is_number()) return InvalidFile(where + ": field '" + std::string(k) + "' must be a number");
    *out = j[k].get<float>();
    if (!std::isfinite(*out) || *out <= 0)
      return InvalidFile(where + ": field '" + std::string(k) + "' is " + std::to_string(*out) + ", expected > 0");
    return Status::Ok();
  };
  c->ffn_act = FfnAct::kSwiGluOai;
  c->attn_sinks = true;
  c->qkv_bias = true;
  if (present("attention_bias") && j["attention_bias"].is_boolean()) c->qkv_bias = j["attention_bias"].get<bool>();
  c->o_bias = c->qkv_bias;
  c->moe.softmax_after_topk = true;
  c->moe.router_bias = true;
  c->moe.expert_bias = true;
  c->moe.norm_topk_prob = false;
  SPOOL_TRY(number("swiglu_alpha", &c->swiglu_alpha));
  SPOOL_TRY(number("swiglu_limit", &c->swiglu_limit));
  if (present("hidden_act") && (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu"))
    return Unsupported(where + ": hidden_act " + j["hidden_act"].dump() + " is not supported for gpt-oss (silu)");
  // RoPE defaults of GptOssConfig when config.json names none.
  const bool has_theta = present("rope_theta") ||
                         (present("rope_parameters") && j["rope_parameters"].is_object() &&
                          j["rope_parameters"].contains("rope_theta"));
  if (!has_theta) c->rope_theta = 150000.0f;
  if (!present("rope_parameters") && !present("rope_scaling")) {
    nlohmann::ordered_json d = {{"rope_type", "yarn"}, {"factor", 32.0}, {"beta_fast", 32.0}, {"beta_slow", 1.0},
                                {"truncate", false}, {"original_max_position_embeddings", 4096}};
    if (c->n_ctx_train >= 4096) SPOOL_TRY(ReadHfYarn(d, where, c));
  }
  // Which layers slide.
  const int64_t L = static_cast<int64_t>(c->layers.size());
  int64_t window = 128;
  if (j.contains("sliding_window")) {
    if (j["sliding_window"].is_null()) window = 0;
    else if (!j["sliding_window"].is_number_integer() || j["sliding_window"].get<int64_t>() <= 0)
      return InvalidFile(where + ": sliding_window must be a positive integer, got " + j["sliding_window"].dump());
    else window = j["sliding_window"].get<int64_t>();
  }
  for (int64_t l = 0; l < L; ++l) {
    bool sliding = l % 2 == 0;
    if (present("layer_types")) {
      if (!j["layer_types"].is_array() || static_cast<int64_t>(j["layer_types"].size()) != c->n_layer)
        return InvalidFile(where + ": layer_types must be an array of num_hidden_layers (" + std::to_string(c->n_layer) +
                           ") strings");
      const auto& v = j["layer_types"][l];
      const std::string t = v.is_string() ? v.get<std::string>() : "";
      if (t != "sliding_attention" && t != "full_attention")
        return InvalidFile(where + ": layer_types[" + std::to_string(l) + "] is " + v.dump() +
                           ", expected \"sliding_attention\" or \"full_attention\"");
      sliding = t == "sliding_attention";
    }
    if (!sliding) continue;
    if (window == 0)
      return InvalidFile(where + ": sliding_window is null but layer " + std::to_string(l) + " is a sliding_attention layer");
    c->layers[l].mixer = MixerKind::kSlidingAttention;
    c->layers[l].window = window;
  }
  return Status::Ok();
}

// Qwen3-Next (transformers' Qwen3NextConfig): layer_types (or full_attention_interval,
// default 4: every 4th layer full attention) says which layers are Gated DeltaNet;
// linear_* sizes; partial_rotary_factor (default 0.25) of head_dim rotated; every
// RMSNorm but the DeltaNet's gated output norm is (1 + w); the full-attention layers'
// q projection carries an output gate.
Status Qwen3NextFromHf(const nlohmann::ordered_json& j, const std::string& where, ModelConfig* c) {
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto get_int = [&](const char* key, int64_t def, int64_t* out) -> Status {
    *out = def;
    if (!present(key)) return Status::Ok();
    if (!j[key].is_number_integer()) return InvalidFile(where + ": field '" + std::string(key) + "' must be an integer");
    *out = j[key].get<int64_t>();
    return Status::Ok();
  };
  c->norm_plus_one = true;
  c->attn_output_gate = true;
  if (c->qkv_bias) return Unsupported(where + ": attention_bias true is not supported for " + c->arch);
  if (present("hidden_act") && (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu"))
    return Unsupported(where + ": hidden_act " + j["hidden_act"].dump() + " is not supported for " + c->arch + " (only silu)");
  LinearAttnSpec& s = c->linear;
  SPOOL_TRY(get_int("linear_num_key_heads", 16, &s.n_k_heads));
  SPOOL_TRY(get_int("linear_num_value_heads", 32, &s.n_v_heads));
  SPOOL_TRY(get_int("linear_key_head_dim", 128, &s.k_head_dim));
  SPOOL_TRY(get_int("linear_value_head_dim", 128, &s.v_head_dim));
  SPOOL_TRY(get_int("linear_conv_kernel_dim", 4, &s.conv_kernel));
  double partial = 0.25;
  for (const nlohmann::ordered_json* o : {&j, present("rope_parameters") ? &j["rope_parameters"] : nullptr}) {
    if (!o || !o->is_object() || !o->contains("partial_rotary_factor") || (*o)["partial_rotary_factor"].is_null()) continue;
    if (!(*o)["partial_rotary_factor"].is_number())
      return InvalidFile(where + ": partial_rotary_factor must be a number");
    partial = (*o)["partial_rotary_factor"].get<double>();
  }
  if (!(partial > 0 && partial <= 1))
    return InvalidFile(where + ": partial_rotary_factor is " + std::to_string(partial) + ", expected (0, 1]");
  c->rope_dim = static_cast<int64_t>(static_cast<double>(c->head_dim) * partial);  // int(head_dim * factor), as transformers
  const int64_t L = static_cast<int64_t>(c->layers.size());
  if (present("layer_types")) {
    if (!j["layer_types"].is_array() || static_cast<int64_t>(j["layer_types"].size()) != c->n_layer)
      return InvalidFile(where + ": layer_types must be an array of num_hidden_layers (" + std::to_string(c->n_layer) +
                         ") strings");
    for (int64_t l = 0; l < L; ++l) {
      const auto& v = j["layer_types"][l];
      const std::string t = v.is_string() ? v.get<std::string>() : "";
      if (t != "linear_attention" && t != "full_attention")
        return InvalidFile(where + ": layer_types[" + std::to_string(l) + "] is " + v.dump() +
                           ", expected \"linear_attention\" or \"full_attention\"");
      if (t == "linear_attention") c->layers[l].mixer = MixerKind::kLinearAttention;
    }
  } else {
    int64_t interval = 4;
    SPOOL_TRY(get_int("full_attention_interval", 4, &interval));
    if (interval <= 0) return InvalidFile(where + ": full_attention_interval must be positive");
    for (int64_t l = 0; l < L; ++l)
      if ((l + 1) % interval != 0) c->layers[l].mixer = MixerKind::kLinearAttention;
  }
  return Status::Ok();
}

// Qwen3.5 / Qwen3.5-MoE text (transformers' Qwen3_5TextConfig, Qwen3_5MoeTextConfig):
// Qwen3-Next's fields, plus
//  - the DeltaNet projections ungrouped (in_proj_qkv, in_proj_z, in_proj_b, in_proj_a);
//  - RoPE `rope_parameters.mrope_section` (default [11, 11, 10]) / `mrope_interleaved`:
//    Qwen3_5TextRotaryEmbedding builds per-section frequencies for (t, h, w) positions,
//    but a text token's three positions are equal (Qwen3_5TextModel expands one position
//    id to all of them), so every section rotates by the same angle and the result is
//    the plain partial RoPE, bit for bit. The sections must be 3 non-negative integers
//    summing to rope_dim / 2 (both released configs: [11, 11, 10] over 64 rotated dims);
//  - Qwen3.5-MoE: every layer MoE (no decoder_sparse_step / mlp_only_layers), top-k
//    always renormalised (Qwen3_5MoeTopKRouter divides by the sum; no norm_topk_prob
//    field), no intermediate_size (no dense layer: n_ff defaults to moe_intermediate_size,
//    only scratch sizing reads it).
Status Qwen35FromHf(const nlohmann::ordered_json& j, const std::string& where, ModelConfig* c) {
  SPOOL_TRY(Qwen3NextFromHf(j, where, c));
  c->linear.ungrouped = true;
  if (c->arch == "qwen35moe") {
    // No intermediate_size to fall back on (MoeFromHf's default): the experts' size is required.
    if (!j.contains("moe_intermediate_size") || !j["moe_intermediate_size"].is_number_integer())
      return InvalidFile(where + ": missing field 'moe_intermediate_size' (an integer: each expert's intermediate size)");
    c->moe.norm_topk_prob = true;
    if (c->n_ff == 0) c->n_ff = c->moe.n_ff_expert;
  }
  const nlohmann::ordered_json* rp = j.contains("rope_parameters") && j["rope_parameters"].is_object()
                                         ? &j["rope_parameters"]
                                         : (j.contains("rope_scaling") && j["rope_scaling"].is_object() ? &j["rope_scaling"] : nullptr);
  std::vector<int64_t> sections = {11, 11, 10};  // Qwen3_5TextRotaryEmbedding's default
  if (rp && rp->contains("mrope_section") && !(*rp)["mrope_section"].is_null()) {
    const auto& ms = (*rp)["mrope_section"];
    if (!ms.is_array() || ms.size() != 3)
      return InvalidFile(where + ": rope_parameters.mrope_section must be an array of 3 integers (t, h, w), got " + ms.dump());
    sections.clear();
    for (const auto& v : ms) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        return InvalidFile(where + ": rope_parameters.mrope_section " + ms.dump() + " must hold non-negative integers");
      sections.push_back(v.get<int64_t>());
    }
  }
  if (rp && rp->contains("mrope_interleaved") && !(*rp)["mrope_interleaved"].is_boolean())
    return InvalidFile(where + ": rope_parameters.mrope_interleaved must be a boolean, got " + (*rp)["mrope_interleaved"].dump());
  const int64_t sum = sections[0] + sections[1] + sections[2];
  if (sum != c->rope_dim / 2)
    return InvalidFile(where + ": rope_parameters.mrope_section [" + std::to_string(sections[0]) + ", " +
                       std::to_string(sections[1]) + ", " + std::to_string(sections[2]) + "] sums to " +
                       std::to_string(sum) + ", expected rotated dims / 2 = " + std::to_string(c->rope_dim / 2) +
                       " (head_dim " + std::to_string(c->head_dim) + " × partial_rotary_factor)");
  return Status::Ok();
}

Result<ModelConfig> FromHf(const formats::ModelSource& src) {
  const auto& j = src.hf_config;
  const std::string where = src.root + "/config.json";
  if (!j.is_object()) return InvalidFile(where + ": not a JSON object");
  std::string cls;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    cls = j["architectures"][0].get<std::string>();
  if (IsMultimodalClass(cls))  // ModelWeights::Load extracts the text model first
    return Unsupported(where + ": " + cls + " is read through its text model "
                       "(models::ExtractTextModel), not as a config of its own");
  const ArchEntry* entry = nullptr;
  for (auto& a : kArchs)
    if (cls == a.hf_class) entry = &a;
  if (!entry) {
    std::string mt = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
    for (auto& a : kArchs)
      if (cls.empty() && mt == a.model_type) entry = &a;
    if (!entry)
      return Unsupported(where + ": architecture '" + (cls.empty() ? mt : cls) + "' is not supported (supported: " +
                         SupportedList() + ")");
  }
  ModelConfig c;
  c.arch = entry->id;
  c.hf_class = entry->hf_class;
  auto get_int = [&](const char* key, int64_t* out, bool required) -> Status {
    if (!j.contains(key) || j[key].is_null()) {
      if (required) return InvalidFile(where + ": missing field '" + key + "'");
      return Status::Ok();
    }
    if (!j[key].is_number_integer()) return InvalidFile(where + ": field '" + key + "' must be an integer");
    *out = j[key].get<int64_t>();
    return Status::Ok();
  };
  auto get_float = [&](const char* key, float* out) -> Status {
    if (!j.contains(key) || j[key].is_null()) return Status::Ok();
    if (!j[key].is_number()) return InvalidFile(where + ": field '" + key + "' must be a number");
    *out = j[key].get<float>();
    return Status::Ok();
  };
  SPOOL_TRY(get_int("num_hidden_layers", &c.n_layer, true));
  SPOOL_TRY(get_int("hidden_size", &c.n_embd, true));
  // Qwen3.5-MoE has no dense MLP and no intermediate_size (Qwen35FromHf fills n_ff).
  SPOOL_TRY(get_int("intermediate_size", &c.n_ff, std::string(entry->id) != "qwen35moe"));
  SPOOL_TRY(get_int("num_attention_heads", &c.n_head, true));
  c.n_head_kv = c.n_head;
  SPOOL_TRY(get_int("num_key_value_heads", &c.n_head_kv, false));
  SPOOL_TRY(get_int("vocab_size", &c.n_vocab, true));
  c.n_ctx_train = 2048;
  SPOOL_TRY(get_int("max_position_embeddings", &c.n_ctx_train, false));
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  SPOOL_TRY(get_int("head_dim", &c.head_dim, false));
  c.rope_dim = c.head_dim;
  SPOOL_TRY(get_float("rms_norm_eps", &c.rms_eps));
  SPOOL_TRY(get_float("rope_theta", &c.rope_theta));
  // transformers 5 may nest rope parameters under rope_parameters.
  const nlohmann::ordered_json* rs = nullptr;
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) rs = &j["rope_scaling"];
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const auto& rp = j["rope_parameters"];
    if (rp.contains("rope_theta") && rp["rope_theta"].is_number()) c.rope_theta = rp["rope_theta"].get<float>();
    if (!rs) rs = &rp;
  }
  if (rs) {
    std::string type;
    for (const char* k : {"rope_type", "type"})
      if (rs->contains(k) && (*rs)[k].is_string()) type = (*rs)[k].get<std::string>();
    auto num = [&](const char* k, float def) {
      return rs->contains(k) && (*rs)[k].is_number() ? (*rs)[k].get<float>() : def;
    };
    if (type == "llama3") {
      c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
      c.rope_scaling.factor = num("factor", 8.0f);
      c.rope_scaling.low_freq_factor = num("low_freq_factor", 1.0f);
      c.rope_scaling.high_freq_factor = num("high_freq_factor", 4.0f);
      c.rope_scaling.original_max_position = static_cast<int64_t>(num("original_max_position_embeddings", 8192));
    } else if (type == "linear") {
      c.rope_scaling.kind = RopeScaling::Kind::kLinear;
      c.rope_scaling.factor = num("factor", 1.0f);
    } else if (type == "yarn") {
      SPOOL_TRY(ReadHfYarn(*rs, where, &c));
    } else if (!type.empty() && type != "default") {
      return Unsupported(where + ": rope scaling type '" + type +
                         "' is not supported (supported: default, linear, llama3, yarn)");
    }
  }
  c.rope_style = RopeStyle::kNeox;
  c.qkv_bias = entry->qkv_bias;
  for (const char* k : {"attention_bias", "qkv_bias"})
    if (j.contains(k) && j[k].is_boolean()) c.qkv_bias = j[k].get<bool>();
  c.qk_norm = entry->qk_norm;
  c.qk_norm_full = entry->qk_norm_full;
  if (j.contains("clip_qkv") && !j["clip_qkv"].is_null())
    return Unsupported(where + ": clip_qkv is not supported (only null)");
  SPOOL_TRY(MoeFromHf(*entry, j, where, &c));
  c.tied_embeddings = j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()
                          ? j["tie_word_embeddings"].get<bool>()
                          : false;
  if (!c.tied_embeddings && !src.FindTensor("lm_head.weight")) c.tied_embeddings = true;  // HF loads it tied
  // Family-specific fields (one function per family; kPlain has none).
  switch (entry->family) {
    case Family::kPlain: break;
    case Family::kGptOss: SPOOL_TRY(GptOssFromHf(src, where, &c)); break;
    case Family::kQwen3Next: SPOOL_TRY(Qwen3NextFromHf(j, where, &c)); break;
    case Family::kQwen35: SPOOL_TRY(Qwen35FromHf(j, where, &c)); break;
    case Family::kGemma2:
    case Family::kGemma3: SPOOL_TRY(GemmaFromHf(*entry, src, where, &c)); break;
  }
  // Mistral: `sliding_window` (an integer) applies to every layer.
  if (c.arch == "mistral" && j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    if (!j["sliding_window"].is_number_integer() || j["sliding_window"].get<int64_t>() <= 0)
      return InvalidFile(where + ": sliding_window must be a positive integer or null, got " + j["sliding_window"].dump());
    for (LayerSpec& s : c.layers) {
      s.mixer = MixerKind::kSlidingAttention;
      s.window = j["sliding_window"].get<int64_t>();
    }
  }
  return c;
}

}  // namespace

Status ModelConfig::Validate(const std::string& source) const {
  auto bad = [&](const std::string& what) { return InvalidFile(source + ": " + what); };
  if (n_layer <= 0 || n_layer > 1024) return bad("layer count " + std::to_string(n_layer) + " is out of range [1, 1024]");
  if (n_embd <= 0 || n_embd > (1 << 20)) return bad("hidden size " + std::to_string(n_embd) + " is out of range");
  if (n_ff <= 0 || n_ff > (1 << 22)) return bad("feed-forward size " + std::to_string(n_ff) + " is out of range");
  if (n_head <= 0 || n_head > 4096) return bad("head count " + std::to_string(n_head) + " is out of range");
  if (n_head_kv <= 0 || n_head % n_head_kv != 0)
    return bad("KV head count " + std::to_string(n_head_kv) + " must divide head count " + std::to_string(n_head));
  if (head_dim <= 0 || head_dim > 1024 || head_dim % 2 != 0) return bad("head dimension " + std::to_string(head_dim) + " must be even and in [2, 1024]");
  if (rope_dim <= 0 || rope_dim > head_dim || rope_dim % 2 != 0) return bad("rope dimension " + std::to_string(rope_dim) + " is invalid");
  if (n_vocab <= 0 || n_vocab > (1 << 24)) return bad("vocabulary size " + std::to_string(n_vocab) + " is out of range");
  if (n_ctx_train <= 0) return bad("context length must be positive");
  if (!(rms_eps > 0) || !std::isfinite(rms_eps)) return bad("rms epsilon must be positive");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) return bad("rope theta must be positive");
  if (rope_scaling.kind != RopeScaling::Kind::kNone && !(rope_scaling.factor > 0 && std::isfinite(rope_scaling.factor)))
    return bad("rope scaling factor must be positive");
  if (rope_scaling.kind == RopeScaling::Kind::kYarn) {
    const RopeScaling& s = rope_scaling;
    if (s.original_max_position <= 0 || s.original_max_position > n_ctx_train)
      return bad("yarn original context " + std::to_string(s.original_max_position) + " is outside [1, " +
                 std::to_string(n_ctx_train) + "]");
    if (!(s.beta_fast > s.beta_slow && s.beta_slow > 0) || !std::isfinite(s.beta_fast))
      return bad("yarn beta_fast must exceed beta_slow > 0");
    if (!(s.attention_factor > 0 && std::isfinite(s.attention_factor)) ||
        !(s.ggml_attn_factor > 0 && std::isfinite(s.ggml_attn_factor)))
      return bad("yarn attention factor must be positive");
  }
  if (static_cast<int64_t>(layers.size()) != n_layer)
    return bad("layer specs: " + std::to_string(layers.size()) + " for " + std::to_string(n_layer) + " layers");
  for (int64_t l = 0; l < n_layer; ++l) {
    const LayerSpec& s = layers[l];
    const std::string at = "layer " + std::to_string(l) + ": ";
    if (s.mixer == MixerKind::kSlidingAttention && s.window <= 0)
      return bad(at + "sliding window " + std::to_string(s.window) + " must be positive");
    if (s.mixer != MixerKind::kSlidingAttention && s.window != 0) return bad(at + "a window on a layer that does not slide");
    if (!(s.rope_theta > 0) || !std::isfinite(s.rope_theta)) return bad(at + "rope theta must be positive");
    if (s.rope_scaling.kind != RopeScaling::Kind::kNone &&
        !(s.rope_scaling.factor > 0 && std::isfinite(s.rope_scaling.factor)))
      return bad(at + "rope scaling factor must be positive");
  }
  for (float v : {attn_scale, attn_softcap, final_softcap, embd_scale})
    if (!(v >= 0) || !std::isfinite(v)) return bad("attention scale, soft-capping and embedding scale must be finite and >= 0");
  if (has_linear()) {
    const LinearAttnSpec& s = linear;
    for (int64_t v : {s.n_k_heads, s.n_v_heads, s.k_head_dim, s.v_head_dim})
      if (v <= 0 || v > 4096)
        return bad("linear attention heads and head dimensions (" + std::to_string(s.n_k_heads) + ", " +
                   std::to_string(s.n_v_heads) + ", " + std::to_string(s.k_head_dim) + ", " +
                   std::to_string(s.v_head_dim) + ") must be in [1, 4096]");
    if (s.n_v_heads % s.n_k_heads != 0)
      return bad("linear attention value heads " + std::to_string(s.n_v_heads) + " must be a multiple of key heads " +
                 std::to_string(s.n_k_heads));
    if (s.conv_kernel < 2 || s.conv_kernel > 64)
      return bad("linear attention conv kernel " + std::to_string(s.conv_kernel) + " is out of range [2, 64]");
    if (delta_chunk < 1 || delta_chunk > 4096) return bad("delta-rule chunk " + std::to_string(delta_chunk) + " is out of range");
  }
  if (has_moe()) {
    if (moe.n_expert <= 0 || moe.n_expert > 4096) return bad("expert count " + std::to_string(moe.n_expert) + " is out of range [1, 4096]");
    if (moe.n_expert_used <= 0 || moe.n_expert_used > moe.n_expert)
      return bad("experts per token " + std::to_string(moe.n_expert_used) + " must be in [1, expert count " +
                 std::to_string(moe.n_expert) + "]");
    if (moe.n_ff_expert <= 0 || moe.n_ff_expert > (1 << 22)) return bad("expert feed-forward size " + std::to_string(moe.n_ff_expert) + " is out of range");
    if (moe.n_ff_shared < 0 || moe.n_ff_shared > (1 << 22)) return bad("shared expert feed-forward size " + std::to_string(moe.n_ff_shared) + " is out of range");
  }
  return Status::Ok();
}

bool ModelConfig::has_moe() const {
  for (auto& l : layers)
    if (l.ffn == FfnKind::kMoe) return true;
  return false;
}

bool ModelConfig::has_linear() const { return n_linear_layers() > 0; }

int64_t ModelConfig::n_linear_layers() const {
  int64_t n = 0;
  for (auto& l : layers) n += l.mixer == MixerKind::kLinearAttention;
  return n;
}

int64_t ModelConfig::kv_layer(int64_t l) const {
  if (layers[static_cast<size_t>(l)].mixer == MixerKind::kLinearAttention) return -1;
  int64_t slot = 0;
  for (int64_t i = 0; i < l; ++i) slot += layers[static_cast<size_t>(i)].mixer != MixerKind::kLinearAttention;
  return slot;
}

int64_t ModelConfig::max_ff() const {
  int64_t f = n_ff;
  if (has_moe()) f = std::max({f, moe.n_ff_expert, moe.n_ff_shared});
  return f;
}

int64_t ModelConfig::kv_tokens(int64_t layer, int64_t ctx) const {
  const LayerSpec& s = layers[static_cast<size_t>(layer)];
  if (s.mixer == MixerKind::kLinearAttention) return 0;
  return s.mixer == MixerKind::kSlidingAttention ? std::min(ctx, s.window) : ctx;
}

Result<ModelConfig> ReadModelConfig(const formats::ModelSource& src) {
  Result<ModelConfig> r = src.kind == formats::ModelSource::Kind::kGguf ? FromGguf(src) : FromHf(src);
  if (!r.ok()) return r;
  // Layers without a RoPE of their own use the model's.
  for (LayerSpec& s : r->layers)
    if (s.rope_theta == 0.0f) {
      s.rope_theta = r->rope_theta;
      s.rope_scaling = r->rope_scaling;
    }
  SPOOL_TRY(r->Validate(src.root));
  return r;
}

const char* RoleName(TensorRole role) {
  switch (role) {
    case TensorRole::kTokenEmbd: return "token_embd";
    case TensorRole::kOutputNorm: return "output_norm";
    case TensorRole::kOutput: return "output";
    case TensorRole::kAttnNorm: return "attn_norm";
    case TensorRole::kWq: return "attn_q";
    case TensorRole::kWk: return "attn_k";
    case TensorRole::kWv: return "attn_v";
    case TensorRole::kWo: return "attn_output";
    case TensorRole::kBq: return "attn_q.bias";
    case TensorRole::kBk: return "attn_k.bias";
    case TensorRole::kBv: return "attn_v.bias";
    case TensorRole::kQNorm: return "attn_q_norm";
    case TensorRole::kKNorm: return "attn_k_norm";
    case TensorRole::kFfnNorm: return "ffn_norm";
    case TensorRole::kWGate: return "ffn_gate";
    case TensorRole::kWUp: return "ffn_up";
    case TensorRole::kWDown: return "ffn_down";
    case TensorRole::kFfnRouter: return "ffn_gate_inp";
    case TensorRole::kShexpGate: return "ffn_gate_shexp";
    case TensorRole::kShexpUp: return "ffn_up_shexp";
    case TensorRole::kShexpDown: return "ffn_down_shexp";
    case TensorRole::kShexpRouter: return "ffn_gate_inp_shexp";
    case TensorRole::kPostAttnNorm: return "post_attention_norm";
    case TensorRole::kPostFfnNorm: return "post_ffw_norm";
    case TensorRole::kBo: return "attn_output.bias";
    case TensorRole::kSinks: return "attn_sinks";
    case TensorRole::kSsmInQkvz: return "ssm_in";
    case TensorRole::kSsmInBa: return "ssm_ba";
    case TensorRole::kSsmConv: return "ssm_conv1d";
    case TensorRole::kSsmDtBias: return "ssm_dt";
    case TensorRole::kSsmALog: return "ssm_a";
    case TensorRole::kSsmNorm: return "ssm_norm";
    case TensorRole::kSsmOut: return "ssm_out";
    case TensorRole::kSsmInQkv: return "attn_qkv";
    case TensorRole::kSsmInZ: return "attn_gate";
    case TensorRole::kSsmInB: return "ssm_beta";
    case TensorRole::kSsmInA: return "ssm_alpha";
  }
  return "?";
}

std::string TensorName(formats::ModelSource::Kind kind, TensorRole role, int64_t layer) {
  const bool gguf = kind == formats::ModelSource::Kind::kGguf;
  const std::string l = std::to_string(layer);
  const std::string gb = "blk." + l + ".";
  const std::string hb = "model.layers." + l + ".";
  switch (role) {
    case TensorRole::kTokenEmbd: return gguf ? "token_embd.weight" : "model.embed_tokens.weight";
    case TensorRole::kOutputNorm: return gguf ? "output_norm.weight" : "model.norm.weight";
    case TensorRole::kOutput: return gguf ? "output.weight" : "lm_head.weight";
    case TensorRole::kAttnNorm: return gguf ? gb + "attn_norm.weight" : hb + "input_layernorm.weight";
    case TensorRole::kWq: return gguf ? gb + "attn_q.weight" : hb + "self_attn.q_proj.weight";
    case TensorRole::kWk: return gguf ? gb + "attn_k.weight" : hb + "self_attn.k_proj.weight";
    case TensorRole::kWv: return gguf ? gb + "attn_v.weight" : hb + "self_attn.v_proj.weight";
    case TensorRole::kWo: return gguf ? gb + "attn_output.weight" : hb + "self_attn.o_proj.weight";
    case TensorRole::kBq: return gguf ? gb + "attn_q.bias" : hb + "self_attn.q_proj.bias";
    case TensorRole::kBk: return gguf ? gb + "attn_k.bias" : hb + "self_attn.k_proj.bias";
    case TensorRole::kBv: return gguf ? gb + "attn_v.bias" : hb + "self_attn.v_proj.bias";
    case TensorRole::kQNorm: return gguf ? gb + "attn_q_norm.weight" : hb + "self_attn.q_norm.weight";
    case TensorRole::kKNorm: return gguf ? gb + "attn_k_norm.weight" : hb + "self_attn.k_norm.weight";
    case TensorRole::kFfnNorm: return gguf ? gb + "ffn_norm.weight" : hb + "post_attention_layernorm.weight";
    case TensorRole::kWGate: return gguf ? gb + "ffn_gate.weight" : hb + "mlp.gate_proj.weight";
    case TensorRole::kWUp: return gguf ? gb + "ffn_up.weight" : hb + "mlp.up_proj.weight";
    case TensorRole::kWDown: return gguf ? gb + "ffn_down.weight" : hb + "mlp.down_proj.weight";
    case TensorRole::kFfnRouter: return gguf ? gb + "ffn_gate_inp.weight" : hb + "mlp.gate.weight";
    case TensorRole::kShexpGate: return gguf ? gb + "ffn_gate_shexp.weight" : hb + "mlp.shared_expert.gate_proj.weight";
    case TensorRole::kShexpUp: return gguf ? gb + "ffn_up_shexp.weight" : hb + "mlp.shared_expert.up_proj.weight";
    case TensorRole::kShexpDown: return gguf ? gb + "ffn_down_shexp.weight" : hb + "mlp.shared_expert.down_proj.weight";
    case TensorRole::kShexpRouter: return gguf ? gb + "ffn_gate_inp_shexp.weight" : hb + "mlp.shared_expert_gate.weight";
    case TensorRole::kPostAttnNorm: return gguf ? gb + "post_attention_norm.weight" : hb + "post_attention_layernorm.weight";
    case TensorRole::kPostFfnNorm: return gguf ? gb + "post_ffw_norm.weight" : hb + "post_feedforward_layernorm.weight";
    case TensorRole::kBo: return gguf ? gb + "attn_output.bias" : hb + "self_attn.o_proj.bias";
    case TensorRole::kSinks: return gguf ? gb + "attn_sinks.weight" : hb + "self_attn.sinks";
    // Gated DeltaNet (HF Qwen3-Next; GGUF names as llama.cpp's qwen3next).
    case TensorRole::kSsmInQkvz: return gguf ? gb + "ssm_in.weight" : hb + "linear_attn.in_proj_qkvz.weight";
    case TensorRole::kSsmInBa: return gguf ? gb + "ssm_ba.weight" : hb + "linear_attn.in_proj_ba.weight";
    case TensorRole::kSsmConv: return gguf ? gb + "ssm_conv1d.weight" : hb + "linear_attn.conv1d.weight";
    case TensorRole::kSsmDtBias: return gguf ? gb + "ssm_dt.bias" : hb + "linear_attn.dt_bias";
    case TensorRole::kSsmALog: return gguf ? gb + "ssm_a" : hb + "linear_attn.A_log";
    case TensorRole::kSsmNorm: return gguf ? gb + "ssm_norm.weight" : hb + "linear_attn.norm.weight";
    case TensorRole::kSsmOut: return gguf ? gb + "ssm_out.weight" : hb + "linear_attn.out_proj.weight";
    case TensorRole::kSsmInQkv: return gguf ? gb + "attn_qkv.weight" : hb + "linear_attn.in_proj_qkv.weight";
    case TensorRole::kSsmInZ: return gguf ? gb + "attn_gate.weight" : hb + "linear_attn.in_proj_z.weight";
    case TensorRole::kSsmInB: return gguf ? gb + "ssm_beta.weight" : hb + "linear_attn.in_proj_b.weight";
    case TensorRole::kSsmInA: return gguf ? gb + "ssm_alpha.weight" : hb + "linear_attn.in_proj_a.weight";
  }
  return "";
}

std::string TensorName(const ModelConfig& c, formats::ModelSource::Kind kind, TensorRole role, int64_t layer) {
  if (c.sandwich_norms && kind != formats::ModelSource::Kind::kGguf && role == TensorRole::kFfnNorm)
    return "model.layers." + std::to_string(layer) + ".pre_feedforward_layernorm.weight";
  if ((c.arch == "gpt-oss" || c.arch == "qwen3next" || c.arch == "qwen35" || c.arch == "qwen35moe") &&
      kind == formats::ModelSource::Kind::kGguf && role == TensorRole::kFfnNorm)
    return "blk." + std::to_string(layer) + ".post_attention_norm.weight";  // llama.cpp's openai-moe, qwen3next, qwen35*
  return TensorName(kind, role, layer);
}

}  // namespace spool::models

namespace spool::models {

std::string HfExpertTensorName(const ModelConfig& c, ExpertTensor t, int64_t layer, int64_t expert) {
  const ArchEntry* a = FindArch(c.arch);
  const HfExpertNames& n = a && a->experts ? *a->experts : kQwenExperts;
  const std::string hb = "model.layers." + std::to_string(layer) + ".";
  const std::string eb = hb + n.prefix + "experts." + std::to_string(expert) + ".";
  switch (t) {
    case ExpertTensor::kRouter: return hb + n.prefix + "gate.weight";
    case ExpertTensor::kGate: return eb + n.gate + ".weight";
    case ExpertTensor::kUp: return eb + n.up + ".weight";
    case ExpertTensor::kDown: return eb + n.down + ".weight";
    // The 3-D layout transformers 5 keeps in memory (and a raw state_dict holds).
    case ExpertTensor::kFusedRouter: return hb + "mlp.gate.weight";
    case ExpertTensor::kFusedGateUp: return hb + "mlp.experts.gate_up_proj";
    case ExpertTensor::kFusedDown: return hb + "mlp.experts.down_proj";
  }
  return "";
}

}  // namespace spool::models
