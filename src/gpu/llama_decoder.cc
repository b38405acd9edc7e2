#include "gpu/llama_decoder.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>

#include "base/timer.h"
#include "models/tree_attention.h"
#include "tensor/rope.h"

namespace spool::gpu {
namespace {

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::array<const models::MatrixRef*, 7> LayerMats(const models::LayerWeights& L) {
  return {&L.wq, &L.wk, &L.wv, &L.wo, &L.dense.gate, &L.dense.up, &L.dense.down};
}
constexpr const char* kMatNames[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

Status Refuse(const std::string& what) { return Unsupported("GPU decoder: " + what + " is not supported on the GPU yet"); }

}  // namespace

Status LlamaDecoder::Supports(const models::ModelConfig& c, const LlamaDecoderOptions& o) {
  // Every ModelConfig feature the decoder's skeleton (norm → Q/K/V → QKV parts → RoPE →
  // attention → O → norm → SwiGLU) does not compute is named here, with its field, so
  // that no model runs on the GPU with a part silently left out. All of them are listed
  // at once. Implemented, so not refused: full and sliding-window attention (the layer's
  // window), attention score soft-capping (attn_softcap), attn_scale, per-layer RoPE θ and
  // scaling, partial RoPE (rope_dim), either RoPE pairing, tied embeddings, QKV bias and
  // per-head q/k norm (layer_parts.h), and norm_plus_one (HF Gemma's 1 + w: ModelWeights
  // adds the 1 to every RMSNorm weight at load, models/weights.cc, so the decoder reads
  // ready weights). The layer loop below covers what differs per layer.
  std::vector<std::string> no = QkvPartsMissing(c);  // layer_parts.h
  if (c.sandwich_norms) no.push_back("sandwich norms (sandwich_norms: post-attention and post-feed-forward RMSNorms)");
  if (c.ffn_act == models::FfnAct::kGeluTanh) no.push_back("GeGLU (ffn_act: tanh GELU)");
  if (c.ffn_act == models::FfnAct::kSwiGluOai) no.push_back("gpt-oss's clamped SwiGLU (ffn_act: swiglu_oai)");
  if (c.final_softcap > 0) no.push_back("final logit soft-capping (final_softcap " + std::to_string(c.final_softcap) + ")");
  if (c.embd_scale > 0) no.push_back("embedding scale (embd_scale " + std::to_string(c.embd_scale) + ")");
  if (c.attn_sinks) no.push_back("attention sinks (attn_sinks)");
  if (c.ggml_numerics) no.push_back("--numerics ggml (ggml_numerics)");
  if (c.head_dim > 256) no.push_back("head_dim " + std::to_string(c.head_dim) + " > 256");
  int64_t moe = 0, linear = 0;
  for (const auto& spec : c.layers) {
    moe += spec.ffn == models::FfnKind::kMoe;
    linear += spec.mixer == models::MixerKind::kLinearAttention;
  }
  if (moe > 0)
    no.push_back("mixture of experts (" + std::to_string(moe) + " of " + std::to_string(c.n_layer) +
                 " layers' ffn is moe)");
  if (linear > 0)
    no.push_back("linear attention (Gated DeltaNet: " + std::to_string(linear) + " of " + std::to_string(c.n_layer) +
                 " layers' mixer is linear_attention)");
  if (!no.empty()) {
    std::string what = no[0];
    for (size_t i = 1; i < no.size(); ++i) what += (i + 1 == no.size() ? " and " : ", ") + no[i];
    return Unsupported("GPU decoder: " + what + (no.size() == 1 ? " is" : " are") + " not supported on the GPU yet");
  }
  if (o.kv_dtype != DType::kF32 && o.kv_dtype != DType::kBF16) return Refuse("KV type " + std::string(DTypeName(o.kv_dtype)));
  if (o.ctx <= 0) return InvalidArgument("GPU decoder: ctx must be > 0");
  if (o.page_tokens <= 0 || o.page_tokens > 1024) return InvalidArgument("GPU decoder: KV page size must be in [1, 1024]");
  if (o.max_rows <= 0 || o.max_rows > 4096) return InvalidArgument("GPU decoder: max_rows must be in [1, 4096]");
  if (o.n_kv < 1) return InvalidArgument("GPU decoder: n_kv must be >= 1");
  return Status::Ok();
}

namespace {

// The activation buffers of one chunk of max_rows tokens: (bytes, name).
std::vector<std::pair<uint64_t, const char*>> ActivationBuffers(const models::ModelConfig& c, int64_t rows) {
  const uint64_t R = static_cast<uint64_t>(rows), D = static_cast<uint64_t>(c.n_embd);
  const uint64_t QD = static_cast<uint64_t>(c.q_dim()), KD = static_cast<uint64_t>(c.kv_dim());
  const uint64_t F = static_cast<uint64_t>(c.n_ff);
  return {{R * D * 4, "x"},           {R * D * 4, "h"},          {R * QD * 4, "q"},
          {R * KD * 4, "k"},          {R * KD * 4, "v"},         {R * QD * 4, "attention out"},
          {R * D * 4, "projection out"}, {R * F * 4, "ffn gate"}, {R * F * 4, "ffn up"},
          {D * 4, "last row"},        {static_cast<uint64_t>(c.n_vocab) * 4, "logits"}};
}

uint64_t ActBytesFor(DType t, int64_t m, int64_t n_in) { return MatVecActBytes(t, m, n_in); }

// A segment's attention scratch when the FFN's buffers are too narrow (n_ff < q_dim),
// and the draft-tree scratch (options trees): each (bytes, name); LlamaDecoder::Open
// allocates them in this order.
std::vector<std::pair<uint64_t, const char*>> ScratchBuffers(const models::ModelConfig& c, const LlamaDecoderOptions& o) {
  std::vector<std::pair<uint64_t, const char*>> b;
  const uint64_t R = static_cast<uint64_t>(o.max_rows), QD = static_cast<uint64_t>(c.q_dim());
  if (o.max_rows > 1 && c.n_ff < c.q_dim()) {
    b.push_back({R * QD * 4, "attention q scratch"});
    b.push_back({R * QD * 4, "attention out scratch"});
  }
  if (o.trees) {
    const uint64_t row = static_cast<uint64_t>(c.kv_dim()) * (o.kv_dtype == DType::kF32 ? 4 : 2);
    const uint64_t region = static_cast<uint64_t>(o.page_tokens + o.max_rows) * row;
    b.push_back({region, "tree K region"});
    b.push_back({region, "tree V region"});
    b.push_back({QD * 4, "tree query"});
    b.push_back({QD * 4, "tree output"});
    b.push_back({AttentionStateBytes(1, c.n_head, c.head_dim), "tree attention state"});
  }
  return b;
}

uint64_t BatchAndTreeScratchBytes(const models::ModelConfig& c, const LlamaDecoderOptions& o) {
  uint64_t sum = 0;
  for (const auto& [bytes, name] : ScratchBuffers(c, o)) sum += AlignUp(bytes, 4);
  // The all-rows attention state a tree's first dispatch stores (a KV window has its own).
  if (o.trees) sum += AttentionStateBytes(o.max_rows, c.n_head, c.head_dim);
  return sum;
}

}  // namespace

// The KV part of the plan: one sequence's bytes for a window of `hot` pages, and the
// window. The whole context stays in VRAM unless one K buffer would exceed the device's
// maxStorageBufferRange, options ask for a window (kv_hot_tokens), or the budget cannot
// hold the whole cache beside the other fixed buffers and a ring of two layer slots; then
// the largest window that fits, at least the pages one chunk of max_rows touches.
static Status PlanKvWindow(const VulkanDevice& dev, const models::ModelConfig& c, const LlamaDecoderOptions& o,
                    uint64_t other_fixed, VramPlan& p) {
  const uint64_t row = static_cast<uint64_t>(c.kv_dim()) * (o.kv_dtype == DType::kF32 ? 4 : 2);
  const int64_t P = o.page_tokens;
  const uint64_t L = static_cast<uint64_t>(c.n_layer), n_kv = static_cast<uint64_t>(o.n_kv);
  p.kv_pages = (o.ctx + P - 1) / P;
  const int64_t min_hot = std::min(p.kv_pages, (P + o.max_rows - 2) / P + 1);
  auto rows = [&](int64_t hot) { return hot >= p.kv_pages ? static_cast<uint64_t>(o.ctx) : static_cast<uint64_t>(hot * P); };
  auto cold = [&](int64_t hot) -> uint64_t {
    if (hot >= p.kv_pages) return 0;
    const uint64_t group = static_cast<uint64_t>(std::min(hot, p.kv_pages - hot)) * static_cast<uint64_t>(P) * row;
    return 2 * 2 * AlignUp(group, 4) + AttentionStateBytes(o.max_rows, c.n_head, c.head_dim);  // 2 × (K + V)
  };
  auto fixed = [&](int64_t hot) { return n_kv * 2 * L * rows(hot) * row + cold(hot) + other_fixed; };
  int64_t hot = p.kv_pages;
  if (o.kv_hot_tokens > 0) hot = std::clamp((o.kv_hot_tokens + P - 1) / P, min_hot, p.kv_pages);
  const uint64_t range = dev.info().max_buffer_bytes;
  if (range > 0 && L * rows(hot) * row > range) {
    const int64_t fit = static_cast<int64_t>(range / (L * static_cast<uint64_t>(P) * row));
    if (fit < min_hot)
      return ResourceExhausted("GPU decoder: a KV window of " + std::to_string(min_hot) + " pages of " +
                               std::to_string(P) + " tokens (what one chunk of " + std::to_string(o.max_rows) +
                               " tokens touches) needs a K cache buffer of " +
                               std::to_string(L * static_cast<uint64_t>(min_hot * P) * row) +
                               " bytes, beyond the device's maxStorageBufferRange of " + std::to_string(range) +
                               " (fewer layers' KV per buffer is not supported; use smaller --kv-page-tokens or "
                               "--prefill-chunk)");
    hot = std::min(hot, fit);
  }
  if (o.vram_budget > 0 && o.kv_hot_tokens == 0) {
    // Room for the smallest streaming setup: a ring of two slots of the largest layer.
    const uint64_t ring = 2 * p.largest_layer;
    if (fixed(hot) + p.layer_bytes > o.vram_budget)
      while (hot > min_hot && fixed(hot) + ring > o.vram_budget) --hot;
  }
  p.kv_hot_pages = hot;
  p.kv_seq_bytes = 2 * L * rows(hot) * row;
  p.kv_bytes = p.kv_seq_bytes * n_kv;
  p.kv_cold_bytes = cold(hot);
  return Status::Ok();
}

uint64_t VramPlan::device_bytes() const { return fixed_bytes + ring_bytes + resident_layer_bytes; }

std::string VramPlan::ToString() const {
  auto mib = [](uint64_t b) { return std::to_string((b + (1 << 19)) >> 20) + " MiB (" + std::to_string(b) + " bytes)"; };
  std::string s = "VRAM plan: budget " + (budget ? mib(budget) : std::string("none")) + "; fixed " + mib(fixed_bytes) +
                  " (KV cache " + mib(kv_bytes) + ", output head " + mib(head_bytes) + "); layers " +
                  mib(layer_bytes) + ", largest " + mib(largest_layer) + "; " + std::to_string(n_resident) +
                  " resident, " + std::to_string(n_streamed) + " streamed";
  if (n_streamed > 0)
    s += " through a ring of 2 × " + mib(largest_layer) + " (weight tiers: VRAM " + std::to_string(n_resident) +
         " layers " + mib(resident_layer_bytes) + ", host RAM " + std::to_string(n_host) + " layers " +
         mib(host_bytes) + ", disk " + std::to_string(n_disk) + " layers, " + mib(disk_bytes_per_pass) +
         " read per pass through staging " + mib(staging_bytes) + ")";
  if (kv_windowed())
    s += "; KV window: " + std::to_string(kv_hot_pages) + " of " + std::to_string(kv_pages) +
         " pages per sequence in VRAM, older pages in host memory (cold-page buffers " + mib(kv_cold_bytes) + ")";
  return s;
}

Result<VramPlan> LlamaDecoder::Plan(const VulkanDevice& dev, const models::ModelWeights& weights,
                                    const LlamaDecoderOptions& o) {
  const models::ModelConfig& c = weights.config();
  if (Status s = Supports(c, o); !s.ok()) return s;
  const uint64_t align = std::max<uint64_t>(4, dev.info().min_offset_align);
  VramPlan p;
  p.budget = o.vram_budget;
  p.head_bytes = AlignUp(weights.output().info->nbytes, 4);
  uint64_t act = 0;
  for (const auto& [bytes, name] : ActivationBuffers(c, o.max_rows)) act += AlignUp(bytes, 4);
  uint64_t scratch = ActBytesFor(weights.output().dtype, 1, weights.output().n_in);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    uint64_t lb = 0;
    for (const models::MatrixRef* m : LayerMats(weights.layer(l))) {
      lb += AlignUp(m->info->nbytes, align);
      scratch = std::max(scratch, ActBytesFor(m->dtype, o.max_rows, m->n_in));
    }
    p.layer_bytes += lb;
    p.largest_layer = std::max(p.largest_layer, lb);
  }
  scratch = std::max<uint64_t>(AlignUp(scratch, 4), uint64_t{1} << 16);  // Kernels' scratch (its minimum)
  // Norms (two per layer + the final one) and the RoPE tables (at most one per layer).
  // Plus each layer's QKV parts' vectors (biases, q/k norms).
  const uint64_t norms = (2 * static_cast<uint64_t>(c.n_layer) + 1) * static_cast<uint64_t>(c.n_embd) * 4 +
                         static_cast<uint64_t>(c.n_layer) * QkvPartsBytes(c);
  const uint64_t rope = static_cast<uint64_t>(o.max_rows) * static_cast<uint64_t>(c.rope_dim) * 4 *
                        static_cast<uint64_t>(c.n_layer);
  const uint64_t other_fixed = p.head_bytes + act + scratch + norms + rope + BatchAndTreeScratchBytes(c, o);
  SPOOL_TRY(PlanKvWindow(dev, c, o, other_fixed, p));
  p.fixed_bytes = p.kv_bytes + p.kv_cold_bytes + other_fixed;
  if (!o.host_layers.empty() && static_cast<int64_t>(o.host_layers.size()) != c.n_layer)
    return InvalidArgument("GPU decoder: host_layers has " + std::to_string(o.host_layers.size()) +
                           " entries, the model " + std::to_string(c.n_layer) + " layers");
  if (o.vram_budget == 0 || p.fixed_bytes + p.layer_bytes <= o.vram_budget) {
    p.n_resident = static_cast<int>(c.n_layer);
    p.resident_layer_bytes = p.layer_bytes;
    p.tiers.assign(static_cast<size_t>(c.n_layer), WeightTier::kVram);
    return p;
  }
  p.ring_bytes = 2 * p.largest_layer;
  if (p.fixed_bytes + p.ring_bytes > o.vram_budget)
    return ResourceExhausted(
        "--vram-budget " + std::to_string(o.vram_budget) + " bytes is too small: streaming needs at least " +
        std::to_string(p.fixed_bytes + p.ring_bytes) + " bytes (fixed buffers " + std::to_string(p.fixed_bytes) +
        ": KV cache " + std::to_string(p.kv_bytes) + ", output head " + std::to_string(p.head_bytes) +
        ", activations and scratch " + std::to_string(p.fixed_bytes - p.kv_bytes - p.head_bytes) +
        "; plus a ring of 2 × the largest layer, " + std::to_string(p.largest_layer) +
        "); the whole model resident needs " + std::to_string(p.fixed_bytes + p.layer_bytes) +
        (p.kv_windowed() ? "; the KV cache is already a window of " + std::to_string(p.kv_hot_pages) + " of " +
                               std::to_string(p.kv_pages) + " pages (the least one chunk of " +
                               std::to_string(o.max_rows) + " tokens needs)"
                         : std::string()));
  uint64_t left = o.vram_budget - p.fixed_bytes - p.ring_bytes;
  const uint64_t align2 = align;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    uint64_t lb = 0;
    for (const models::MatrixRef* m : LayerMats(weights.layer(l))) lb += AlignUp(m->info->nbytes, align2);
    if (lb > left) break;
    left -= lb;
    p.resident_layer_bytes += lb;
    ++p.n_resident;
  }
  p.n_streamed = static_cast<int>(c.n_layer) - p.n_resident;
  // The streamed layers' tiers: host memory where host_layers says so, else the disk.
  p.tiers.assign(static_cast<size_t>(c.n_layer), WeightTier::kVram);
  uint64_t largest_disk = 0;
  for (int64_t l = p.n_resident; l < c.n_layer; ++l) {
    const auto mats = LayerMats(weights.layer(l));
    const uint64_t payload = WeightFileReader::PayloadBytes(mats);
    const uint64_t group = weights.group(static_cast<int>(l)).bytes;
    if (!o.host_layers.empty() && o.host_layers[static_cast<size_t>(l)]) {
      p.tiers[static_cast<size_t>(l)] = WeightTier::kHost;
      ++p.n_host;
      p.host_bytes += group;
      p.host_copy_bytes_per_pass += payload;
    } else {
      p.tiers[static_cast<size_t>(l)] = WeightTier::kDisk;
      ++p.n_disk;
      largest_disk = std::max(largest_disk, group);
      p.disk_bytes_per_pass += payload;
      for (const models::MatrixRef* m : mats)
        p.disk_read_bytes_upper += AlignUp(m->info->offset + m->info->nbytes, models::kGroupPage) -
                                   m->info->offset / models::kGroupPage * models::kGroupPage;
    }
  }
  p.staging_bytes = 2 * largest_disk;
  return p;
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
  LlamaDecoderOptions o;
  o.ctx = ctx;
  o.kv_dtype = kv_dtype;
  o.page_tokens = page_tokens;
  return Open(dev, weights, provider, o);
}

