// Test helper: writes a random-weight Llama model as a Hugging Face folder
// (config.json + one bf16 model.safetensors) without holding it in memory. Used by
// tests that need a model large enough for a memory budget to mean something.
// (tools/gen_synthetic_model.py writes the benchmark models with real shapes.)
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace spool::testing {

struct SyntheticShape {
  int64_t n_layer = 2, n_embd = 64, n_ff = 128, n_head = 4, n_head_kv = 2, n_vocab = 256;
  bool tied = true;
  // n_expert > 0: a Qwen3-MoE (Qwen3MoeForCausalLM: q/k norms, every layer's MLP n_expert
  // experts of moe_ff, top n_expert_used, one tensor per expert and projection).
  int64_t n_expert = 0, n_expert_used = 0, moe_ff = 0;
};

// Returns "" on success, else an error message.
inline std::string WriteSyntheticLlama(const std::string& dir, const SyntheticShape& s, uint64_t seed = 1) {
  std::filesystem::create_directories(dir);
  const int64_t hd = s.n_embd / s.n_head, kv = hd * s.n_head_kv;
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  tensors.push_back({"model.embed_tokens.weight", {s.n_vocab, s.n_embd}});
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    tensors.push_back({p + "input_layernorm.weight", {s.n_embd}});
    tensors.push_back({p + "self_attn.q_proj.weight", {s.n_embd, s.n_embd}});
    tensors.push_back({p + "self_attn.k_proj.weight", {kv, s.n_embd}});
    tensors.push_back({p + "self_attn.v_proj.weight", {kv, s.n_embd}});
    tensors.push_back({p + "self_attn.o_proj.weight", {s.n_embd, s.n_embd}});
    tensors.push_back({p + "post_attention_layernorm.weight", {s.n_embd}});
    if (s.n_expert > 0) {
      tensors.push_back({p + "self_attn.q_norm.weight", {hd}});
      tensors.push_back({p + "self_attn.k_norm.weight", {hd}});
      tensors.push_back({p + "mlp.gate.weight", {s.n_expert, s.n_embd}});
      for (int64_t e = 0; e < s.n_expert; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        tensors.push_back({x + "gate_proj.weight", {s.moe_ff, s.n_embd}});
        tensors.push_back({x + "up_proj.weight", {s.moe_ff, s.n_embd}});
        tensors.push_back({x + "down_proj.weight", {s.n_embd, s.moe_ff}});
      }
      continue;
    }
    tensors.push_back({p + "mlp.gate_proj.weight", {s.n_ff, s.n_embd}});
    tensors.push_back({p + "mlp.up_proj.weight", {s.n_ff, s.n_embd}});
    tensors.push_back({p + "mlp.down_proj.weight", {s.n_embd, s.n_ff}});
  }
  tensors.push_back({"model.norm.weight", {s.n_embd}});
  if (!s.tied) tensors.push_back({"lm_head.weight", {s.n_vocab, s.n_embd}});

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  uint64_t off = 0;
  for (auto& [name, shape] : tensors) {
    uint64_t n = 2;
    for (auto d : shape) n *= static_cast<uint64_t>(d);
    header[name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // tensor data 8-byte aligned, as transformers writes it
  const uint64_t hlen = h.size();
  std::FILE* f = std::fopen((dir + "/model.safetensors").c_str(), "wb");
  if (!f) return "cannot create " + dir + "/model.safetensors";
  std::fwrite(&hlen, 8, 1, f);
  std::fwrite(h.data(), 1, h.size(), f);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  std::vector<uint16_t> buf;
  for (auto& [name, shape] : tensors) {
    uint64_t n = 1;
    for (auto d : shape) n *= static_cast<uint64_t>(d);
    const bool norm = shape.size() == 1;
    for (uint64_t done = 0; done < n;) {
      const uint64_t m = std::min<uint64_t>(n - done, 1 << 20);
      buf.resize(m);
      for (uint64_t i = 0; i < m; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        // bf16 of a value in about ±0.03 (norms: about 1).
        const float v = norm ? 1.0f : (static_cast<float>(x >> 40) / static_cast<float>(1ull << 24) - 0.5f) * 0.06f;
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        buf[i] = static_cast<uint16_t>(bits >> 16);
      }
      std::fwrite(buf.data(), 2, m, f);
      done += m;
    }
  }
  if (std::fclose(f) != 0) return "write failed";
  nlohmann::ordered_json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", s.n_embd},
      {"intermediate_size", s.n_ff},
      {"num_hidden_layers", s.n_layer},
      {"num_attention_heads", s.n_head},
      {"num_key_value_heads", s.n_head_kv},
      {"vocab_size", s.n_vocab},
      {"max_position_embeddings", 4096},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 500000.0},
      {"tie_word_embeddings", s.tied},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
  };
  if (s.n_expert > 0) {
    config["architectures"] = {"Qwen3MoeForCausalLM"};
    config["model_type"] = "qwen3_moe";
    config["head_dim"] = hd;
    config["num_experts"] = s.n_expert;
    config["num_experts_per_tok"] = s.n_expert_used;
    config["moe_intermediate_size"] = s.moe_ff;
    config["norm_topk_prob"] = true;
    config["decoder_sparse_step"] = 1;
    config["mlp_only_layers"] = nlohmann::ordered_json::array();
    config["hidden_act"] = "silu";
  }
  std::FILE* c = std::fopen((dir + "/config.json").c_str(), "w");
  if (!c) return "cannot create config.json";
  std::string cj = config.dump(1);
  std::fwrite(cj.data(), 1, cj.size(), c);
  std::fclose(c);
  return "";
}

}  // namespace spool::testing
