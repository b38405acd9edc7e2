// gpt-oss's mixture-of-experts tensors (ModelWeights::InitGptOssMoe).
//
// GGUF (llama.cpp's converter): the usual ffn_gate_inp [E, D] and ffn_{gate,up,down}_exps
// (MXFP4 in GGUF's block layout, or any dtype spool reads), plus ffn_gate_inp.bias [E],
// ffn_{gate,up}_exps.bias [E, F] and ffn_down_exps.bias [E, D].
//
// HF (the released checkpoints): mlp.router.{weight [E, D], bias [E]} and the experts
// in OpenAI's MXFP4 layout, kept as stored (4.25 bits per weight; never widened):
//   mlp.experts.gate_up_proj_blocks [E, 2F, D/32, 16] u8, _scales [E, 2F, D/32] u8,
//     _bias [E, 2F] (rows interleaved: even = gate, odd = up);
//   mlp.experts.down_proj_blocks [E, D, F/32, 16] u8, _scales [E, D, F/32] u8, _bias [E, D].
// Each expert's rows of the blocks and scales tensors are its extents (PlaceRowsSplit).
#include <string>
#include <vector>

#include "models/weights.h"

namespace spool::models {

namespace {

std::string Shape(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A tensor of exactly `shape` (error: named, expected vs actual).
Result<const formats::TensorInfo*> Exact(const formats::ModelSource& src, const std::string& name,
                                         const std::vector<uint64_t>& shape, const char* what) {
  const formats::TensorInfo* t = src.FindTensor(name);
  if (!t) return InvalidFile(src.root + ": missing tensor '" + name + "' (" + what + ")");
  if (t->shape != shape)
    return InvalidFile(src.root + ": tensor '" + name + "' has shape " + Shape(t->shape) + ", expected " + Shape(shape) +
                       " (" + what + ")");
  return t;
}

Result<std::vector<float>> Floats(const formats::ModelSource& src, const std::string& name,
                                  const std::vector<uint64_t>& shape, const char* what) {
  SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, Exact(src, name, shape, what));
  if (t->dtype == DType::kU8 || t->dtype == DType::kI32)
    return InvalidFile(src.root + ": tensor '" + name + "' has integer type " + std::string(DTypeName(t->dtype)) +
                       ", expected floats (" + what + ")");
  return ReadTensorF32(src, *t);
}

// An MXFP4 matrix [rows, n_in] in the split layout: blocks [E, R, n_in/32, 16] and
// scales [E, R, n_in/32], both u8.
Status SplitMxfp4(const formats::ModelSource& src, const std::string& base, uint64_t E, uint64_t R, uint64_t n_in,
                  MatrixRef* out) {
  if (n_in % 32 != 0)
    return InvalidFile(src.root + ": '" + base + "': MXFP4 rows of " + std::to_string(n_in) +
                       " elements are not whole blocks of 32");
  const std::string bn = base + "_blocks", sn = base + "_scales";
  SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* b, Exact(src, bn, {E, R, n_in / 32, 16}, "MXFP4 blocks: 16 bytes per 32 weights"));
  SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* s, Exact(src, sn, {E, R, n_in / 32}, "MXFP4 scales: one E8M0 byte per 32 weights"));
  for (const formats::TensorInfo* t : {b, s})
    if (t->dtype != DType::kU8)
      return InvalidFile(src.root + ": tensor '" + t->name + "' has type " + std::string(DTypeName(t->dtype)) +
                         ", expected U8 (MXFP4 " + (t == b ? "blocks" : "scales") + ")");
  out->info = b;
  out->scales_info = s;
  out->dtype = DType::kMXFP4;
  out->n_out = static_cast<int64_t>(E * R);
  out->n_in = static_cast<int64_t>(n_in);
  return Status::Ok();
}

}  // namespace

