#include "kv/kv_cache.h"

#include <cstring>

namespace spool::kv {

void StoreRow(DType dtype, const float* src, int64_t n, void* dst) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  SPOOL_CHECK(dtype == DType::kBF16);
  auto* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = F32ToBF16(src[i]);
}

InRamKv::InRamKv(const KvLayout& layout) : layout_(layout), pages_(layout.n_layer) {
  SPOOL_CHECK(layout.dtype == DType::kF32 || layout.dtype == DType::kBF16);
  SPOOL_CHECK(layout.page_tokens > 0);
}

Status InRamKv::Write(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer);
  if (pos != n_tokens_) return InternalError("KV write at position " + std::to_string(pos) + " but cache holds " + std::to_string(n_tokens_));
  auto& pages = pages_[layer];
  const int64_t row = layout_.row_elems();
  const uint64_t row_bytes = layout_.row_bytes();
  for (int64_t i = 0; i < n; ++i) {
    int64_t p = (pos + i) / layout_.page_tokens, r = (pos + i) % layout_.page_tokens;
    while (static_cast<int64_t>(pages.size()) <= p) {
      Page page;
      page.k.Reset(layout_.page_bytes());
      page.v.Reset(layout_.page_bytes());
      pages.push_back(std::move(page));
    }
    StoreRow(layout_.dtype, k + i * row, row, pages[p].k.data() + r * row_bytes);
    StoreRow(layout_.dtype, v + i * row, row, pages[p].v.data() + r * row_bytes);
  }
  return Status::Ok();
}

Status InRamKv::Commit(int64_t n) {
  n_tokens_ += n;
  return Status::Ok();
}

Status InRamKv::ForEachPage(int64_t layer, int64_t end, const std::function<void(const KvPageView&)>& fn) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer);
  const auto& pages = pages_[layer];
  for (int64_t first = 0, p = 0; first < end; first += layout_.page_tokens, ++p) {
    SPOOL_CHECK(p < static_cast<int64_t>(pages.size()));
    fn(KvPageView{layout_.dtype, pages[p].k.data(), pages[p].v.data(), std::min(layout_.page_tokens, end - first), first});
  }
  return Status::Ok();
}

Status InRamKv::Truncate(int64_t n) {
  if (n < 0 || n > n_tokens_) return InvalidArgument("cannot truncate KV cache of " + std::to_string(n_tokens_) + " tokens to " + std::to_string(n));
  n_tokens_ = n;
  int64_t keep = (n + layout_.page_tokens - 1) / layout_.page_tokens;
  for (auto& pages : pages_)
    if (static_cast<int64_t>(pages.size()) > keep) pages.resize(keep);
  return Status::Ok();
}

}  // namespace spool::kv
