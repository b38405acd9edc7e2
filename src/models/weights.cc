#include "models/weights.h"

#include "storage/file.h"
#include "tensor/dequant.h"

namespace spool::models {

namespace {

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
}  // namespace

Result<std::vector<float>> ReadTensorF32(const formats::ModelSource& src, const formats::TensorInfo& info) {
  if (info.file_index >= src.files.size()) return InternalError("tensor " + info.name + " has a bad file index");
  SPOOL_ASSIGN_OR_RETURN(storage::File file, storage::File::Open(src.files[info.file_index], storage::OpenMode{}));
  std::vector<uint8_t> bytes(info.nbytes);
  SPOOL_TRY(file.ReadAt(bytes.data(), info.offset, info.nbytes));
  std::vector<float> out(info.n_elements());
  DequantizeRow(info.dtype, bytes.data(), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

Result<std::unique_ptr<ModelWeights>> ModelWeights::Load(formats::ModelSource source) {
  std::unique_ptr<ModelWeights> w(new ModelWeights());
  w->source_ = std::move(source);
  SPOOL_ASSIGN_OR_RETURN(w->config_, ReadModelConfig(w->source_));
  SPOOL_TRY(w->Init());
  return w;
}

Status ModelWeights::Init() {
  const ModelConfig& c = config_;
  const auto kind = source_.kind;
  const std::string& root = source_.root;

  auto find = [&](TensorRole role, int64_t layer) -> Result<const formats::TensorInfo*> {
    std::string name = TensorName(kind, role, layer);
    const formats::TensorInfo* t = source_.FindTensor(name);
    if (!t) return InvalidFile(root + ": missing tensor '" + name + "'");
    return t;
  };
  auto matrix = [&](TensorRole role, int64_t layer, int64_t n_out, int64_t n_in, MatrixRef* out) -> Status {
    SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, find(role, layer));
    if (t->shape.size() != 2 || t->shape[0] != static_cast<uint64_t>(n_out) || t->shape[1] != static_cast<uint64_t>(n_in))
      return InvalidFile(root + ": tensor '" + t->name + "' has shape " + [&] {
        std::string s = "[";
        for (size_t i = 0; i < t->shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t->shape[i]);
        return s + "]";
      }() + ", expected [" + std::to_string(n_out) + ", " + std::to_string(n_in) + "]");
    if (t->dtype == DType::kI32) return Unsupported(root + ": tensor '" + t->name + "' has integer type i32");
    out->info = t;
    out->dtype = t->dtype;
    out->n_out = n_out;
    out->n_in = n_in;
    return Status::Ok();
  };
  auto vec = [&](TensorRole role, int64_t layer, int64_t n, std::vector<float>* out) -> Status {
    SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, find(role, layer));
    if (t->n_elements() != static_cast<uint64_t>(n) || t->shape.size() != 1)
      return InvalidFile(root + ": tensor '" + t->name + "' has " + std::to_string(t->n_elements()) +
                         " elements, expected a vector of " + std::to_string(n));
    SPOOL_ASSIGN_OR_RETURN(*out, ReadTensorF32(source_, *t));
    return Status::Ok();
  };

  SPOOL_TRY(matrix(TensorRole::kTokenEmbd, 0, c.n_vocab, c.n_embd, &token_embd_));
  if (c.tied_embeddings) output_ = token_embd_;
  else SPOOL_TRY(matrix(TensorRole::kOutput, 0, c.n_vocab, c.n_embd, &output_));
  SPOOL_TRY(vec(TensorRole::kOutputNorm, 0, c.n_embd, &output_norm_));

  layers_.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = layers_[l];
    SPOOL_TRY(matrix(TensorRole::kWq, l, c.q_dim(), c.n_embd, &L.wq));
    SPOOL_TRY(matrix(TensorRole::kWk, l, c.kv_dim(), c.n_embd, &L.wk));
    SPOOL_TRY(matrix(TensorRole::kWv, l, c.kv_dim(), c.n_embd, &L.wv));
    SPOOL_TRY(matrix(TensorRole::kWo, l, c.n_embd, c.q_dim(), &L.wo));
    SPOOL_TRY(matrix(TensorRole::kWGate, l, c.n_ff, c.n_embd, &L.w_gate));
    SPOOL_TRY(matrix(TensorRole::kWUp, l, c.n_ff, c.n_embd, &L.w_up));
    SPOOL_TRY(matrix(TensorRole::kWDown, l, c.n_embd, c.n_ff, &L.w_down));
    SPOOL_TRY(vec(TensorRole::kAttnNorm, l, c.n_embd, &L.attn_norm));
    SPOOL_TRY(vec(TensorRole::kFfnNorm, l, c.n_embd, &L.ffn_norm));
    if (c.qk_norm) {
      SPOOL_TRY(vec(TensorRole::kQNorm, l, c.head_dim, &L.q_norm));
      SPOOL_TRY(vec(TensorRole::kKNorm, l, c.head_dim, &L.k_norm));
    }
    if (c.qkv_bias) {
      SPOOL_TRY(vec(TensorRole::kBq, l, c.q_dim(), &L.bq));
      SPOOL_TRY(vec(TensorRole::kBk, l, c.kv_dim(), &L.bk));
      SPOOL_TRY(vec(TensorRole::kBv, l, c.kv_dim(), &L.bv));
    }
  }

  // Groups: one per layer, then the head. Offsets are assigned in read order. Each
  // matrix starts at the same offset inside a 4096-byte page as it has in its file
  // (group_offset ≡ info->offset mod kGroupPage), so the weight streamer can read the
  // page-aligned superset of the tensor with O_DIRECT straight into place, no copy.
  groups_.resize(c.n_layer + 1);
  auto place = [](WeightGroup& g, MatrixRef* m) {
    m->group_offset = AlignUp(g.bytes, kGroupPage) + m->info->offset % kGroupPage;
    g.bytes = AlignUp(m->group_offset + m->info->nbytes, kGroupPage);
    g.matrices.push_back(m);
  };
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = layers_[l];
    WeightGroup& g = groups_[l];
    g.name = "layer " + std::to_string(l);
    for (MatrixRef* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) place(g, m);
  }
  WeightGroup& head = groups_[c.n_layer];
  head.name = "head";
  place(head, &output_);
  if (c.tied_embeddings) token_embd_.group_offset = output_.group_offset;
  return Status::Ok();
}

uint64_t ModelWeights::total_matrix_bytes() const {
  uint64_t t = 0;
  for (auto& g : groups_) t += g.bytes;
  return t;
}

uint64_t ModelWeights::n_params() const {
  uint64_t n = 0;
  for (auto& t : source_.tensors) n += t.n_elements();
  return n;
}

}  // namespace spool::models