Status ModelWeights::InitGptOssMoe(int64_t l) {
  const ModelConfig& c = config_;
  MoeWeights& m = layers_[l].moe;
  const int64_t E = c.moe.n_expert, F = c.moe.n_ff_expert, D = c.n_embd;
  const uint64_t e64 = static_cast<uint64_t>(E), f64 = static_cast<uint64_t>(F), d64 = static_cast<uint64_t>(D);
  m.experts.resize(E);
  if (source_.kind == formats::ModelSource::Kind::kGguf) {
    const std::string b = "blk." + std::to_string(l) + ".";
    auto matrix = [&](const std::string& name, std::vector<uint64_t> shape, MatrixRef* out) -> Status {
      SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, Exact(source_, name, shape, "gpt-oss expert weights"));
      if (t->dtype == DType::kU8 || t->dtype == DType::kI32)
        return InvalidFile(source_.root + ": tensor '" + name + "' has an integer type");
      out->info = t;
      out->dtype = t->dtype;
      out->n_in = static_cast<int64_t>(shape.back());
      out->n_out = static_cast<int64_t>(t->n_elements() / shape.back());
      return Status::Ok();
    };
    SPOOL_TRY(matrix(b + "ffn_gate_inp.weight", {e64, d64}, &m.router));
    SPOOL_TRY(matrix(b + "ffn_gate_exps.weight", {e64, f64, d64}, &m.fused_gate));
    SPOOL_TRY(matrix(b + "ffn_up_exps.weight", {e64, f64, d64}, &m.fused_up));
    SPOOL_TRY(matrix(b + "ffn_down_exps.weight", {e64, d64, f64}, &m.fused_down));
    SPOOL_ASSIGN_OR_RETURN(m.router_bias, Floats(source_, b + "ffn_gate_inp.bias", {e64}, "router bias"));
    SPOOL_ASSIGN_OR_RETURN(m.gate_bias, Floats(source_, b + "ffn_gate_exps.bias", {e64, f64}, "expert gate biases"));
    SPOOL_ASSIGN_OR_RETURN(m.up_bias, Floats(source_, b + "ffn_up_exps.bias", {e64, f64}, "expert up biases"));
    SPOOL_ASSIGN_OR_RETURN(m.down_bias, Floats(source_, b + "ffn_down_exps.bias", {e64, d64}, "expert down biases"));
    return Status::Ok();
  }
  const std::string mb = "model.layers." + std::to_string(l) + ".mlp.";
  {
    SPOOL_ASSIGN_OR_RETURN(const formats::TensorInfo* t, Exact(source_, mb + "router.weight", {e64, d64}, "router"));
    if (t->dtype == DType::kU8 || t->dtype == DType::kI32)
      return InvalidFile(source_.root + ": tensor '" + t->name + "' has an integer type");
    m.router.info = t;
    m.router.dtype = t->dtype;
    m.router.n_out = E;
    m.router.n_in = D;
  }
  SPOOL_ASSIGN_OR_RETURN(m.router_bias, Floats(source_, mb + "router.bias", {e64}, "router bias"));
  if (source_.FindTensor(mb + "experts.gate_up_proj") || source_.FindTensor(mb + "experts.down_proj"))
    return Unsupported(source_.root + ": '" + mb + "experts.gate_up_proj': gpt-oss experts stored unquantised "
                       "(transposed [E, D, 2F], what save_pretrained writes after dequantising) are not supported; "
                       "spool reads the MXFP4 checkpoints (experts.*_blocks / *_scales)");
  SPOOL_TRY(SplitMxfp4(source_, mb + "experts.gate_up_proj", e64, 2 * f64, d64, &m.fused_gate_up));
  SPOOL_TRY(SplitMxfp4(source_, mb + "experts.down_proj", e64, d64, f64, &m.fused_down));
  SPOOL_ASSIGN_OR_RETURN(std::vector<float> gu, Floats(source_, mb + "experts.gate_up_proj_bias", {e64, 2 * f64},
                                                       "expert gate/up biases, interleaved"));
  m.gate_bias.resize(E * F);
  m.up_bias.resize(E * F);
  for (int64_t i = 0; i < E * F; ++i) {
    m.gate_bias[i] = gu[2 * i];
    m.up_bias[i] = gu[2 * i + 1];
  }
  SPOOL_ASSIGN_OR_RETURN(m.down_bias, Floats(source_, mb + "experts.down_proj_bias", {e64, d64}, "expert down biases"));
  return Status::Ok();
}

}  // namespace spool::models
