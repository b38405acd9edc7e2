#include "models/weights.h"

#include <algorithm>
#include <cmath>

#include "models/multimodal.h"
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
  SPOOL_TRY(ExtractTextModel(&w->source_));  // multimodal checkpoints: their text model
  SPOOL_ASSIGN_OR_RETURN(w->config_, ReadModelConfig(w->source_));
  SPOOL_TRY(w->Init());
  return w;
}

namespace {

std::string ShapeString(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Looks tensors up by name and checks their shapes; every error names the tensor and
// says expected vs actual.
struct TensorFinder {
  const formats::ModelSource& src;

  Result<const formats::TensorInfo*> Find(const std::string& name) const {
    const formats::TensorInfo* t = src.FindTensor(name);
    if (!t) return InvalidFile(src.root + ": missing tensor '" + name + "'");
    return t;
  }
  // A stored tensor of shape `shape` viewed as the matrix [rows = Π shape[..-1], shape[-1]].
  Status Matrix(const std::string& name, const std::vector<uint64_t>& shape, MatrixRef* out) const {
    SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, Find(name));
    if (t->shape != shape)
      return InvalidFile(src.root + ": tensor '" + t->name + "' has shape " + ShapeString(t->shape) + ", expected " +
                         ShapeString(shape));
    if (t->dtype == DType::kI32 || t->dtype == DType::kU8)
      return Unsupported(src.root + ": tensor '" + t->name + "' has integer type " + std::string(DTypeName(t->dtype)));
    out->info = t;
    out->dtype = t->dtype;
    out->n_in = static_cast<int64_t>(shape.back());
    out->n_out = static_cast<int64_t>(t->n_elements() / shape.back());
    return Status::Ok();
  }
  Status Matrix(const std::string& name, int64_t n_out, int64_t n_in, MatrixRef* out) const {
    return Matrix(name, {static_cast<uint64_t>(n_out), static_cast<uint64_t>(n_in)}, out);
  }
  Status Vec(const std::string& name, int64_t n, std::vector<float>* out) const {
    SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, Find(name));
    if (t->n_elements() != static_cast<uint64_t>(n) || t->shape.size() != 1)
      return InvalidFile(src.root + ": tensor '" + t->name + "' has " + std::to_string(t->n_elements()) +
                         " elements, expected a vector of " + std::to_string(n));
    SPOOL_ASSIGN_OR_RETURN(*out, ReadTensorF32(src, *t));
    return Status::Ok();
  }
};

// Rows [row0, row0 + n_out) of stored matrix `m` (a whole tensor, fused or not) placed
// in expert unit `u` as one extent; returns their view (group_offset in u's buffer).
MatrixRef PlaceRows(ExpertRef& u, const MatrixRef& m, int64_t row0, int64_t n_out) {
  const uint64_t row_bytes = m.info->nbytes / static_cast<uint64_t>(m.n_out);
  const uint64_t offset = m.info->offset + static_cast<uint64_t>(row0) * row_bytes;
  const uint64_t nbytes = static_cast<uint64_t>(n_out) * row_bytes;
  MatrixRef r = m;
  r.n_out = n_out;
  r.group_offset = AlignUp(u.bytes, kGroupPage) + offset % kGroupPage;
  u.bytes = AlignUp(r.group_offset + nbytes, kGroupPage);
  u.extents.push_back(FileExtent{m.info->file_index, offset, nbytes, r.group_offset});
  return r;
}

// The split-layout (HF MXFP4) twin of PlaceRows: rows [row0, row0 + n_out) of the
// blocks tensor, then the same rows of the scales tensor, as two extents.
MatrixRef PlaceRowsSplit(ExpertRef& u, const MatrixRef& m, int64_t row0, int64_t n_out) {
  MatrixRef r = PlaceRows(u, m, row0, n_out);
  const uint64_t scale_row = static_cast<uint64_t>(m.n_in / 32);
  const uint64_t offset = m.scales_info->offset + static_cast<uint64_t>(row0) * scale_row;
  const uint64_t nbytes = static_cast<uint64_t>(n_out) * scale_row;
  r.scales_offset = AlignUp(u.bytes, kGroupPage) + offset % kGroupPage;
  u.bytes = AlignUp(r.scales_offset + nbytes, kGroupPage);
  u.extents.push_back(FileExtent{m.scales_info->file_index, offset, nbytes, r.scales_offset});
  return r;
}

}  // namespace

