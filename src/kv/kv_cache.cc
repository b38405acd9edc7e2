#include "kv/kv_cache.h"

#include <algorithm>
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

Status CheckWritePos(int64_t layer, int64_t pos, int64_t n_tokens, int64_t written) {
  if (pos == n_tokens || pos == written) return Status::Ok();
  return InternalError("KV write to layer " + std::to_string(layer) + " at position " + std::to_string(pos) +
                       " but the cache holds " + std::to_string(n_tokens) + " committed and " +
                       std::to_string(written) + " written tokens");
}

InRamKv::InRamKv(const KvLayout& layout)
    : layout_(layout), pages_(layout.n_layer), written_(layout.n_layer, 0), released_(layout.n_layer, 0) {
  SPOOL_CHECK(layout.dtype == DType::kF32 || layout.dtype == DType::kBF16);
  SPOOL_CHECK(layout.page_tokens > 0);
  SPOOL_CHECK(layout.window.empty() || static_cast<int64_t>(layout.window.size()) == layout.n_layer);
}

void InRamKv::Release(int64_t l, int64_t keep_from) {
  auto& pages = pages_[l];
  const int64_t first_kept = std::min<int64_t>(std::max<int64_t>(keep_from, 0) / layout_.page_tokens,
                                               static_cast<int64_t>(pages.size()));
  for (int64_t p = released_[l]; p < first_kept; ++p) {
    pages[p].k = AlignedBuffer();
    pages[p].v = AlignedBuffer();
  }
  released_[l] = std::max(released_[l], first_kept);
}

uint64_t InRamKv::page_bytes_held() const {
  uint64_t b = 0;
  for (const auto& pages : pages_)
    for (const Page& p : pages) b += p.k.size() + p.v.size();
  return b;
}

template <typename StoreFn>
Status InRamKv::WriteRows(int64_t layer, int64_t pos, int64_t n, StoreFn store) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer);
  SPOOL_TRY(CheckWritePos(layer, pos, n_tokens_, written_[layer]));
  auto& pages = pages_[layer];
  const uint64_t row_bytes = layout_.row_bytes();
  for (int64_t i = 0; i < n; ++i) {
    int64_t p = (pos + i) / layout_.page_tokens, r = (pos + i) % layout_.page_tokens;
    while (static_cast<int64_t>(pages.size()) <= p) {
      Page page;
      page.k.Reset(layout_.page_bytes());
      page.v.Reset(layout_.page_bytes());
      pages.push_back(std::move(page));
    }
    store(i, pages[p].k.data() + r * row_bytes, pages[p].v.data() + r * row_bytes);
  }
  written_[layer] = pos + n;
  return Status::Ok();
}

Status InRamKv::Write(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v) {
  const int64_t row = layout_.row_elems();
  return WriteRows(layer, pos, n, [&](int64_t i, uint8_t* kd, uint8_t* vd) {
    StoreRow(layout_.dtype, k + i * row, row, kd);
    StoreRow(layout_.dtype, v + i * row, row, vd);
  });
}

Status InRamKv::WriteRaw(int64_t layer, int64_t pos, int64_t n, const void* k, const void* v) {
  const uint64_t rb = layout_.row_bytes();
  return WriteRows(layer, pos, n, [&](int64_t i, uint8_t* kd, uint8_t* vd) {
    std::memcpy(kd, static_cast<const uint8_t*>(k) + i * rb, rb);
    std::memcpy(vd, static_cast<const uint8_t*>(v) + i * rb, rb);
  });
}

Status CheckTruncateKeepsWindow(const SequenceKv& kv, int64_t n) {
  const KvLayout& L = kv.layout();
  for (int64_t l = 0; l < L.n_layer && n > 0; ++l)
    if (const int64_t w = L.layer_window(l); w > 0 && kv.live_from(l) > std::max<int64_t>(n - w + 1, 0))
      return InvalidArgument("cannot truncate the KV cache of " + std::to_string(kv.n_tokens()) + " tokens to " +
                             std::to_string(n) + ": sliding-window layer " + std::to_string(l) + " (window " +
                             std::to_string(w) + ") already released positions below " +
                             std::to_string(kv.live_from(l)));
  return Status::Ok();
}