Result<std::unique_ptr<LlamaDecoder>> LlamaDecoder::Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                         models::WeightProvider& provider,
                                                         const LlamaDecoderOptions& o) {
  const models::ModelConfig& c = weights.config();
  auto plan = Plan(dev, weights, o);
  if (!plan.ok()) return plan.status();
  std::unique_ptr<LlamaDecoder> d(new LlamaDecoder(dev, weights, provider));
  d->opts_ = o;
  d->plan_ = plan.value();
  const uint64_t align = std::max<uint64_t>(4, dev.info().min_offset_align);
  d->layers_.resize(static_cast<size_t>(c.n_layer));
  d->layer_buffers_.reserve(static_cast<size_t>(c.n_layer));  // Layer::mats point into it
  SPOOL_ASSIGN_OR_RETURN(d->files_, WeightFileReader::Open(weights, o.reader));
  d->tier_stats_.read_path = d->files_->read_path();
  Stopwatch load_clock;
  AlignedBuffer group_buf;  // a VRAM-tier layer (or the head) on its way to the device
  std::vector<uint8_t> packed;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const models::LayerWeights& L = weights.layer(l);
    Layer& G = d->layers_[static_cast<size_t>(l)];
    const auto mats = LayerMats(L);
    const uint64_t group_bytes = weights.group(static_cast<int>(l)).bytes;
    uint64_t off = 0;
    for (int i = 0; i < kMats; ++i) {
      const models::MatrixRef& m = *mats[static_cast<size_t>(i)];
      if (!MatVecSupports(m.dtype))
        return Unsupported(std::string("GPU decoder: layer ") + std::to_string(l) + " " + kMatNames[i] + " is " +
                           std::string(DTypeName(m.dtype)) + " (supported: " + std::string(MatVecTypeNames()) + ")");
      G.mats[static_cast<size_t>(i)] = WeightBuffer{nullptr, off, m.dtype, m.n_out, m.n_in};
      G.host_offset[static_cast<size_t>(i)] = m.group_offset;
      G.regions.push_back(CopyRegion{m.group_offset, off, m.info->nbytes});
      off += AlignUp(m.info->nbytes, align);
    }
    G.bytes = off;
    G.tier = d->plan_.tiers[static_cast<size_t>(l)];
    if (G.tier == WeightTier::kVram) {  // resident: packed into one buffer, uploaded once
      if (group_buf.size() < group_bytes) group_buf.Reset(group_bytes);
      SPOOL_TRY(d->ReadLayer(l, group_buf.data(), group_bytes, "loading"));
      packed.assign(G.bytes, 0);
      for (const CopyRegion& r : G.regions) std::memcpy(packed.data() + r.dst_offset, group_buf.data() + r.src_offset, r.bytes);
      auto b = dev.Allocate(G.bytes, MemoryKind::kDevice, "layer weights");
      if (!b.ok()) return b.status().WithContext("GPU decoder: layer " + std::to_string(l));
      if (Status s = dev.Upload(b.value(), 0, packed.data(), G.bytes); !s.ok()) return s;
      d->device_bytes_ += b.value().bytes();
      d->layer_buffers_.push_back(std::move(b.value()));
      G.buffer = static_cast<int>(d->layer_buffers_.size() - 1);
      for (auto& wb : G.mats) wb.buffer = &d->layer_buffers_.back();
    } else if (G.tier == WeightTier::kHost) {  // host tier: read once into host-visible memory
      auto b = dev.Allocate(group_bytes, MemoryKind::kHostVisible, "host-tier layer weights");
      if (!b.ok()) return b.status().WithContext("GPU decoder: layer " + std::to_string(l));
      G.host = std::move(b.value());
      SPOOL_TRY(d->ReadLayer(l, static_cast<uint8_t*>(G.host.data()), group_bytes, "loading"));
    }
    auto an = d->UploadF32(L.attn_norm, "attn_norm");
    if (!an.ok()) return an.status();
    G.attn_norm = std::move(an.value());
    auto fn = d->UploadF32(L.ffn_norm, "ffn_norm");
    if (!fn.ok()) return fn.status();
    G.ffn_norm = std::move(fn.value());
    auto parts = MakeQkvParts(dev, c, L, l);
    if (!parts.ok()) return parts.status();
    G.qkv_parts = std::move(parts.value());
    d->device_bytes_ += QkvPartsBytes(c);
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
    const models::MatrixRef& m = weights.output();
    if (!MatVecSupports(m.dtype))
      return Unsupported("GPU decoder: output is " + std::string(DTypeName(m.dtype)) +
                         " (supported: " + std::string(MatVecTypeNames()) + ")");
    const models::MatrixRef* head[1] = {&m};
    const uint64_t head_bytes = weights.group(weights.head_group()).bytes;
    if (group_buf.size() < head_bytes) group_buf.Reset(head_bytes);
    SPOOL_TRY(d->files_->Read(head, group_buf.data(), head_bytes, "GPU decoder: loading the output head"));
    d->tier_stats_.load_bytes += m.info->nbytes;
    auto b = dev.Allocate(m.info->nbytes, MemoryKind::kDevice, "output");
    if (!b.ok()) return b.status();
    SPOOL_TRY(dev.Upload(b.value(), 0, group_buf.data() + m.group_offset, m.info->nbytes));
    d->device_bytes_ += b.value().bytes();
    d->output_buffer_ = std::move(b.value());
    d->output_ = WeightBuffer{&d->output_buffer_, 0, m.dtype, m.n_out, m.n_in};
  }
  auto on = d->UploadF32(weights.output_norm(), "output_norm");
  if (!on.ok()) return on.status();
  d->output_norm_ = std::move(on.value());
  d->rope_tables_.resize(d->inv_freqs_.size());
  d->tier_stats_.load_seconds = load_clock.Seconds();

  auto alloc = [&](Buffer& b, uint64_t bytes, MemoryKind kind, const char* what) -> Status {
    auto r = dev.Allocate(bytes, kind, what);
    if (!r.ok()) return r.status().WithContext("GPU decoder");
    if (kind == MemoryKind::kDevice) d->device_bytes_ += r.value().bytes();
    b = std::move(r.value());
    return Status::Ok();
  };
  if (o.own_kv) {
    auto kv = d->NewKv();
    if (!kv.ok()) return kv.status();
    d->own_kv_ = std::move(kv.value());
  }
  Buffer* acts[] = {&d->x_, &d->h_, &d->q_, &d->kn_, &d->vn_, &d->att_, &d->o_, &d->gate_, &d->up_, &d->last_, &d->logits_};
  const auto sizes = ActivationBuffers(c, o.max_rows);
  for (size_t i = 0; i < sizes.size(); ++i) SPOOL_TRY(alloc(*acts[i], sizes[i].first, MemoryKind::kDevice, sizes[i].second));
  if (d->plan_.n_streamed > 0) {
    for (int s = 0; s < 2; ++s) {
      SPOOL_TRY(alloc(d->ring_[s], d->plan_.largest_layer, MemoryKind::kDevice, "weight ring slot"));
      if (d->plan_.n_disk > 0)
        SPOOL_TRY(alloc(d->staging_[s], d->plan_.staging_bytes / 2, MemoryKind::kHostVisible, "weight staging buffer"));
    }
  }
  if (d->plan_.kv_windowed()) {
    const VramPlan& p = d->plan_;
    d->cold_group_pages_ = std::min(p.kv_hot_pages, p.kv_pages - p.kv_hot_pages);
    const uint64_t group = static_cast<uint64_t>(d->cold_group_pages_ * o.page_tokens) * d->KvRowBytes();
    d->cold_group_bytes_ = AlignUp(group, 4);
    for (int b = 0; b < 2; ++b) {
      SPOOL_TRY(alloc(d->cold_[b], 2 * d->cold_group_bytes_, MemoryKind::kDevice, "cold KV pages"));
      SPOOL_TRY(alloc(d->cold_stage_[b], 2 * d->cold_group_bytes_, MemoryKind::kHostVisible, "cold KV staging"));
    }
    SPOOL_TRY(alloc(d->att_state_, AttentionStateBytes(o.max_rows, c.n_head, c.head_dim), MemoryKind::kDevice,
                    "attention state"));
  }
  {
    Buffer* scratch[] = {&d->qs_, &d->atts_};
    Buffer* tree[] = {&d->tree_k_, &d->tree_v_, &d->tree_q_, &d->tree_out_, &d->tree_state_};
    const auto bufs = ScratchBuffers(c, o);
    size_t i = 0;
    if (o.max_rows > 1 && c.n_ff < c.q_dim())
      for (Buffer* b : scratch) {
        SPOOL_TRY(alloc(*b, bufs[i].first, MemoryKind::kDevice, bufs[i].second));
        ++i;
      }
    if (o.trees) {
      for (Buffer* b : tree) {
        SPOOL_TRY(alloc(*b, bufs[i].first, MemoryKind::kDevice, bufs[i].second));
        ++i;
      }
      d->tree_rows_cap_ = o.page_tokens + o.max_rows;
      if (!d->plan_.kv_windowed())
        SPOOL_TRY(alloc(d->att_state_, AttentionStateBytes(o.max_rows, c.n_head, c.head_dim), MemoryKind::kDevice,
                        "attention state"));
    }
  }
  d->host_rows_.resize(static_cast<size_t>(o.max_rows * c.n_embd));
  return d;
}