Status ModelWeights::InitMoe(int64_t l) {
  const ModelConfig& c = config_;
  if (c.arch == "gpt-oss") return InitGptOssMoe(l);
  const TensorFinder f{source_};
  MoeWeights& m = layers_[l].moe;
  const int64_t E = c.moe.n_expert, F = c.moe.n_ff_expert, D = c.n_embd;
  const uint64_t e64 = static_cast<uint64_t>(E), f64 = static_cast<uint64_t>(F), d64 = static_cast<uint64_t>(D);
  const bool gguf = source_.kind == formats::ModelSource::Kind::kGguf;
  if (c.moe.n_ff_shared > 0) {
    const int64_t S = c.moe.n_ff_shared;
    SPOOL_TRY(f.Matrix(TensorName(source_.kind, TensorRole::kShexpGate, l), S, D, &m.shared.gate));
    SPOOL_TRY(f.Matrix(TensorName(source_.kind, TensorRole::kShexpUp, l), S, D, &m.shared.up));
    SPOOL_TRY(f.Matrix(TensorName(source_.kind, TensorRole::kShexpDown, l), D, S, &m.shared.down));
    // The shared expert's gate is one row: [1, n_embd] in HF and in what llama.cpp's
    // converter writes (ne {n_embd, 1}); a vector [n_embd] is the same bytes (llama.cpp
    // loads either as {n_embd}; tools/gen_moe_gguf.py writes that).
    const std::string gate_name = TensorName(source_.kind, TensorRole::kShexpRouter, l);
    const formats::TensorInfo* gate_info = source_.FindTensor(gate_name);
    const bool vector_gate = gguf && gate_info && gate_info->shape.size() == 1;
    const std::vector<uint64_t> gate_shape = vector_gate ? std::vector<uint64_t>{d64} : std::vector<uint64_t>{1, d64};
    SPOOL_TRY(f.Matrix(gate_name, gate_shape, &m.shared_router));
  }
  if (gguf) {
    // llama.cpp's layout: ffn_gate_inp [E, D]; ffn_{gate,up}_exps [E, F, D]; ffn_down_exps [E, D, F].
    m.experts.resize(E);
    SPOOL_TRY(f.Matrix(TensorName(source_.kind, TensorRole::kFfnRouter, l), E, D, &m.router));
    const std::string b = "blk." + std::to_string(l) + ".";
    SPOOL_TRY(f.Matrix(b + "ffn_gate_exps.weight", {e64, f64, d64}, &m.fused_gate));
    SPOOL_TRY(f.Matrix(b + "ffn_up_exps.weight", {e64, f64, d64}, &m.fused_up));
    SPOOL_TRY(f.Matrix(b + "ffn_down_exps.weight", {e64, d64, f64}, &m.fused_down));
    return Status::Ok();
  }
  const bool fused = source_.FindTensor(HfExpertTensorName(c, ExpertTensor::kFusedGateUp, l, 0)) != nullptr;
  auto name = [&](ExpertTensor t, int64_t e) { return HfExpertTensorName(c, t, l, e); };
  const ExpertTensor router = fused && !source_.FindTensor(name(ExpertTensor::kRouter, 0)) ? ExpertTensor::kFusedRouter
                                                                                          : ExpertTensor::kRouter;
  // The router's rows are the experts: a count that disagrees with config.json is caught here.
  SPOOL_TRY(f.Matrix(name(router, 0), E, D, &m.router));
  m.experts.resize(E);
  if (fused) {
    SPOOL_TRY(f.Matrix(name(ExpertTensor::kFusedGateUp, 0), {e64, 2 * f64, d64}, &m.fused_gate_up));
    SPOOL_TRY(f.Matrix(name(ExpertTensor::kFusedDown, 0), {e64, d64, f64}, &m.fused_down));
    return Status::Ok();  // expert views are cut once the fused tensors are placed
  }
  for (int64_t e = 0; e < E; ++e) {
    SwiGluWeights& x = m.experts[e];
    SPOOL_TRY(f.Matrix(name(ExpertTensor::kGate, e), F, D, &x.gate));
    SPOOL_TRY(f.Matrix(name(ExpertTensor::kUp, e), F, D, &x.up));
    SPOOL_TRY(f.Matrix(name(ExpertTensor::kDown, e), D, F, &x.down));
  }
  // A checkpoint with more experts than config.json says would be silently truncated.
  if (source_.FindTensor(name(ExpertTensor::kGate, E)))
    return InvalidFile(source_.root + ": layer " + std::to_string(l) + " has a tensor '" + name(ExpertTensor::kGate, E) +
                       "' beyond the " + std::to_string(E) + " experts config.json declares");
  return Status::Ok();
}

