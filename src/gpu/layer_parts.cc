#include "gpu/layer_parts.h"

#include <string>
#include <utility>

namespace spool::gpu {
namespace {

Status Refuse(const std::string& what) { return Unsupported("GPU decoder: " + what + " is not supported on the GPU yet"); }

Result<Buffer> UploadVector(VulkanDevice& dev, const std::vector<float>& v, int64_t want, int64_t layer,
                            const char* what) {
  if (static_cast<int64_t>(v.size()) != want)
    return InvalidArgument("GPU decoder: layer " + std::to_string(layer) + " " + what + " has " +
                           std::to_string(v.size()) + " values, expected " + std::to_string(want));
  auto b = dev.Allocate(v.size() * 4, MemoryKind::kDevice, what);
  if (!b.ok()) return b.status().WithContext("GPU decoder: layer " + std::to_string(layer));
  SPOOL_TRY(dev.Upload(b.value(), 0, v.data(), v.size() * 4));
  return std::move(b.value());
}

// Qwen2: q += bq, k += bk, v += bv on every row (Transformer::AttentionMixer's Add per row).
class QkvBias final : public QkvPart {
 public:
  QkvBias(Buffer bq, Buffer bk, Buffer bv, int64_t q_dim, int64_t kv_dim)
      : bq_(std::move(bq)), bk_(std::move(bk)), bv_(std::move(bv)), q_dim_(q_dim), kv_dim_(kv_dim) {}
  const char* name() const override { return "QKV bias"; }
  Status Record(Kernels& k, const QkvRows& r) const override {
    SPOOL_TRY(k.AddBias(r.q, bq_, r.n, q_dim_, r.q));  // [n, q_dim]
    SPOOL_TRY(k.AddBias(r.k, bk_, r.n, kv_dim_, r.k));  // [n, kv_dim]
    return k.AddBias(r.v, bv_, r.n, kv_dim_, r.v);      // [n, kv_dim]
  }

 private:
  Buffer bq_, bk_, bv_;  // [q_dim], [kv_dim], [kv_dim]
  int64_t q_dim_, kv_dim_;
};

// Qwen3: RMSNorm over each head of q and of k, before RoPE (rows = tokens × heads).
class QkHeadNorm final : public QkvPart {
 public:
  QkHeadNorm(Buffer q_norm, Buffer k_norm, const models::ModelConfig& c)
      : q_norm_(std::move(q_norm)), k_norm_(std::move(k_norm)), n_head_(c.n_head), n_head_kv_(c.n_head_kv),
        head_dim_(c.head_dim), eps_(c.rms_eps) {}
  const char* name() const override { return "q/k norm"; }
  Status Record(Kernels& k, const QkvRows& r) const override {
    SPOOL_TRY(k.RmsNorm(r.q, q_norm_, eps_, r.n * n_head_, head_dim_, r.q));     // [n·n_head, head_dim]
    return k.RmsNorm(r.k, k_norm_, eps_, r.n * n_head_kv_, head_dim_, r.k);      // [n·n_head_kv, head_dim]
  }

 private:
  Buffer q_norm_, k_norm_;  // [head_dim] each
  int64_t n_head_, n_head_kv_, head_dim_;
  float eps_;
};

}  // namespace

std::vector<std::string> QkvPartsMissing(const models::ModelConfig& c) {
  std::vector<std::string> no;
  if (c.qk_norm && c.qk_norm_full) no.push_back("q/k norm over the whole projection (qk_norm_full)");
  if (c.attn_output_gate) no.push_back("the attention output gate (attn_output_gate)");
  if (c.o_bias) no.push_back("output projection bias (o_bias)");
  return no;
}

Status QkvPartsSupport(const models::ModelConfig& c) {
  const std::vector<std::string> no = QkvPartsMissing(c);
  return no.empty() ? Status::Ok() : Refuse(no[0]);
}

uint64_t QkvPartsBytes(const models::ModelConfig& c) {
  uint64_t floats = 0;
  if (c.qkv_bias) floats += static_cast<uint64_t>(c.q_dim() + 2 * c.kv_dim());
  if (c.qk_norm) floats += 2 * static_cast<uint64_t>(c.head_dim);
  return floats * 4;
}

Result<std::vector<std::unique_ptr<QkvPart>>> MakeQkvParts(VulkanDevice& dev, const models::ModelConfig& c,
                                                          const models::LayerWeights& L, int64_t layer) {
  SPOOL_TRY(QkvPartsSupport(c));
  std::vector<std::unique_ptr<QkvPart>> parts;
  // The architecture table of the QKV steps, in models::Transformer's order.
  if (c.qkv_bias) {
    auto bq = UploadVector(dev, L.bq, c.q_dim(), layer, "attn_q.bias");
    if (!bq.ok()) return bq.status();
    auto bk = UploadVector(dev, L.bk, c.kv_dim(), layer, "attn_k.bias");
    if (!bk.ok()) return bk.status();
    auto bv = UploadVector(dev, L.bv, c.kv_dim(), layer, "attn_v.bias");
    if (!bv.ok()) return bv.status();
    parts.push_back(std::make_unique<QkvBias>(std::move(bq.value()), std::move(bk.value()), std::move(bv.value()),
                                              c.q_dim(), c.kv_dim()));
  }
  if (c.qk_norm) {
    auto qn = UploadVector(dev, L.q_norm, c.head_dim, layer, "attn_q_norm");
    if (!qn.ok()) return qn.status();
    auto kn = UploadVector(dev, L.k_norm, c.head_dim, layer, "attn_k_norm");
    if (!kn.ok()) return kn.status();
    parts.push_back(std::make_unique<QkHeadNorm>(std::move(qn.value()), std::move(kn.value()), c));
  }
  return parts;
}

}  // namespace spool::gpu