Status LlamaDecoder::ReadLayer(int64_t l, uint8_t* base, uint64_t bytes, const char* why) {
  const auto mats = LayerMats(w_.layer(l));
  SPOOL_TRY(files_->Read(mats, base, bytes, std::string("GPU decoder: ") + why + " layer " + std::to_string(l)));
  if (std::string_view(why) == "loading") tier_stats_.load_bytes += WeightFileReader::PayloadBytes(mats);
  return Status::Ok();
}

Status LlamaDecoder::Stage(int layer, int slot) {
  const Layer& G = layers_[static_cast<size_t>(layer)];
  // The staging buffer is free once the copy out of it has finished; the ring slot once
  // the compute that last read it has (that compute waited for the slot's copy).
  SPOOL_TRY(dev_.WaitCopy(slot_copy_[slot]));
  const Buffer* src = &G.host;
  int tag = 1;
  if (G.tier == WeightTier::kDisk) {
    // Read while the device computes the layers flushed before this call.
    const storage::ReaderStats before = files_->reader().stats();
    Stopwatch sw;
    SPOOL_TRY(ReadLayer(layer, static_cast<uint8_t*>(staging_[slot].data()), staging_[slot].bytes(), "streaming"));
    tier_stats_.disk_read_seconds += sw.Seconds();
    tier_stats_.disk_read_bytes += WeightFileReader::PayloadBytes(LayerMats(w_.layer(layer)));
    const storage::ReaderStats after = files_->reader().stats();
    tier_stats_.disk_device_bytes += after.device_bytes - before.device_bytes;
    tier_stats_.disk_bounced_bytes += after.bounced_bytes - before.bounced_bytes;
    tier_stats_.read_path = files_->read_path();
    src = &staging_[slot];
    tag = 2;
  }
  SPOOL_CHECK(G.tier != WeightTier::kVram);
  SPOOL_TRY(dev_.WaitSubmission(slot_use_[slot]));
  auto id = dev_.CopyAsync(*src, ring_[slot], G.regions, tag);
  if (!id.ok()) return id.status();
  uint64_t bytes = 0;
  for (const CopyRegion& r : G.regions) bytes += r.bytes;
  (G.tier == WeightTier::kDisk ? tier_stats_.disk_copy_bytes : tier_stats_.host_copy_bytes) += bytes;
  slot_copy_[slot] = id.value();
  slot_layer_[slot] = layer;
  return Status::Ok();
}