Status ModelWeights::InitLinear(int64_t l) {
  const ModelConfig& c = config_;
  const LinearAttnSpec& s = c.linear;
  const TensorFinder f{source_};
  LinearAttnWeights& w = layers_[l].linear;
  auto name = [&](TensorRole role) { return TensorName(c, source_.kind, role, l); };
  const bool gguf = source_.kind == formats::ModelSource::Kind::kGguf;
  // The input projection: grouped (HF in_proj_qkvz; a legacy GGUF's ssm_in) or split
  // (llama.cpp's current converter: attn_qkv + attn_gate; Qwen3.5's in_proj_qkv + in_proj_z).
  const bool split = s.ungrouped || (gguf && !source_.FindTensor(name(TensorRole::kSsmInQkvz)));
  if (s.ungrouped) {
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInQkv), s.conv_dim(), c.n_embd, &w.in_qkv));
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInZ), s.value_dim(), c.n_embd, &w.in_z));
  } else if (split) {
    if (!source_.FindTensor(name(TensorRole::kSsmInQkv)))
      return InvalidFile(source_.root + ": missing tensor '" + name(TensorRole::kSsmInQkv) + "' (or the legacy '" +
                         name(TensorRole::kSsmInQkvz) + "'): layer " + std::to_string(l) +
                         " is a Gated DeltaNet layer and needs its input projection");
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInQkv), s.conv_dim(), c.n_embd, &w.in_qkv));
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInZ), s.value_dim(), c.n_embd, &w.in_z));
  } else {
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInQkvz), s.qkvz_dim(), c.n_embd, &w.in_qkvz));
  }
  if (s.ungrouped) {  // Qwen3.5: b and a as two matrices
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInB), s.n_v_heads, c.n_embd, &w.in_b));
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInA), s.n_v_heads, c.n_embd, &w.in_a));
  } else {
    SPOOL_TRY(f.Matrix(name(TensorRole::kSsmInBa), s.ba_dim(), c.n_embd, &w.in_ba));
  }
  SPOOL_TRY(f.Matrix(name(TensorRole::kSsmOut), c.n_embd, s.value_dim(), &w.out));
  // conv1d.weight [conv_dim, 1, kernel] (HF nn.Conv1d with groups = channels); the GGUF
  // converter squeezed it to [conv_dim, kernel].
  SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* conv, f.Find(name(TensorRole::kSsmConv)));
  const uint64_t cd = static_cast<uint64_t>(s.conv_dim()), ck = static_cast<uint64_t>(s.conv_kernel);
  const std::vector<uint64_t> conv_shape = gguf ? std::vector<uint64_t>{cd, ck} : std::vector<uint64_t>{cd, 1, ck};
  if (conv->shape != conv_shape)
    return InvalidFile(source_.root + ": tensor '" + conv->name + "' has shape " + ShapeString(conv->shape) +
                       ", expected " + ShapeString(conv_shape) + " (conv channels " + std::to_string(cd) + ", kernel " +
                       std::to_string(ck) + ")");
  SPOOL_ASSIGN_OR_RETURN(w.conv, ReadTensorF32(source_, *conv));
  SPOOL_TRY(f.Vec(name(TensorRole::kSsmDtBias), s.n_v_heads, &w.dt_bias));
  std::vector<float> a;
  SPOOL_TRY(f.Vec(name(TensorRole::kSsmALog), s.n_v_heads, &a));
  w.neg_a.resize(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    // HF stores A_log; llama.cpp's converter stored −exp(A_log).
    w.neg_a[i] = gguf ? a[i] : -std::exp(a[i]);
    if (!std::isfinite(w.neg_a[i]))
      return InvalidFile(source_.root + ": tensor '" + name(TensorRole::kSsmALog) + "' value " + std::to_string(i) +
                         " is " + std::to_string(a[i]) + (gguf ? ", expected a finite number" : ": exp() is not finite"));
  }
  SPOOL_TRY(f.Vec(name(TensorRole::kSsmNorm), s.v_head_dim, &w.norm));
  return Status::Ok();
}

