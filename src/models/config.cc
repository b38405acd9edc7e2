#include "models/config.h"

#include <algorithm>
#include <cmath>

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
// not, and whether the top-k weights are renormalised (llama.cpp fixes it per arch).
enum class GgufMoe { kNotRead, kNoRenorm, kRenorm };

struct ArchEntry {
  const char* id;         // ModelConfig::arch; general.architecture for GGUF
  const char* hf_class;   // config.json architectures[0]
  const char* model_type; // config.json model_type (when architectures is missing)
  RopeStyle gguf_rope;    // rope pairing of the GGUF conversion (HF is always kHalf)
  bool qkv_bias;
  bool qk_norm;
  bool qk_norm_full;      // q/k norm over the whole projection (OLMoE), not per head
  MoeLayers moe;
  bool shared_expert;     // Qwen2-MoE: a shared expert behind a sigmoid gate
  const HfExpertNames* experts;
  GgufMoe gguf_moe;
};

// The one table of supported architectures. Columns: id, HF class, model_type, GGUF
// rope, qkv_bias, qk_norm, qk_norm_full, / MoE layers, shared expert, expert names, GGUF MoE.
constexpr ArchEntry kArchs[] = {
    {"llama", "LlamaForCausalLM", "llama", RopeStyle::kInterleaved, false, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"mistral", "MistralForCausalLM", "mistral", RopeStyle::kInterleaved, false, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", RopeStyle::kNeox, true, false, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", RopeStyle::kNeox, false, true, false,
     MoeLayers::kNone, false, nullptr, GgufMoe::kNotRead},
    {"qwen2moe", "Qwen2MoeForCausalLM", "qwen2_moe", RopeStyle::kNeox, true, false, false,
     MoeLayers::kSparseStep, true, &kQwenExperts, GgufMoe::kNoRenorm},
    {"qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe", RopeStyle::kNeox, false, true, false,
     MoeLayers::kSparseStep, false, &kQwenExperts, GgufMoe::kRenorm},
    {"mixtral", "MixtralForCausalLM", "mixtral", RopeStyle::kInterleaved, false, false, false,
     MoeLayers::kAll, false, &kMixtralExperts, GgufMoe::kNotRead},
    {"olmoe", "OlmoeForCausalLM", "olmoe", RopeStyle::kNeox, false, true, true,
     MoeLayers::kAll, false, &kQwenExperts, GgufMoe::kNotRead},
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
  if ((entry->moe != MoeLayers::kNone || n_expert > 0) && entry->gguf_moe == GgufMoe::kNotRead)
    return Unsupported(src.root + ": GGUF mixture-of-experts models ('" + c.arch +
                       "' with experts) are not supported yet (GGUF MoE: qwen2moe, qwen3moe); use the Hugging Face "
                       "safetensors checkpoint");
  SPOOL_TRY(get_int("block_count", &c.n_layer));
  SPOOL_TRY(get_int("embedding_length", &c.n_embd));
  SPOOL_TRY(get_int("feed_forward_length", &c.n_ff));
  SPOOL_TRY(get_int("attention.head_count", &c.n_head));
  c.n_head_kv = c.n_head;
  if (g.Find(p + "attention.head_count_kv")) SPOOL_TRY(get_int("attention.head_count_kv", &c.n_head_kv));
  c.n_ctx_train = 2048;
  if (g.Find(p + "context_length")) SPOOL_TRY(get_int("context_length", &c.n_ctx_train));
  if (auto r = g.GetFloat(p + "attention.layer_norm_rms_epsilon"); r.ok()) c.rms_eps = static_cast<float>(*r);
  if (auto r = g.GetFloat(p + "rope.freq_base"); r.ok()) c.rope_theta = static_cast<float>(*r);
  c.head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
  if (g.Find(p + "attention.key_length")) SPOOL_TRY(get_int("attention.key_length", &c.head_dim));
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
  if (auto r = g.GetString(p + "rope.scaling.type"); r.ok()) {
    if (*r == "linear") {
      c.rope_scaling.kind = RopeScaling::Kind::kLinear;
      if (auto f = g.GetFloat(p + "rope.scaling.factor"); f.ok()) c.rope_scaling.factor = static_cast<float>(*f);
    } else if (*r != "none") {
      return Unsupported(src.root + ": rope scaling type '" + *r + "' is not supported (supported: none, linear)");
    }
  }
  // llama3-style scaling in GGUF is baked into a `rope_freqs.weight` tensor; not read yet.
  if (src.FindTensor("rope_freqs.weight"))
    return Unsupported(src.root + ": GGUF rope_freqs (llama3 rope scaling) tensors are not supported yet");
  c.rope_style = entry->gguf_rope;
  c.qkv_bias = entry->qkv_bias && src.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = entry->qk_norm;
  c.layers.assign(static_cast<size_t>(std::clamp<int64_t>(c.n_layer, 0, 1024)), LayerSpec{});
  if (entry->gguf_moe != GgufMoe::kNotRead) {
    // A layer is MoE when it has a router (llama.cpp's converters make every layer MoE).
    c.moe.n_expert = n_expert;
    SPOOL_TRY(get_int("expert_used_count", &c.moe.n_expert_used));
    c.moe.n_ff_expert = c.n_ff;
    if (g.Find(p + "expert_feed_forward_length")) SPOOL_TRY(get_int("expert_feed_forward_length", &c.moe.n_ff_expert));
    if (entry->shared_expert) SPOOL_TRY(get_int("expert_shared_feed_forward_length", &c.moe.n_ff_shared));
    c.moe.norm_topk_prob = entry->gguf_moe == GgufMoe::kRenorm;
    if (auto r = g.GetBool(p + "expert_weights_norm"); r.ok()) c.moe.norm_topk_prob = *r;
    for (size_t l = 0; l < c.layers.size(); ++l)
      if (src.FindTensor("blk." + std::to_string(l) + ".ffn_gate_inp.weight")) c.layers[l].ffn = FfnKind::kMoe;
  }
  c.tied_embeddings = src.FindTensor("output.weight") == nullptr;
  return c;
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

Result<ModelConfig> FromHf(const formats::ModelSource& src) {
  const auto& j = src.hf_config;
  const std::string where = src.root + "/config.json";
  if (!j.is_object()) return InvalidFile(where + ": not a JSON object");
  std::string cls;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    cls = j["architectures"][0].get<std::string>();
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
  SPOOL_TRY(get_int("intermediate_size", &c.n_ff, true));
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
    } else if (!type.empty() && type != "default") {
      return Unsupported(where + ": rope scaling type '" + type + "' is not supported (supported: default, linear, llama3)");
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
  if (rope_scaling.kind != RopeScaling::Kind::kNone && !(rope_scaling.factor > 0)) return bad("rope scaling factor must be positive");
  if (static_cast<int64_t>(layers.size()) != n_layer)
    return bad("layer specs: " + std::to_string(layers.size()) + " for " + std::to_string(n_layer) + " layers");
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

int64_t ModelConfig::max_ff() const {
  int64_t f = n_ff;
  if (has_moe()) f = std::max({f, moe.n_ff_expert, moe.n_ff_shared});
  return f;
}

Result<ModelConfig> ReadModelConfig(const formats::ModelSource& src) {
  Result<ModelConfig> r = src.kind == formats::ModelSource::Kind::kGguf ? FromGguf(src) : FromHf(src);
  if (!r.ok()) return r;
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
  }
  return "";
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