Status LlamaDecoder::Forward(std::span<const Segment> segs) {
  const models::ModelConfig& c = w_.config();
  const int64_t D = c.n_embd;
  int64_t n = 0;  // rows of the pass, every segment's
  for (const Segment& sg : segs) {
    SPOOL_CHECK(sg.row0 == n);
    n += sg.n;
  }
  SPOOL_CHECK(n >= 1 && n <= opts_.max_rows);
  for (const Segment& sg : segs) SPOOL_TRY(PrepareKvWindow(*sg.kv, sg.n));
  // Row r's position: its sequence's next slot, or for a tree node base + depth.
  std::vector<int64_t> positions(static_cast<size_t>(n));
  std::vector<std::vector<int32_t>> depths(segs.size());
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (size_t j = 0; j < segs.size(); ++j) {
    const Segment& sg = segs[j];
    const int64_t p0 = sg.kv->n_tokens;
    std::copy(sg.ids, sg.ids + sg.n, ids.begin() + sg.row0);
    if (sg.tree_parent.empty()) {
      for (int64_t i = 0; i < sg.n; ++i) positions[static_cast<size_t>(sg.row0 + i)] = p0 + i;
      continue;
    }
    SPOOL_TRY(models::TreeDepths(sg.tree_parent, &depths[j]));
    for (int64_t i = 0; i < sg.n; ++i)
      positions[static_cast<size_t>(sg.row0 + i)] = sg.tree_base + depths[j][static_cast<size_t>(p0 - sg.tree_base + i)];
  }
  // Embedding rows on the host (the provider's table), then to the device.
  provider_.BeginStep();  // the provider supplies only embedding rows; its step begins
  SPOOL_TRY(provider_.EmbeddingRows(ids.data(), n, host_rows_.data()));
  SPOOL_TRY(dev_.Upload(x_, 0, host_rows_.data(), static_cast<uint64_t>(n * D) * 4));
  for (size_t i = 0; i < inv_freqs_.size(); ++i)
    SPOOL_TRY(k_.RopeTable(positions, inv_freqs_[i], mscales_[i], rope_tables_[i]));

  const bool neox = c.rope_style == RopeStyle::kNeox;
  const int n_layer = static_cast<int>(c.n_layer);
  const int first_streamed = plan_.n_resident;
  int slot = 0;  // the ring slot of the next streamed layer
  if (first_streamed < n_layer) SPOOL_TRY(Stage(first_streamed, 0));
  for (int l = 0; l < n_layer; ++l) {
    const Layer& G = layers_[static_cast<size_t>(l)];
    const models::LayerSpec& spec = c.layers[static_cast<size_t>(l)];
    const bool streamed = l >= first_streamed;
    std::array<WeightBuffer, kMats> m = G.mats;
    if (streamed) {
      // Submit what is recorded (earlier layers compute while we wait), then wait for
      // this layer's copy; it was staged while the previous layer computed.
      SPOOL_TRY(dev_.Flush().status());
      SPOOL_CHECK(slot_layer_[slot] == l);
      SPOOL_TRY(dev_.WaitCopy(slot_copy_[slot]));
      for (auto& wb : m) wb.buffer = &ring_[slot];
    }
    const auto& [wq, wk, wv, wo, gate, up, down] = m;
    const Buffer& table = rope_tables_[static_cast<size_t>(G.rope_table)];
    // Attention: RMSNorm → Q, K, V → RoPE → KV write → attention over [0, pos] → O.
    // Every matmul carries the rows of all segments (one pass over the weights).
    SPOOL_TRY(k_.RmsNorm(x_, G.attn_norm, c.rms_eps, n, D, h_));
    SPOOL_TRY(k_.MatMul(wq, h_, q_, n));   // [n, q_dim]
    SPOOL_TRY(k_.MatMul(wk, h_, kn_, n));  // [n, kv_dim]
    SPOOL_TRY(k_.MatMul(wv, h_, vn_, n));  // [n, kv_dim]
    // The architecture's steps before RoPE (bias, q/k norm), chosen at Open.
    for (const auto& part : G.qkv_parts) SPOOL_TRY(part->Record(k_, QkvRows{q_, kn_, vn_, n}));
    SPOOL_TRY(k_.Rope(neox, q_, n, c.n_head, c.head_dim, c.rope_dim, table));
    SPOOL_TRY(k_.Rope(neox, kn_, n, c.n_head_kv, c.head_dim, c.rope_dim, table));
    const int64_t window = spec.mixer == models::MixerKind::kSlidingAttention ? spec.window : 0;
    const GpuAttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, c.attention_scale(), window, c.attn_softcap};
    // Attention per sequence, over its own cache: K/V rows into it, output into att_.
    for (size_t j = 0; j < segs.size(); ++j) {
      const Segment& sg = segs[j];
      const std::span<const int64_t> pos(positions.data() + sg.row0, static_cast<size_t>(sg.n));
      if (sg.tree_parent.empty()) SPOOL_TRY(Attend(*sg.kv, l, sg.row0, sg.n, pos, shape));
      else SPOOL_TRY(AttendTree(sg, l, pos, depths[j], shape));
    }
    SPOOL_TRY(k_.MatMul(wo, att_, o_, n));  // [n, n_embd]
    SPOOL_TRY(k_.Add(x_, o_, n * D, x_));
    // Feed-forward: RMSNorm → gate, up → SwiGLU → down.
    SPOOL_TRY(k_.RmsNorm(x_, G.ffn_norm, c.rms_eps, n, D, h_));
    SPOOL_TRY(k_.MatMul(gate, h_, gate_, n));  // [n, n_ff]
    SPOOL_TRY(k_.MatMul(up, h_, up_, n));      // [n, n_ff]
    SPOOL_TRY(k_.SwiGLU(gate_, up_, n * c.n_ff, gate_));
    SPOOL_TRY(k_.MatMul(down, gate_, o_, n));  // [n, n_embd]
    SPOOL_TRY(k_.Add(x_, o_, n * D, x_));
    if (streamed) {
      // Submit this layer, then stage the next streamed layer into the other slot: its
      // copy runs on the transfer queue while the device computes this one.
      auto id = dev_.Flush();
      if (!id.ok()) return id.status();
      slot_use_[slot] = dev_.last_submission();
      slot = 1 - slot;
      if (l + 1 < n_layer) SPOOL_TRY(Stage(l + 1, slot));
    }
  }
  // The head per row (GEMV), so every row's logits are a decode step's.
  for (const Segment& sg : segs) {
    if (!sg.logits) continue;
    for (int64_t r = sg.all_logits ? 0 : sg.n - 1; r < sg.n; ++r) {
      const int32_t row[1] = {static_cast<int32_t>(sg.row0 + r)};
      SPOOL_TRY(k_.GetRows(x_, DType::kF32, n, D, row, last_));
      SPOOL_TRY(k_.RmsNorm(last_, output_norm_, c.rms_eps, 1, D, last_));
      SPOOL_TRY(k_.MatVec(output_, last_, logits_, 1));  // [n_vocab]
      float* dst = sg.logits + (sg.all_logits ? r * c.n_vocab : 0);
      SPOOL_TRY(dev_.Download(logits_, 0, dst, static_cast<uint64_t>(c.n_vocab) * 4));
    }
  }
  for (const Segment& sg : segs) sg.kv->n_tokens += sg.n;
  ++tier_stats_.passes;
  return Status::Ok();
}