Status CheckReleasable(const KvLayout& layout, int64_t layer) {
  if (layout.layer_window(layer) > 0) return Status::Ok();
  return InvalidArgument("KV layer " + std::to_string(layer) +
                         " has no sliding window: its rows cannot be released (every position is attended to)");
}

Status InRamKv::WriteReleased(int64_t layer, int64_t pos, int64_t n) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer && n >= 0);
  SPOOL_TRY(CheckReleasable(layout_, layer));
  SPOOL_TRY(CheckWritePos(layer, pos, n_tokens_, written_[layer]));
  const int64_t pt = layout_.page_tokens;
  int64_t done = 0;
  if (pos % pt == 0 && pos / pt == released_[layer]) {
    // Whole pages continuing the released run: no memory at all.
    const int64_t whole = n / pt;
    auto& pages = pages_[layer];
    if (static_cast<int64_t>(pages.size()) < released_[layer] + whole) pages.resize(released_[layer] + whole);
    for (int64_t p = released_[layer]; p < released_[layer] + whole; ++p) pages[p] = Page();
    released_[layer] += whole;
    done = whole * pt;
    written_[layer] = pos + done;
  }
  if (done == n) return Status::Ok();
  const uint64_t rb = layout_.row_bytes();
  return WriteRows(layer, pos + done, n - done, [&](int64_t, uint8_t* kd, uint8_t* vd) {
    std::memset(kd, 0, rb);
    std::memset(vd, 0, rb);
  });
}

Status InRamKv::Commit(int64_t n) {
  for (int64_t l = 0; l < layout_.n_layer; ++l)
    if (written_[l] < n_tokens_ + n)
      return InternalError("KV commit of " + std::to_string(n) + " tokens but layer " + std::to_string(l) + " holds only " +
                           std::to_string(written_[l] - n_tokens_) + " new rows");
  n_tokens_ += n;
  // The next query is at position n_tokens_: a sliding layer needs keys from
  // n_tokens_ - window + 1 on.
  for (int64_t l = 0; l < layout_.n_layer; ++l)
    if (const int64_t w = layout_.layer_window(l); w > 0) Release(l, n_tokens_ - w + 1);
  return Status::Ok();
}

Status InRamKv::ForEachPage(int64_t layer, int64_t end, const std::function<void(const KvPageView&)>& fn) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer);
  const auto& pages = pages_[layer];
  for (int64_t first = 0, p = 0; first < end; first += layout_.page_tokens, ++p) {
    SPOOL_CHECK(p < static_cast<int64_t>(pages.size()));
    const int64_t n = std::min(layout_.page_tokens, end - first);
    if (p < released_[layer]) {
      if (zeros_.size() == 0) {
        zeros_.Reset(layout_.page_bytes());
        std::memset(zeros_.data(), 0, zeros_.size());
      }
      fn(KvPageView{layout_.dtype, zeros_.data(), zeros_.data(), n, first});
      continue;
    }
    fn(KvPageView{layout_.dtype, pages[p].k.data(), pages[p].v.data(), n, first});
  }
  return Status::Ok();
}

Status InRamKv::Truncate(int64_t n) {
  if (n < 0 || n > n_tokens_) return InvalidArgument("cannot truncate KV cache of " + std::to_string(n_tokens_) + " tokens to " + std::to_string(n));
  SPOOL_TRY(CheckTruncateKeepsWindow(*this, n));
  if (n == 0)
    for (auto& r : released_) r = 0;
  n_tokens_ = n;
  for (auto& w : written_) w = n;
  int64_t keep = (n + layout_.page_tokens - 1) / layout_.page_tokens;
  for (auto& pages : pages_)
    if (static_cast<int64_t>(pages.size()) > keep) pages.resize(keep);
  return Status::Ok();
}

}  // namespace spool::kv