Status ModelWeights::Init() {
  const ModelConfig& c = config_;
  const auto kind = source_.kind;
  const TensorFinder f{source_};
  auto name = [&](TensorRole role, int64_t layer) { return TensorName(c, kind, role, layer); };
  // An RMSNorm weight: (1 + w) in f32 for HF Gemma checkpoints (the GGUF converter
  // already stored 1 + w).
  auto norm = [&](TensorRole role, int64_t layer, int64_t n, std::vector<float>* out) -> Status {
    SPOOL_TRY(f.Vec(name(role, layer), n, out));
    if (c.norm_plus_one && kind != formats::ModelSource::Kind::kGguf)
      for (float& v : *out) v = 1.0f + v;
    return Status::Ok();
  };

  SPOOL_TRY(f.Matrix(name(TensorRole::kTokenEmbd, 0), c.n_vocab, c.n_embd, &token_embd_));
  if (c.tied_embeddings) output_ = token_embd_;
  else SPOOL_TRY(f.Matrix(name(TensorRole::kOutput, 0), c.n_vocab, c.n_embd, &output_));
  SPOOL_TRY(norm(TensorRole::kOutputNorm, 0, c.n_embd, &output_norm_));

  layers_.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = layers_[l];
    const bool linear = c.layers[l].mixer == MixerKind::kLinearAttention;
    if (linear) {
      SPOOL_TRY(InitLinear(l));
    } else {
      SPOOL_TRY(f.Matrix(name(TensorRole::kWq, l), c.wq_rows(), c.n_embd, &L.wq));
      SPOOL_TRY(f.Matrix(name(TensorRole::kWk, l), c.kv_dim(), c.n_embd, &L.wk));
      SPOOL_TRY(f.Matrix(name(TensorRole::kWv, l), c.kv_dim(), c.n_embd, &L.wv));
      SPOOL_TRY(f.Matrix(name(TensorRole::kWo, l), c.n_embd, c.q_dim(), &L.wo));
    }
    SPOOL_TRY(norm(TensorRole::kAttnNorm, l, c.n_embd, &L.attn_norm));
    if (c.qk_norm && !linear) {
      SPOOL_TRY(norm(TensorRole::kQNorm, l, c.qk_norm_full ? c.q_dim() : c.head_dim, &L.q_norm));
      SPOOL_TRY(norm(TensorRole::kKNorm, l, c.qk_norm_full ? c.kv_dim() : c.head_dim, &L.k_norm));
    }
    if (c.sandwich_norms) {
      SPOOL_TRY(norm(TensorRole::kPostAttnNorm, l, c.n_embd, &L.post_attn_norm));
      SPOOL_TRY(norm(TensorRole::kPostFfnNorm, l, c.n_embd, &L.post_ffn_norm));
    }
    if (c.o_bias) SPOOL_TRY(f.Vec(name(TensorRole::kBo, l), c.n_embd, &L.bo));
    if (c.attn_sinks) SPOOL_TRY(f.Vec(name(TensorRole::kSinks, l), c.n_head, &L.sinks));
    if (c.qkv_bias) {
      SPOOL_TRY(f.Vec(name(TensorRole::kBq, l), c.q_dim(), &L.bq));
      SPOOL_TRY(f.Vec(name(TensorRole::kBk, l), c.kv_dim(), &L.bk));
      SPOOL_TRY(f.Vec(name(TensorRole::kBv, l), c.kv_dim(), &L.bv));
    }
    SPOOL_TRY(norm(TensorRole::kFfnNorm, l, c.n_embd, &L.ffn_norm));
    switch (c.layers[l].ffn) {
      case FfnKind::kDense:
        SPOOL_TRY(f.Matrix(name(TensorRole::kWGate, l), c.n_ff, c.n_embd, &L.dense.gate));
        SPOOL_TRY(f.Matrix(name(TensorRole::kWUp, l), c.n_ff, c.n_embd, &L.dense.up));
        SPOOL_TRY(f.Matrix(name(TensorRole::kWDown, l), c.n_embd, c.n_ff, &L.dense.down));
        break;
      case FfnKind::kMoe:
        SPOOL_TRY(InitMoe(l));
        break;
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
    if (c.layers[l].mixer == MixerKind::kLinearAttention) {
      for (MatrixRef* m : {&L.linear.in_qkvz, &L.linear.in_qkv, &L.linear.in_z, &L.linear.in_ba, &L.linear.in_b,
                           &L.linear.in_a, &L.linear.out})
        if (m->info) place(g, m);  // grouped (in_qkvz, in_ba) or split (in_qkv, in_z; in_b, in_a) input projections
    } else {
      for (MatrixRef* m : {&L.wq, &L.wk, &L.wv, &L.wo}) place(g, m);
    }
    if (c.layers[l].ffn == FfnKind::kDense) {
      for (MatrixRef* m : {&L.dense.gate, &L.dense.up, &L.dense.down}) place(g, m);
      continue;
    }
    MoeWeights& m = L.moe;
    place(g, &m.router);
    if (c.moe.n_ff_shared > 0)
      for (MatrixRef* x : {&m.shared_router, &m.shared.gate, &m.shared.up, &m.shared.down}) place(g, x);
    // Routed experts: a unit each, outside the group.
    const int64_t F = c.moe.n_ff_expert, D = c.n_embd;
    m.expert_units.assign(c.moe.n_expert, ExpertRef{});
    for (int64_t e = 0; e < c.moe.n_expert; ++e) {
      ExpertRef& u = m.expert_units[e];
      SwiGluWeights& x = m.experts[e];
      if (m.fused_gate_up.scales_info) {  // gpt-oss HF MXFP4: interleaved gate/up rows, blocks + scales
        x.gate_up = PlaceRowsSplit(u, m.fused_gate_up, e * 2 * F, 2 * F);
        x.down = PlaceRowsSplit(u, m.fused_down, e * D, D);
      } else if (m.fused_gate_up.info) {  // HF fused: per expert, gate rows then up rows
        x.gate = PlaceRows(u, m.fused_gate_up, e * 2 * F, F);
        x.up = PlaceRows(u, m.fused_gate_up, e * 2 * F + F, F);
        x.down = PlaceRows(u, m.fused_down, e * D, D);
      } else if (m.fused_gate.info) {  // GGUF
        x.gate = PlaceRows(u, m.fused_gate, e * F, F);
        x.up = PlaceRows(u, m.fused_up, e * F, F);
        x.down = PlaceRows(u, m.fused_down, e * D, D);
      } else {
        x.gate = PlaceRows(u, x.gate, 0, F);
        x.up = PlaceRows(u, x.up, 0, F);
        x.down = PlaceRows(u, x.down, 0, D);
      }
      max_expert_bytes_ = std::max(max_expert_bytes_, u.bytes);
    }
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
  for (auto& L : layers_)
    for (auto& u : L.moe.expert_units) t += u.bytes;
  return t;
}

int64_t ModelWeights::n_moe_layers() const {
  int64_t n = 0;
  for (auto& s : config_.layers) n += s.ffn == FfnKind::kMoe;
  return n;
}

uint64_t ModelWeights::n_params() const {
  uint64_t n = 0;
  for (auto& t : source_.tensors) n += t.n_elements();
  return n;
}

}  // namespace spool::models
