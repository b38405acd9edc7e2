// Draft trees (speculative decoding, runtime/speculative.h): one step feeds a tree of
// candidate tokens; each row attends to the committed KV plus its own ancestors in the
// tree only, at the position of its depth, with the numerics of plain decoding.
//
// Layout. The tree's nodes are slots [base, end) of the sequence's cache in node order
// (node i at slot base + i); a step feeds the nodes [kv.n_tokens(), end) (earlier nodes,
// if any, were fed by earlier steps and are still uncommitted-in-spirit: the caller
// truncates them away). parent[i] is -1 (the node hangs off the committed token at slot
// base - 1) or a node < i. Node i sits at position base + depth(i) (roots at depth 0).
//
// Why bit-identical to decoding the path one token at a time: the attention kernels'
// result for a row depends on which key sits at which slot of which page (lanes, page
// maxima, fold order) — keys it cannot see are neutral (p = 0). A chain decode of the
// path would hold ancestor j at slot base + j. So for each row the pages from the one
// holding slot base on are rebuilt "virtually" in that chain layout (the committed rows
// of the first such page, then the row's ancestors at base, base + 1, …) and folded in
// the same order; the pages wholly before are folded once for all rows (the fold is
// row-independent). K/V rows and every matmul are per row (decode numerics), so a node's
// K/V equal the chain's bit for bit.
//
// Keeping the accepted path: KeepTreePath writes the path's captured rows (TreeRows,
// in the cache dtype) back at slots base, base + 1, … — Truncate then WriteRaw, on RAM
// and disk KV alike — so the cache ends exactly as a chain decode of the path leaves it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "kv/kv_cache.h"
#include "tensor/attention.h"

namespace spool::models {

// One tree step of a sequence (SeqStep::tree_parent non-empty).
struct TreeSpec {
  int64_t base = 0;                  // slot of node 0; <= kv.n_tokens()
  std::span<const int32_t> parent;   // [end - base]: -1 or a node index < i
};

// Each layer's K/V rows of a tree step, as the cache stores them (filled by the step
// when SeqStep::tree_rows is set).
struct TreeRows {
  int64_t first = 0;       // slot of the step's first row
  int64_t n = 0;           // the step's rows
  uint64_t row_bytes = 0;  // KvLayout::row_bytes()
  std::vector<std::vector<uint8_t>> k, v;  // [n_layer][n * row_bytes]
};

// depth[i] = depth[parent[i]] + 1, nodes with parent -1 at 0.
// Errors (InvalidArgument): a parent outside [-1, i).
Status TreeDepths(std::span<const int32_t> parent, std::vector<int32_t>* depth);

// Attention of a tree step's m rows (slots [kv.n_tokens(), + m), the K/V already
// written) over the committed KV and each row's ancestors. q: [m, n_head, head_dim],
// pos: [m] (base + depth), out: [m, n_head * head_dim]. ggml: llama.cpp's single-token
// kernel (tensor/attention_ggml.h) instead of AttentionFoldPage. rows (optional):
// receives this layer's K/V rows of the step. Errors: the cache's read errors.
// Cost: one pass over the cache's pages as a chain step; per row, the pages from slot
// base's page on once more (1–2 pages) and a copy of its ancestors' rows; with ggml, a
// walk over every page per row. Not thread-safe (scratch buffers).
class TreeAttention {
 public:
  Status Run(ThreadPool& pool, kv::SequenceKv& kv, int64_t layer, const AttentionShape& shape, const TreeSpec& tree,
             const int64_t* pos, const float* q, int64_t m, bool ggml, TreeRows* rows, float* out);

 private:
  std::vector<uint8_t> region_k_, region_v_;  // slots [F, end): F = base rounded down to a page
  std::vector<uint8_t> virt_k_, virt_v_;      // one row's chain layout of slots [F, pos + 1)
  AttentionState all_, one_;
};

// Reference (tests): each row's attention by AttentionRef over the committed rows and
// its ancestors placed at positions base + depth. Same arguments as Run (no capture).
Status TreeAttentionRef(kv::SequenceKv& kv, int64_t layer, const AttentionShape& shape, const TreeSpec& tree,
                        const int64_t* pos, const float* q, int64_t m, float* out);

// Keeps the sequence's first rows.first tokens followed by the tree step's rows `path`
// (row indices of the step, strictly increasing, path[j] >= j) and drops the rest of
// the step: the cache ends as if the path's tokens alone had been decoded (RAM and
// disk KV). Errors: a bad path (InvalidArgument), the cache's truncate/write errors.
// The KV is left unchanged when the path is bad.
Status KeepTreePath(kv::SequenceKv& kv, const TreeRows& rows, std::span<const int32_t> path);
// KeepTreePath's checks: the rows are the last step of a sequence of n_tokens tokens,
// the path increasing rows of it with path[j] >= j.
Status CheckTreePath(const TreeRows& rows, int64_t n_tokens, std::span<const int32_t> path);

}  // namespace spool::models
