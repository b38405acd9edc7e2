#include "models/tree_attention.h"

#include <algorithm>
#include <cstring>

#include "tensor/attention_ggml.h"

namespace spool::models {

Status TreeDepths(std::span<const int32_t> parent, std::vector<int32_t>* depth) {
  depth->assign(parent.size(), 0);
  for (size_t i = 0; i < parent.size(); ++i) {
    const int32_t p = parent[i];
    if (p < -1 || p >= static_cast<int32_t>(i))
      return InvalidArgument("draft tree node " + std::to_string(i) + " has parent " + std::to_string(p) +
                             "; a parent must be -1 or an earlier node");
    (*depth)[i] = p < 0 ? 0 : (*depth)[static_cast<size_t>(p)] + 1;
  }
  return Status::Ok();
}

namespace {

// Copies the committed rows [F, base) and the ancestors of `node` (ancestor at depth j
// to slot base + j) from `region` (slots [F, end)) into `virt` (slots [F, base + depth + 1)).
void BuildChainLayout(const std::vector<uint8_t>& region, int64_t F, int64_t base, std::span<const int32_t> parent,
                      int64_t node, int64_t depth, uint64_t rb, std::vector<uint8_t>& virt) {
  const size_t need = static_cast<size_t>(base + depth + 1 - F) * rb;
  if (virt.size() < need) virt.resize(need);
  std::memcpy(virt.data(), region.data(), static_cast<size_t>(base - F) * rb);
  for (int64_t a = node, j = depth; a >= 0; a = parent[static_cast<size_t>(a)], --j)
    std::memcpy(virt.data() + static_cast<size_t>(base + j - F) * rb,
                region.data() + static_cast<size_t>(base + a - F) * rb, rb);
}

// Calls fn for the chain-layout pages of one row at position p: [F, p + 1) in pages.
template <typename Fn>
void ForVirtualPages(const kv::KvLayout& L, const std::vector<uint8_t>& vk, const std::vector<uint8_t>& vv,
                     int64_t F, int64_t p, Fn&& fn) {
  const uint64_t rb = L.row_bytes();
  for (int64_t first = F; first <= p; first += L.page_tokens) {
    const size_t off = static_cast<size_t>(first - F) * rb;
    fn(KvPageView{L.dtype, vk.data() + off, vv.data() + off, std::min(L.page_tokens, p + 1 - first), first});
  }
}

}  // namespace

Status TreeAttention::Run(ThreadPool& pool, kv::SequenceKv& kv, int64_t layer, const AttentionShape& shape,
                          const TreeSpec& tree, const int64_t* pos, const float* q, int64_t m, bool ggml,
                          TreeRows* rows, float* out) {
  const kv::KvLayout& L = kv.layout();
  const int64_t P = L.page_tokens, n0 = kv.n_tokens(), end = n0 + m, base = tree.base;
  SPOOL_CHECK(base >= 0 && base <= n0 && static_cast<int64_t>(tree.parent.size()) == end - base);
  const uint64_t rb = L.row_bytes();
  const int64_t F = base / P * P;  // first slot of the page holding slot base
  region_k_.resize(static_cast<size_t>(end - F) * rb);
  region_v_.resize(region_k_.size());
  const int64_t HD = shape.n_head * shape.head_dim;
  int64_t min_pos = end;
  for (int64_t r = 0; r < m; ++r) min_pos = std::min(min_pos, pos[r]);
  // Sliding window: pages wholly before every row's window are skipped.
  const int64_t first_seen = shape.window > 0 ? min_pos - shape.window + 1 : 0;
  auto copy_region = [&](const KvPageView& page) {
    const int64_t from = std::max(page.first_pos, F), to = std::min(page.first_pos + page.n_tokens, end);
    for (int64_t s = from; s < to; ++s) {
      const size_t src = static_cast<size_t>(s - page.first_pos) * rb, dst = static_cast<size_t>(s - F) * rb;
      std::memcpy(region_k_.data() + dst, static_cast<const uint8_t*>(page.k) + src, rb);
      std::memcpy(region_v_.data() + dst, static_cast<const uint8_t*>(page.v) + src, rb);
    }
  };
  if (!ggml) all_.Reset(m, shape);
  SPOOL_TRY(kv.ForEachPage(layer, end, [&](const KvPageView& page) {
    if (page.first_pos >= F) return copy_region(page);
    if (ggml || page.first_pos + page.n_tokens <= first_seen) return;
    AttentionFoldPage(pool, shape, q, pos, m, page, all_);  // every row sees all of it
  }));
  if (rows != nullptr) {
    const size_t off = static_cast<size_t>(n0 - F) * rb, bytes = static_cast<size_t>(m) * rb;
    rows->k[static_cast<size_t>(layer)].assign(region_k_.begin() + off, region_k_.begin() + off + bytes);
    rows->v[static_cast<size_t>(layer)].assign(region_v_.begin() + off, region_v_.begin() + off + bytes);
  }
  const int64_t H = shape.n_head, d = shape.head_dim;
  for (int64_t r = 0; r < m; ++r) {
    const int64_t node = n0 + r - base, depth = pos[r] - base;
    BuildChainLayout(region_k_, F, base, tree.parent, node, depth, rb, virt_k_);
    BuildChainLayout(region_v_, F, base, tree.parent, node, depth, rb, virt_v_);
    if (ggml) {
      const KvPageWalk walk = [&](const std::function<void(const KvPageView&)>& fn) -> Status {
        if (F > 0) SPOOL_TRY(kv.ForEachPage(layer, F, fn));
        ForVirtualPages(L, virt_k_, virt_v_, F, pos[r], fn);
        return Status::Ok();
      };
      SPOOL_TRY(AttentionGgml(pool, shape, q + r * HD, pos + r, 1, GgmlAttnKernel::kSingle, walk, out + r * HD));
      continue;
    }
    // Row r's state after the shared pages, then its own chain-layout pages.
    one_.Reset(1, shape);
    std::copy_n(all_.max() + r * H, H, one_.max());
    std::copy_n(all_.sum() + r * H, H, one_.sum());
    std::copy_n(all_.acc() + r * H * d, H * d, one_.acc());
    const int64_t seen = shape.window > 0 ? pos[r] - shape.window + 1 : 0;
    ForVirtualPages(L, virt_k_, virt_v_, F, pos[r], [&](const KvPageView& page) {
      if (page.first_pos + page.n_tokens <= seen) return;
      AttentionFoldPage(pool, shape, q + r * HD, pos + r, 1, page, one_);
    });
    AttentionFinalize(shape, one_, out + r * HD);
  }
  return Status::Ok();
}

Status TreeAttentionRef(kv::SequenceKv& kv, int64_t layer, const AttentionShape& shape, const TreeSpec& tree,
                        const int64_t* pos, const float* q, int64_t m, float* out) {
  const kv::KvLayout& L = kv.layout();
  const int64_t n0 = kv.n_tokens(), end = n0 + m, base = tree.base;
  const uint64_t rb = L.row_bytes();
  // Every row [0, end) of the layer, in one buffer.
  std::vector<uint8_t> all_k(static_cast<size_t>(end) * rb), all_v(all_k.size());
  SPOOL_TRY(kv.ForEachPage(layer, end, [&](const KvPageView& page) {
    const size_t off = static_cast<size_t>(page.first_pos) * rb, bytes = static_cast<size_t>(page.n_tokens) * rb;
    std::memcpy(all_k.data() + off, page.k, bytes);
    std::memcpy(all_v.data() + off, page.v, bytes);
  }));
  const int64_t HD = shape.n_head * shape.head_dim;
  for (int64_t r = 0; r < m; ++r) {
    // One page: the committed rows, then the ancestors at base + depth.
    const int64_t node = n0 + r - base, depth = pos[r] - base;
    std::vector<uint8_t> k(static_cast<size_t>(base + depth + 1) * rb), v(k.size());
    std::memcpy(k.data(), all_k.data(), static_cast<size_t>(base) * rb);
    std::memcpy(v.data(), all_v.data(), static_cast<size_t>(base) * rb);
    for (int64_t a = node, j = depth; a >= 0; a = tree.parent[static_cast<size_t>(a)], --j) {
      std::memcpy(k.data() + static_cast<size_t>(base + j) * rb, all_k.data() + static_cast<size_t>(base + a) * rb, rb);
      std::memcpy(v.data() + static_cast<size_t>(base + j) * rb, all_v.data() + static_cast<size_t>(base + a) * rb, rb);
    }
    const std::vector<KvPageView> pages{KvPageView{L.dtype, k.data(), v.data(), base + depth + 1, 0}};
    AttentionRef(shape, q + r * HD, pos + r, 1, pages, out + r * HD);
  }
  return Status::Ok();
}

Status CheckTreePath(const TreeRows& rows, int64_t n_tokens, std::span<const int32_t> path) {
  if (n_tokens != rows.first + rows.n) return InvalidArgument("the tree step is not the sequence's last step");
  const int64_t n = static_cast<int64_t>(path.size());
  for (int64_t j = 0; j < n; ++j)
    if (path[j] < j || path[j] >= rows.n || (j > 0 && path[j] <= path[j - 1]))
      return InvalidArgument("a kept tree path must be increasing rows of the step, got row " +
                             std::to_string(path[j]) + " at index " + std::to_string(j));
  return Status::Ok();
}

Status KeepTreePath(kv::SequenceKv& kv, const TreeRows& rows, std::span<const int32_t> path) {
  SPOOL_TRY(CheckTreePath(rows, kv.n_tokens(), path));
  const int64_t n = static_cast<int64_t>(path.size());
  // The rows already in place stay; the rest are written back after them.
  int64_t same = 0;
  while (same < n && path[same] == same) ++same;
  SPOOL_TRY(kv.Truncate(rows.first + same));
  if (same == n) return Status::Ok();
  const int64_t L = kv.layout().n_layer, moved = n - same;
  const uint64_t rb = rows.row_bytes;
  std::vector<uint8_t> k(static_cast<size_t>(moved) * rb), v(k.size());
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t j = same; j < n; ++j) {
      const size_t src = static_cast<size_t>(path[j]) * rb, dst = static_cast<size_t>(j - same) * rb;
      std::memcpy(k.data() + dst, rows.k[static_cast<size_t>(l)].data() + src, rb);
      std::memcpy(v.data() + dst, rows.v[static_cast<size_t>(l)].data() + src, rb);
    }
    SPOOL_TRY(kv.WriteRaw(l, rows.first + same, moved, k.data(), v.data()));
  }
  return kv.Commit(moved);
}

}  // namespace spool::models
