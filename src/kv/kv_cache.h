// The KV cache of one sequence: per layer, K and V in pages of `page_tokens` tokens.
//
// Page layout (what the attention kernel reads): K page [page_tokens, n_head_kv, head_dim]
// and V page [page_tokens, n_head_kv, head_dim], rows in the cache's dtype (f32 or bf16),
// token i of the sequence at page i / page_tokens, row i % page_tokens.
//
// Writing happens per layer during a forward step (Write), and the step's new tokens
// become visible to later steps with Commit. Implementations: in RAM (this file) and
// disk-backed with a hot window (kv/disk_kv.h, for long contexts).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/dtype.h"
#include "base/status.h"
#include "tensor/attention.h"  // KvPageView: one page as the attention kernel reads it

namespace spool::kv {

struct KvLayout {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t page_tokens = 256;
  DType dtype = DType::kBF16;  // kF32 or kBF16
  // Sliding-window layers: window[l] > 0 means attention at position p of layer l reads
  // only positions > p - window[l], so InRamKv frees the pages that fall out of it.
  // Empty, or 0 for a layer: every position is kept.
  std::vector<int64_t> window;   // [n_layer] or empty

  int64_t layer_window(int64_t l) const { return l < static_cast<int64_t>(window.size()) ? window[l] : 0; }
  int64_t row_elems() const { return n_head_kv * head_dim; }
  uint64_t row_bytes() const { return static_cast<uint64_t>(row_elems()) * (dtype == DType::kF32 ? 4 : 2); }
  uint64_t page_bytes() const { return row_bytes() * static_cast<uint64_t>(page_tokens); }  // one of K or V
};

class SequenceKv {
 public:
  virtual ~SequenceKv() = default;
  virtual const KvLayout& layout() const = 0;
  // Tokens whose K/V are stored and committed.
  virtual int64_t n_tokens() const = 0;
  // Stores K/V rows for positions [pos, pos + n) of `layer`, converting from f32.
  // k, v: [n, n_head_kv * head_dim]. Append only: pos must be n_tokens() (starting a
  // step; rows of `layer` written since the last Commit are dropped) or the end of the
  // rows already written to `layer` since the last Commit (appending within a step, as a
  // session restore does). Errors: InternalError for another pos; kIo/kResourceExhausted
  // when a disk-backed cache cannot spill.
  virtual Status Write(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v) = 0;
  // As Write, with rows already in the cache dtype (restoring a saved session).
  // k, v: [n, row_bytes()] bytes.
  virtual Status WriteRaw(int64_t layer, int64_t pos, int64_t n, const void* k, const void* v) = 0;
  // Makes `n` written tokens visible (after every layer wrote them).
  virtual Status Commit(int64_t n) = 0;
  // Calls fn for each page of `layer` covering positions [0, end), in order. Pages may
  // include rows written but not yet committed (the current step's own tokens).
  // Rows a sliding-window layer has released (layout().window) read as zeros: no
  // query from position n_tokens() on attends to them.
  // The views are valid only during the call.
  virtual Status ForEachPage(int64_t layer, int64_t end, const std::function<void(const KvPageView&)>& fn) = 0;
  // Drops every token at position >= n (for prefix reuse). kInvalidArgument when a
  // sliding-window layer already released rows that position n would attend to (the
  // caller starts over instead); n == 0 always works.
  virtual Status Truncate(int64_t n) = 0;
  // First position whose rows `layer` still holds: 0, or for a sliding-window layer a
  // multiple of page_tokens below which its pages were released (rows read as zeros).
  virtual int64_t live_from(int64_t layer) const = 0;
  // Appends rows [pos, pos + n) of a sliding-window layer as released, without their
  // bytes (restoring a session that stored only the live rows): the caller guarantees
  // that no query from the restored n_tokens() on attends to them. Whole pages from the
  // layer's first held page on take no memory; other rows are stored as zeros. pos as
  // for Write. kInvalidArgument for a layer without a window.
  virtual Status WriteReleased(int64_t layer, int64_t pos, int64_t n) = 0;
};

// Everything in RAM: pages allocated as the sequence grows. A sliding-window layer
// (layout.window) frees, at each Commit, the pages wholly before the oldest position
// the next query can see (n_tokens - window + 1), so its memory stays at most
// ceil((window - 1 + step tokens) / page_tokens) + 1 pages however long the context.
class InRamKv final : public SequenceKv {
 public:
  explicit InRamKv(const KvLayout& layout);
  const KvLayout& layout() const override { return layout_; }
  int64_t n_tokens() const override { return n_tokens_; }
  Status Write(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v) override;
  Status WriteRaw(int64_t layer, int64_t pos, int64_t n, const void* k, const void* v) override;
  Status Commit(int64_t n) override;
  Status ForEachPage(int64_t layer, int64_t end, const std::function<void(const KvPageView&)>& fn) override;
  Status Truncate(int64_t n) override;
  int64_t live_from(int64_t layer) const override { return released_[layer] * layout_.page_tokens; }
  Status WriteReleased(int64_t layer, int64_t pos, int64_t n) override;
  // Bytes of K/V pages held now (released pages excluded).
  uint64_t page_bytes_held() const;

 private:
  struct Page {
    AlignedBuffer k, v;
  };
  // Frees layer l's pages wholly before position `keep_from`.
  void Release(int64_t l, int64_t keep_from);
  // Shared by Write and WriteRaw: store(i, k_dst, v_dst) writes row i of the batch.
  template <typename StoreFn>
  Status WriteRows(int64_t layer, int64_t pos, int64_t n, StoreFn store);

  KvLayout layout_;
  int64_t n_tokens_ = 0;
  std::vector<std::vector<Page>> pages_;  // [layer][page]
  std::vector<int64_t> written_;          // [layer]: end of the rows written (committed or not)
  std::vector<int64_t> released_;         // [layer]: pages [0, released_) are freed (sliding layers)
  AlignedBuffer zeros_;                   // one zero page: what released pages read as
};

// Checks a Write position against the contract above; InternalError otherwise.
Status CheckWritePos(int64_t layer, int64_t pos, int64_t n_tokens, int64_t written);

// Whether Truncate(n) keeps every row that position n attends to: n == 0, or every
// sliding layer still holds positions n - window + 1 on (live_from <= that). Else
// Truncate(n) refuses with the message this returns (ok() when allowed).
Status CheckTruncateKeepsWindow(const SequenceKv& kv, int64_t n);

// kInvalidArgument unless `layer` has a sliding window (WriteReleased's check).
Status CheckReleasable(const KvLayout& layout, int64_t layer);

// Converts one row of f32 to the cache dtype (f32 copy or bf16 round-to-nearest-even).
void StoreRow(DType dtype, const float* src, int64_t n, void* dst);

}  // namespace spool::kv