Status LlamaDecoder::CheckRun(const DeviceKv& kv, std::span<const int32_t> tokens) const {
  const models::ModelConfig& c = w_.config();
  if (tokens.empty()) return InvalidArgument("GPU decoder: an empty prompt");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= c.n_vocab)
      return InvalidArgument("GPU decoder: prompt token " + std::to_string(tokens[i]) + " at " + std::to_string(i) +
                             " outside the vocabulary of " + std::to_string(c.n_vocab));
  if (kv.n_tokens + static_cast<int64_t>(tokens.size()) > opts_.ctx)
    return ResourceExhausted("GPU decoder: a prompt of " + std::to_string(tokens.size()) + " tokens after " +
                             std::to_string(kv.n_tokens) + " does not fit the context of " + std::to_string(opts_.ctx));
  return Status::Ok();
}

Status LlamaDecoder::Run(DeviceKv& kv, std::span<const int32_t> tokens, float* logits, bool all_logits) {
  RunItem it;
  it.kv = &kv;
  it.tokens = tokens;
  it.logits = logits;
  it.all_logits = all_logits;
  return Run(std::span<const RunItem>(&it, 1));
}

Status LlamaDecoder::Run(std::span<const RunItem> items) {
  const int64_t V = w_.config().n_vocab;
  for (size_t i = 0; i < items.size(); ++i) {
    SPOOL_CHECK(items[i].kv != nullptr);
    SPOOL_TRY(CheckRun(*items[i].kv, items[i].tokens));
    for (size_t j = 0; j < i; ++j)
      if (items[j].kv == items[i].kv) return InvalidArgument("GPU decoder: a sequence appears twice in one run");
    if (!items[i].tree_parent.empty()) SPOOL_TRY(CheckTree(items[i]));
  }
  std::vector<int64_t> start(items.size());
  for (size_t i = 0; i < items.size(); ++i) start[i] = items[i].kv->n_tokens;
  // Passes of at most max_rows rows: items in order, a chain item split where a pass is
  // full (its later rows attend to the earlier ones' KV, written by the previous pass),
  // a tree item whole in one pass.
  std::vector<Segment> pass;
  int64_t rows = 0;
  auto flush = [&]() -> Status {
    if (pass.empty()) return Status::Ok();
    Status s = Forward(pass);
    pass.clear();
    rows = 0;
    return s;
  };
  Status st = Status::Ok();
  for (size_t i = 0; i < items.size() && st.ok(); ++i) {
    const RunItem& it = items[i];
    const int64_t m = static_cast<int64_t>(it.tokens.size());
    const bool tree = !it.tree_parent.empty();
    if (tree && rows + m > opts_.max_rows) st = flush();
    for (int64_t done = 0; done < m && st.ok();) {
      if (rows == opts_.max_rows) {
        st = flush();
        if (!st.ok()) break;
      }
      const int64_t k = tree ? m : std::min(m - done, opts_.max_rows - rows);
      const bool last = done + k == m;
      float* out = it.logits == nullptr ? nullptr : it.all_logits ? it.logits + done * V : (last ? it.logits : nullptr);
      // A segment's rows start where the cache will be when its pass runs: segments of
      // the same item are in different passes, so kv->n_tokens is current then.
      pass.push_back(Segment{it.kv, it.tokens.data() + done, k, rows, out, it.all_logits, it.tree_base, it.tree_parent});
      rows += k;
      done += k;
    }
  }
  if (st.ok()) st = flush();
  if (!st.ok()) {
    // Rows the host caches took from this run (evicted pages) go too; their own errors
    // (a disk cache) are secondary to the first one.
    for (size_t i = 0; i < items.size(); ++i) {
      Status dropped = Truncate(*items[i].kv, std::min(start[i], items[i].kv->n_tokens));
      (void)dropped;  // the first error is the one to report
    }
    return st;
  }
  return Status::Ok();
}

Status LlamaDecoder::Step(int32_t token, float* logits) {
  const models::ModelConfig& c = w_.config();
  SPOOL_CHECK(own_kv_ != nullptr);
  if (token < 0 || token >= c.n_vocab)
    return InvalidArgument("GPU decoder: token " + std::to_string(token) + " outside the vocabulary of " +
                           std::to_string(c.n_vocab));
  if (own_kv_->n_tokens >= opts_.ctx)
    return ResourceExhausted("GPU decoder: context of " + std::to_string(opts_.ctx) + " tokens is full");
  return Run(*own_kv_, std::span<const int32_t>(&token, 1), logits, false);
}

Status LlamaDecoder::Prefill(std::span<const int32_t> tokens, float* logits) {
  SPOOL_CHECK(own_kv_ != nullptr);
  return Run(*own_kv_, tokens, logits, false);
}

}  // namespace spool::gpu
