#include "gpu/llama_decoder.h"

#include <algorithm>
#include <string>

#include "tensor/rope.h"

namespace spool::gpu {

Result<WeightBuffer> LlamaDecoder::UploadMatrix(const models::MatrixRef& m, const uint8_t* group, const char* what) {
  if (!MatVecSupports(m.dtype))
    return Unsupported(std::string("GPU decoder: ") + what + " is " + std::string(DTypeName(m.dtype)) +
                       " (supported: f32, f16, bf16, q8_0, q4_0, q4_1)");
  const uint64_t bytes = m.info->nbytes;
  auto b = dev_.Allocate(bytes, MemoryKind::kDevice, what);
  if (!b.ok()) return b.status();
  if (Status s = dev_.Upload(b.value(), 0, group + m.group_offset, bytes); !s.ok()) return s;
  device_bytes_ += b.value().bytes();
  matrices_.push_back(std::move(b.value()));
  return WeightBuffer{&matrices_.back(), 0, m.dtype, m.n_out, m.n_in};
}

Result<Buffer> LlamaDecoder::UploadF32(const std::vector<float>& v, const char* what) {
  auto b = dev_.Allocate(v.size() * 4, MemoryKind::kDevice, what);
  if (!b.ok()) return b.status();
  if (Status s = dev_.Upload(b.value(), 0, v.data(), v.size() * 4); !s.ok()) return s;
  device_bytes_ += b.value().bytes();
  return std::move(b.value());
}

Result<std::unique_ptr<LlamaDecoder>> LlamaDecoder::Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                         models::WeightProvider& provider, int64_t ctx,
                                                         DType kv_dtype, int64_t page_tokens) {
  const models::ModelConfig& c = weights.config();
  auto refuse = [](const std::string& what) {
    return Unsupported("GPU decoder: " + what + " is not supported on the GPU yet");
  };
  if (c.qkv_bias) return refuse("QKV bias");
  if (c.qk_norm) return refuse("q/k norm");
  if (c.sandwich_norms) return refuse("sandwich norms");
  if (c.ffn_act != models::FfnAct::kSilu) return refuse("GeGLU");
  if (c.final_softcap > 0) return refuse("final logit soft-capping");
  if (c.embd_scale > 0) return refuse("embedding scale");
  if (c.ggml_numerics) return refuse("--numerics ggml");
  if (c.head_dim > 256) return refuse("head_dim > 256");
  if (kv_dtype != DType::kF32 && kv_dtype != DType::kBF16) return refuse("KV type " + std::string(DTypeName(kv_dtype)));
  if (ctx <= 0) return InvalidArgument("GPU decoder: ctx must be > 0");
  if (page_tokens <= 0 || page_tokens > 1024) return InvalidArgument("GPU decoder: KV page size must be in [1, 1024]");
  for (const auto& spec : c.layers)
    if (spec.ffn != models::FfnKind::kDense) return refuse("mixture of experts");

  std::unique_ptr<LlamaDecoder> d(new LlamaDecoder(dev, weights, provider));
  d->ctx_ = ctx;
  d->kv_dtype_ = kv_dtype;
  d->page_tokens_ = page_tokens;
  d->matrices_.reserve(static_cast<size_t>(c.n_layer) * 7 + 1);  // WeightBuffers point into it
  d->layers_.resize(static_cast<size_t>(c.n_layer));
  provider.BeginStep();
  for (int64_t l = 0; l < c.n_layer; ++l) {
    auto group = provider.Acquire(static_cast<int>(l));
    if (!group.ok()) return group.status();
    const models::LayerWeights& L = weights.layer(l);
    Layer& G = d->layers_[static_cast<size_t>(l)];
    const uint8_t* g = group.value();
    struct {
      WeightBuffer* dst;
      const models::MatrixRef* m;
      const char* name;
    } mats[] = {{&G.wq, &L.wq, "attn_q"},      {&G.wk, &L.wk, "attn_k"},       {&G.wv, &L.wv, "attn_v"},
                {&G.wo, &L.wo, "attn_output"}, {&G.gate, &L.dense.gate, "ffn_gate"}, {&G.up, &L.dense.up, "ffn_up"},
                {&G.down, &L.dense.down, "ffn_down"}};
    for (auto& m : mats) {
      auto wb = d->UploadMatrix(*m.m, g, m.name);
      if (!wb.ok()) {
        provider.Release(static_cast<int>(l));
        return wb.status().WithContext("layer " + std::to_string(l));
      }
      *m.dst = wb.value();
    }
    provider.Release(static_cast<int>(l));
    auto an = d->UploadF32(L.attn_norm, "attn_norm");
    if (!an.ok()) return an.status();
    G.attn_norm = std::move(an.value());
    auto fn = d->UploadF32(L.ffn_norm, "ffn_norm");
    if (!fn.ok()) return fn.status();
    G.ffn_norm = std::move(fn.value());
    // RoPE: the layer's frequencies (shared between layers with equal ones).
    const models::LayerSpec& spec = c.layers[static_cast<size_t>(l)];
    auto inv = RopeFrequencies(c.head_dim, c.rope_dim, spec.rope_theta, spec.rope_scaling);
    const float mscale = spec.rope_scaling.kind == RopeScaling::Kind::kYarn ? spec.rope_scaling.attention_factor : 1.0f;
    G.rope_table = -1;
    for (size_t i = 0; i < d->inv_freqs_.size(); ++i)
      if (d->inv_freqs_[i] == inv && d->mscales_[i] == mscale) G.rope_table = static_cast<int>(i);
    if (G.rope_table < 0) {
      G.rope_table = static_cast<int>(d->inv_freqs_.size());
      d->inv_freqs_.push_back(std::move(inv));
      d->mscales_.push_back(mscale);
    }
  }
  {
    auto head = provider.Acquire(weights.head_group());
    if (!head.ok()) return head.status();
    auto out = d->UploadMatrix(weights.output(), head.value(), "output");
    provider.Release(weights.head_group());
    if (!out.ok()) return out.status();
    d->output_ = out.value();
  }
  auto on = d->UploadF32(weights.output_norm(), "output_norm");
  if (!on.ok()) return on.status();
  d->output_norm_ = std::move(on.value());
  d->rope_tables_.resize(d->inv_freqs_.size());

  const uint64_t kv_elems = static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(ctx) * c.kv_dim();
  const uint64_t kv_bytes = kv_elems * (kv_dtype == DType::kF32 ? 4 : 2);
  auto alloc = [&](Buffer& b, uint64_t bytes, const char* what) -> Status {
    auto r = dev.Allocate(bytes, MemoryKind::kDevice, what);
    if (!r.ok()) return r.status();
    d->device_bytes_ += r.value().bytes();
    b = std::move(r.value());
    return Status::Ok();
  };
  const uint64_t D = static_cast<uint64_t>(c.n_embd);
  for (auto [buf, bytes, what] :
       {std::tuple{&d->kcache_, kv_bytes, "K cache"}, std::tuple{&d->vcache_, kv_bytes, "V cache"},
        std::tuple{&d->x_, D * 4, "x"}, std::tuple{&d->h_, D * 4, "h"},
        std::tuple{&d->q_, static_cast<uint64_t>(c.q_dim()) * 4, "q"},
        std::tuple{&d->kn_, static_cast<uint64_t>(c.kv_dim()) * 4, "k"},
        std::tuple{&d->vn_, static_cast<uint64_t>(c.kv_dim()) * 4, "v"},
        std::tuple{&d->att_, static_cast<uint64_t>(c.q_dim()) * 4, "attention out"},
        std::tuple{&d->o_, D * 4, "projection out"},
        std::tuple{&d->gate_, static_cast<uint64_t>(c.n_ff) * 4, "ffn gate"},
        std::tuple{&d->up_, static_cast<uint64_t>(c.n_ff) * 4, "ffn up"},
        std::tuple{&d->logits_, static_cast<uint64_t>(c.n_vocab) * 4, "logits"}}) {
    if (Status s = alloc(*buf, bytes, what); !s.ok()) return s.WithContext("GPU decoder");
  }
  d->host_row_.resize(D);
  return d;
}

