#include "runtime/resident_weights.h"

#include "storage/file.h"
#include "tensor/dequant.h"

namespace spool::runtime {

Status ReadGroup(const models::ModelWeights& w, int g, uint8_t* dst) {
  const auto& src = w.source();
  for (const models::MatrixRef* m : w.group(g).matrices) {
    const auto& info = *m->info;
    SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(src.files[info.file_index], storage::OpenMode{}));
    SPOOL_TRY(f.ReadAt(dst + m->group_offset, info.offset, info.nbytes));
  }
  return Status::Ok();
}

Status ReadExpert(const models::ModelWeights& w, int64_t layer, int64_t e, uint8_t* dst) {
  const auto& src = w.source();
  for (const models::FileExtent& x : w.expert(layer, e).extents) {
    SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(src.files[x.file_index], storage::OpenMode{}));
    SPOOL_TRY(f.ReadAt(dst + x.buf_offset, x.offset, x.nbytes));
  }
  return Status::Ok();
}

Result<std::unique_ptr<ResidentWeights>> ResidentWeights::Load(const models::ModelWeights& w) {
  std::unique_ptr<ResidentWeights> r(new ResidentWeights(w));
  r->groups_.resize(w.n_groups());
  for (int g = 0; g < w.n_groups(); ++g) {
    r->groups_[g].Reset(w.group(g).bytes);
    SPOOL_TRY(ReadGroup(w, g, r->groups_[g].data()));
  }
  const auto& c = w.config();
  r->experts_.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    if (c.layers[l].ffn != models::FfnKind::kMoe) continue;
    r->experts_[l].resize(c.moe.n_expert);
    for (int64_t e = 0; e < c.moe.n_expert; ++e) {
      r->experts_[l][e].Reset(w.expert(l, e).bytes);
      SPOOL_TRY(ReadExpert(w, l, e, r->experts_[l][e].data()));
    }
  }
  if (w.config().tied_embeddings) {
    r->embd_data_ = r->groups_[w.head_group()].data() + w.output().group_offset;
  } else {
    const auto& info = *w.token_embd().info;
    r->embd_.Reset(info.nbytes);
    SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(w.source().files[info.file_index], storage::OpenMode{}));
    SPOOL_TRY(f.ReadAt(r->embd_.data(), info.offset, info.nbytes));
    r->embd_data_ = r->embd_.data();
  }
  return r;
}

Status ResidentWeights::EmbeddingRows(const int32_t* ids, int64_t n, float* out) {
  const auto& e = w_.token_embd();
  const uint64_t row_bytes = e.row_bytes();
  for (int64_t i = 0; i < n; ++i) {
    SPOOL_CHECK(ids[i] >= 0 && ids[i] < e.n_out);
    DequantizeRow(e.dtype, embd_data_ + static_cast<uint64_t>(ids[i]) * row_bytes, out + i * e.n_in, e.n_in);
  }
  return Status::Ok();
}

uint64_t ResidentWeights::bytes() const {
  uint64_t b = embd_.size();
  for (auto& g : groups_) b += g.size();
  for (auto& l : experts_)
    for (auto& x : l) b += x.size();
  return b;
}

}  // namespace spool::runtime
