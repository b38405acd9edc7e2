// LlamaDecoder's draft trees (speculative decoding, runtime/speculative.h): the tree
// step's attention and keeping the accepted path's KV rows, on the device. The layout
// and the reason for rebuilding each row's last pages are models/tree_attention.h's: the
// attention kernel's result for a row depends on which key sits in which slot of which
// page (16-key lanes, a max per page, fold order), so each row folds the pages wholly
// before slot tree_base's page as they are (once for all rows, the online softmax state
// stored), then a region holding that page's committed rows followed by the row's
// ancestors at slots base, base + 1, ... — exactly the pages a chain decode of its path
// would fold. The state passes between dispatches unchanged (Kernels::Attention), so a
// row's output is bit-identical to decoding its path one token at a time.
#include <algorithm>
#include <string>
#include <vector>

#include "gpu/llama_decoder.h"
#include "models/tree_attention.h"

namespace spool::gpu {

Status LlamaDecoder::CheckTree(const RunItem& it) const {
  const models::ModelConfig& c = w_.config();
  const int64_t n0 = it.kv->n_tokens, m = static_cast<int64_t>(it.tokens.size());
  if (!opts_.trees)
    return Unsupported("GPU decoder: a draft-tree step needs the decoder opened for trees (LlamaDecoderOptions::trees)");
  if (plan_.kv_windowed())
    return Unsupported("GPU decoder: draft trees need the whole KV cache in VRAM; the VRAM plan keeps a window of " +
                       std::to_string(plan_.kv_hot_pages) + " of " + std::to_string(plan_.kv_pages) +
                       " pages (a larger --vram-budget, a smaller --ctx, or chains)");
  for (const auto& spec : c.layers)
    if (spec.mixer == models::MixerKind::kSlidingAttention)
      return Unsupported("GPU decoder: draft trees with sliding-window attention layers are not supported on the GPU");
  if ((KvRowBytes() % 4) != 0)
    return Unsupported("GPU decoder: draft trees need KV rows of whole 32-bit words (kv_dim " +
                       std::to_string(c.kv_dim()) + ")");
  if (it.tree_base < 0 || it.tree_base > n0 ||
      static_cast<int64_t>(it.tree_parent.size()) != n0 + m - it.tree_base)
    return InvalidArgument("GPU decoder: a draft tree of " + std::to_string(it.tree_parent.size()) +
                           " nodes from slot " + std::to_string(it.tree_base) +
                           " does not end at the step's last token (slot " + std::to_string(n0 + m - 1) + ")");
  if (m > opts_.max_rows)
    return InvalidArgument("GPU decoder: a draft-tree step of " + std::to_string(m) + " rows exceeds the " +
                           std::to_string(opts_.max_rows) + " rows one pass carries");
  std::vector<int32_t> depth;
  SPOOL_TRY(models::TreeDepths(it.tree_parent, &depth));
  const int64_t base_in_page = it.tree_base % opts_.page_tokens;
  for (const int32_t d : depth)
    if (base_in_page + d + 1 > tree_rows_cap_)
      return InvalidArgument("GPU decoder: a draft-tree path of depth " + std::to_string(d) +
                             " exceeds the tree region of " + std::to_string(tree_rows_cap_) + " rows");
  return Status::Ok();
}

Status LlamaDecoder::AttendTree(const Segment& seg, int layer, std::span<const int64_t> positions,
                                std::span<const int32_t> depth, const GpuAttentionShape& shape) {
  const models::ModelConfig& c = w_.config();
  const DeviceKv& kv = *seg.kv;
  const int64_t KD = c.kv_dim(), QD = c.q_dim(), P = opts_.page_tokens, n = seg.n, p0 = kv.n_tokens;
  const int64_t base = seg.tree_base, F = base / P * P;  // F: the first slot of base's page
  const uint64_t layer_row = static_cast<uint64_t>(layer) * static_cast<uint64_t>(opts_.ctx);  // no KV window
  const uint64_t layer_elem = layer_row * static_cast<uint64_t>(KD);
  const uint64_t row_words = KvRowBytes() / 4;
  // The step's K/V rows at slots p0.. (node order), as any step stores them.
  {
    const uint64_t dst = layer_elem + static_cast<uint64_t>(p0 * KD), src = static_cast<uint64_t>(seg.row0 * KD);
    SPOOL_TRY(k_.KvStore(kn_, n * KD, opts_.kv_dtype, kv.k, dst, src));
    SPOOL_TRY(k_.KvStore(vn_, n * KD, opts_.kv_dtype, kv.v, dst, src));
  }
  // Pages wholly before F: one dispatch for all rows, the state stored per row.
  if (F > 0) {
    const Buffer* q = &q_;
    if (seg.row0 > 0) {
      q = &QScratch();
      SPOOL_TRY(k_.CopyWords(q_, static_cast<uint64_t>(seg.row0 * QD), *q, 0, n * QD));
    }
    pages_.clear();
    for (int64_t s = 0; s < F; s += P) {
      const uint64_t e = layer_elem + static_cast<uint64_t>(s * KD);
      pages_.push_back(GpuKvPage{e, e, P, s});
    }
    const GpuAttentionState st{&att_state_, false, true};
    SPOOL_TRY(k_.Attention(shape, *q, positions, opts_.kv_dtype, kv.k, kv.v, pages_, OutScratch(), st));
  }
  const uint64_t state_words = AttentionStateBytes(1, c.n_head, c.head_dim) / 4;
  std::vector<int32_t> path;
  for (int64_t i = 0; i < n; ++i) {
    // Node t's ancestors, root first, then t itself.
    const int64_t t = p0 - base + i;
    path.clear();
    for (int64_t a = t; a >= 0; a = seg.tree_parent[static_cast<size_t>(a)]) path.push_back(static_cast<int32_t>(a));
    std::reverse(path.begin(), path.end());
    SPOOL_CHECK(static_cast<int64_t>(path.size()) == depth[static_cast<size_t>(t)] + 1);
    // The region: slots [F, base) as committed, then the path at base, base + 1, ...
    // (runs of consecutive nodes copied together).
    const uint64_t committed = static_cast<uint64_t>(base - F);
    for (const Buffer* b : {&kv.k, &kv.v}) {
      const Buffer& dst = b == &kv.k ? tree_k_ : tree_v_;
      if (committed > 0)
        SPOOL_TRY(k_.CopyWords(*b, (layer_row + static_cast<uint64_t>(F)) * row_words, dst, 0,
                               static_cast<int64_t>(committed * row_words)));
      for (size_t j = 0; j < path.size();) {
        size_t e = j + 1;
        while (e < path.size() && path[e] == path[e - 1] + 1) ++e;
        SPOOL_TRY(k_.CopyWords(*b, (layer_row + static_cast<uint64_t>(base + path[j])) * row_words, dst,
                               (committed + j) * row_words, static_cast<int64_t>((e - j) * row_words)));
        j = e;
      }
    }
    const int64_t end = positions[static_cast<size_t>(i)] + 1;  // base + depth + 1
    pages_.clear();
    for (int64_t s = F; s < end; s += P) {
      const uint64_t e = static_cast<uint64_t>((s - F) * KD);
      pages_.push_back(GpuKvPage{e, e, std::min(P, end - s), s});
    }
    SPOOL_TRY(k_.CopyWords(q_, static_cast<uint64_t>((seg.row0 + i) * QD), tree_q_, 0, QD));
    if (F > 0) SPOOL_TRY(k_.CopyWords(att_state_, static_cast<uint64_t>(i) * state_words, tree_state_, 0,
                                      static_cast<int64_t>(state_words)));
    const GpuAttentionState st{&tree_state_, F > 0, false};
    SPOOL_TRY(k_.Attention(shape, tree_q_, positions.subspan(static_cast<size_t>(i), 1), opts_.kv_dtype, tree_k_,
                           tree_v_, pages_, tree_out_, st));
    SPOOL_TRY(k_.CopyWords(tree_out_, 0, att_, static_cast<uint64_t>((seg.row0 + i) * QD), QD));
  }
  return Status::Ok();
}

Status LlamaDecoder::KeepTreePath(DeviceKv& kv, int64_t first, std::span<const int32_t> path) {
  const int64_t n = static_cast<int64_t>(path.size()), rows = kv.n_tokens - first;
  if (first < 0 || rows < 0)
    return InvalidArgument("GPU decoder: a tree step from slot " + std::to_string(first) + " is not in a cache of " +
                           std::to_string(kv.n_tokens) + " tokens");
  for (int64_t j = 0; j < n; ++j)
    if (path[j] < j || path[j] >= rows || (j > 0 && path[j] <= path[j - 1]))
      return InvalidArgument("GPU decoder: a kept tree path must be increasing rows of the step, got row " +
                             std::to_string(path[j]) + " at index " + std::to_string(j));
  if (plan_.kv_windowed()) return Unsupported("GPU decoder: draft trees need the whole KV cache in VRAM");
  // Row path[j] moves to slot first + j, j ascending: its source (>= first + j) is never
  // a slot an earlier move wrote (those are < first + j), and each copy is recorded
  // after the previous one (a barrier between dispatches).
  const uint64_t row_words = KvRowBytes() / 4;
  for (int64_t l = 0; l < w_.config().n_layer; ++l) {
    const uint64_t layer_row = static_cast<uint64_t>(l) * static_cast<uint64_t>(opts_.ctx);
    for (int64_t j = 0; j < n; ++j) {
      if (path[j] == j) continue;
      const uint64_t src = (layer_row + static_cast<uint64_t>(first + path[j])) * row_words;
      const uint64_t dst = (layer_row + static_cast<uint64_t>(first + j)) * row_words;
      SPOOL_TRY(k_.CopyWords(kv.k, src, kv.k, dst, static_cast<int64_t>(row_words)));
      SPOOL_TRY(k_.CopyWords(kv.v, src, kv.v, dst, static_cast<int64_t>(row_words)));
    }
  }
  kv.n_tokens = first + n;
  return Status::Ok();
}

}  // namespace spool::gpu