Status LlamaDecoder::Step(int32_t token, float* logits) {
  const models::ModelConfig& c = w_.config();
  if (token < 0 || token >= c.n_vocab)
    return InvalidArgument("GPU decoder: token " + std::to_string(token) + " outside the vocabulary of " +
                           std::to_string(c.n_vocab));
  if (n_tokens_ >= ctx_) return ResourceExhausted("GPU decoder: context of " + std::to_string(ctx_) + " tokens is full");
  const int64_t D = c.n_embd, QD = c.q_dim(), KD = c.kv_dim(), pos = n_tokens_;
  // Embedding row on the host (the provider's table), then to the device.
  if (Status s = provider_.EmbeddingRows(&token, 1, host_row_.data()); !s.ok()) return s;
  if (Status s = dev_.Upload(x_, 0, host_row_.data(), static_cast<uint64_t>(D) * 4); !s.ok()) return s;
  const int64_t positions[1] = {pos};
  for (size_t i = 0; i < inv_freqs_.size(); ++i)
    if (Status s = k_.RopeTable(positions, inv_freqs_[i], mscales_[i], rope_tables_[i]); !s.ok()) return s;

  const bool neox = c.rope_style == RopeStyle::kNeox;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    const models::LayerSpec& spec = c.layers[static_cast<size_t>(l)];
    const Buffer& table = rope_tables_[static_cast<size_t>(L.rope_table)];
    // Attention: RMSNorm → Q, K, V → RoPE → KV write → attention over [0, pos] → O.
    SPOOL_TRY(k_.RmsNorm(x_, L.attn_norm, c.rms_eps, 1, D, h_));
    SPOOL_TRY(k_.MatVec(L.wq, h_, q_, 1));   // [q_dim]
    SPOOL_TRY(k_.MatVec(L.wk, h_, kn_, 1));  // [kv_dim]
    SPOOL_TRY(k_.MatVec(L.wv, h_, vn_, 1));  // [kv_dim]
    SPOOL_TRY(k_.Rope(neox, q_, 1, c.n_head, c.head_dim, c.rope_dim, table));
    SPOOL_TRY(k_.Rope(neox, kn_, 1, c.n_head_kv, c.head_dim, c.rope_dim, table));
    const uint64_t layer_elem = static_cast<uint64_t>(l) * static_cast<uint64_t>(ctx_) * static_cast<uint64_t>(KD);
    const uint64_t row_elem = layer_elem + static_cast<uint64_t>(pos) * static_cast<uint64_t>(KD);
    SPOOL_TRY(k_.KvStore(kn_, KD, kv_dtype_, kcache_, row_elem));
    SPOOL_TRY(k_.KvStore(vn_, KD, kv_dtype_, vcache_, row_elem));
    const int64_t window = spec.mixer == models::MixerKind::kSlidingAttention ? spec.window : 0;
    const GpuAttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, c.attention_scale(), window, c.attn_softcap};
    // Pages as the CPU's KV cache holds them, so the fold order (and result) is its own.
    pages_.clear();
    for (int64_t p0 = 0; p0 <= pos; p0 += page_tokens_) {
      const uint64_t e = layer_elem + static_cast<uint64_t>(p0) * static_cast<uint64_t>(KD);
      pages_.push_back(GpuKvPage{e, e, std::min(page_tokens_, pos + 1 - p0), p0});
    }
    SPOOL_TRY(k_.Attention(shape, q_, positions, kv_dtype_, kcache_, vcache_, pages_, att_));
    SPOOL_TRY(k_.MatVec(L.wo, att_, o_, 1));  // [n_embd]
    SPOOL_TRY(k_.Add(x_, o_, D, x_));
    // Feed-forward: RMSNorm → gate, up → SwiGLU → down.
    SPOOL_TRY(k_.RmsNorm(x_, L.ffn_norm, c.rms_eps, 1, D, h_));
    SPOOL_TRY(k_.MatVec(L.gate, h_, gate_, 1));  // [n_ff]
    SPOOL_TRY(k_.MatVec(L.up, h_, up_, 1));      // [n_ff]
    SPOOL_TRY(k_.SwiGLU(gate_, up_, c.n_ff, gate_));
    SPOOL_TRY(k_.MatVec(L.down, gate_, o_, 1));  // [n_embd]
    SPOOL_TRY(k_.Add(x_, o_, D, x_));
  }
  SPOOL_TRY(k_.RmsNorm(x_, output_norm_, c.rms_eps, 1, D, h_));
  SPOOL_TRY(k_.MatVec(output_, h_, logits_, 1));  // [n_vocab]
  SPOOL_TRY(dev_.Download(logits_, 0, logits, static_cast<uint64_t>(c.n_vocab) * 4));
  ++n_tokens_;
  return Status::Ok();
}

}  // namespace spool::gpu
