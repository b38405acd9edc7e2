// A first whole-model forward pass on a Vulkan device (issue 17, stages 1-2): the
// kernels of gpu/kernels.h composed into the steps of a dense Llama-family model, the KV
// cache in device memory (f32 or bf16), one sequence, logits copied to the host for
// sampling. Step() decodes one token (GEMV); Prefill() runs a multi-token prompt in
// chunks of up to max_rows tokens through the tiled GEMM.
//
// Weights: with no VRAM budget every layer is resident in device memory. With a budget
// smaller than the model (`vram_budget`, what `--vram-budget` sets), the plan (VramPlan)
// keeps the fixed buffers (KV cache, activations, output head, norms) and a
// double-buffered ring of two layer slots, then makes the first layers resident while
// they fit; every other layer is streamed at each step from one of two tiers
// (gpu/weight_tiers.h): held in host-visible memory (host_layers: the engine's RAM
// tier) or read from the model's files into one of two host-visible staging buffers
// (O_DIRECT); either way copied on the transfer queue (VulkanDevice::CopyAsync) into its
// ring slot while the device computes the previous layer (compute is flushed per
// streamed layer, so the read and copy of layer l+1 overlap the compute of layer l).
// Every weight matrix is read from the model's files by the decoder itself (the
// WeightProvider supplies only embedding rows), so no tier is also held elsewhere.
// Streamed and resident runs use the same kernels on the same bytes: logits
// bit-identical (tests/gpu/llama_decoder_test.cc, tests/gpu/weight_tiers_test.cc).
//
// KV beyond VRAM: when a sequence's whole KV cache does not fit (the VRAM budget, or
// one K or V buffer beyond maxStorageBufferRange), VRAM holds a hot window of the most
// recent pages of every layer (a ring of kv_hot_pages page slots) and the pages that
// leave it are appended to a host cache (a kv::SequenceKv: RAM, or the engine's disk KV)
// before their slot is reused. Attention folds the pages in order: hot ones where they
// are, cold ones staged per layer from the host cache into a VRAM group buffer, the
// online softmax's state carried between the dispatches (Kernels::Attention's state):
// bit-identical to the whole cache in VRAM.
//
// KV caches: Step()/Prefill() use the decoder's own cache (one sequence; tests and
// bench/gpu). The engine (runtime/gpu_backend.h, `--device vulkan`) keeps one DeviceKv
// per sequence (NewKv) and runs them through Run(); nothing else differs. Run() with
// several RunItems carries the rows of several sequences in one pass over the weights
// (attention per sequence), and RunItem::tree_parent a draft tree (per-row tree
// attention, llama_decoder_tree.cc; KeepTreePath).
//
// It is a second copy of the decoder loop (the CPU's is models::Transformer), which the
// backend boundary of docs/parts/gpu.md would replace (Transformer calling a Device).
//
// Supported: attention (full or sliding window, optional score soft-capping) × dense
// SwiGLU layers, RMSNorm, RoPE of either pairing with any scaling RopeFrequencies
// computes (linear, llama3, GGUF rope_freqs, yarn's mscale), weights f32/f16/bf16/
// Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q5_K/Q6_K, spool numerics; per layer, the QKV parts of
// layer_parts.h (QKV bias: Qwen2; per-head q/k RMSNorm: Qwen3). Refused with kUnsupported
// by Supports, every feature named with its config field at once: q/k norm over the whole
// projection, the attention output gate, output bias, sandwich norms, GeGLU and gpt-oss's
// SwiGLU, final soft-capping, embedding scale, attention sinks, --numerics ggml, MoE and
// linear-attention layers, head_dim > 256; other weight types by Open.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "gpu/kernels.h"
#include "gpu/layer_parts.h"
#include "gpu/vulkan_device.h"
#include "gpu/weight_tiers.h"
#include "kv/kv_cache.h"
#include "models/weight_provider.h"
#include "models/weights.h"

namespace spool::gpu {

struct LlamaDecoderOptions {
  int64_t ctx = 0;               // KV cache capacity in tokens
  DType kv_dtype = DType::kF32;  // kF32 or kBF16
  int64_t page_tokens = 256;     // the CPU engine's kv_page_tokens (same attention fold order)
  int64_t max_rows = 1;          // the most tokens one Prefill chunk carries (buffers sized for it)
  uint64_t vram_budget = 0;      // device bytes for weights + KV + activations; 0: all resident
  // KV caches the plan counts (sequences held at once: the engine's max_sequences).
  int64_t n_kv = 1;
  // Open allocates the decoder's own KV cache (Step/Prefill); false: only NewKv caches.
  bool own_kv = true;
  // Tokens of each sequence's KV kept in VRAM (rounded up to whole pages, at least the
  // pages one chunk of max_rows touches); older pages live in the host cache. 0: the
  // planner decides (the whole context when it fits the budget and maxStorageBufferRange,
  // else the largest window that does).
  int64_t kv_hot_tokens = 0;
  // Three weight tiers (gpu/weight_tiers.h): the layers the VRAM plan does not keep are
  // held in host memory when host_layers[l] (the engine's --mem-budget plan decides;
  // [n_layer], or empty: none) and otherwise read from the model's files every pass.
  std::vector<bool> host_layers;
  storage::ReaderOptions reader;  // how the decoder reads the model files (O_DIRECT by default)
  // Draft-tree steps (RunItem::tree_parent) will run: allocates their scratch (a KV
  // region of page_tokens + max_rows rows per K and V, one query's state and rows).
  // Trees need the whole KV cache in VRAM (no KV window) and no sliding-window layer.
  bool trees = false;
};

struct DeviceKv;

// One sequence's tokens in a Run of several (LlamaDecoder::Run): a prefill chunk, a
// decode token, verification rows, or a draft tree's nodes.
struct RunItem {
  DeviceKv* kv = nullptr;
  std::span<const int32_t> tokens;  // appended at positions kv->n_tokens..
  // [n_vocab] of the last token, or [tokens.size(), n_vocab] when all_logits; null: none.
  float* logits = nullptr;
  bool all_logits = false;
  // A draft tree (models/tree_attention.h's layout): node i at slot tree_base + i,
  // tree_parent[i] -1 or a node < i, [kv->n_tokens + tokens.size() - tree_base] entries;
  // the tokens are its nodes from kv->n_tokens on. Row i sits at position tree_base +
  // depth and attends to the committed rows and its ancestors only, bit for bit as a
  // chain decode of its path. Empty: a chain (positions kv->n_tokens + i).
  int64_t tree_base = 0;
  std::span<const int32_t> tree_parent;
};

// One sequence's KV cache: K and V of every layer in device memory, [n_layer, hot_rows,
// kv_dim] each in the decoder's kv_dtype (hot_rows = ctx when the whole context fits,
// else kv_hot_pages × page_tokens: a ring, page q in slot q % kv_hot_pages), and how many
// positions hold tokens. Rows past n_tokens are scratch. With a window, `cold` holds rows
// [0, cold->n_tokens()) of the pages that left VRAM (LlamaDecoder::Truncate keeps both).
struct DeviceKv {
  std::shared_ptr<void> keep_alive;  // held by its owner's choice (the device), freed last
  Buffer k, v;
  int64_t n_tokens = 0;
  // The KV window (empty when the whole context is in VRAM): the page each ring slot
  // holds (-1: none). Invariant: a slot's rows [page start, n_tokens) are that page's.
  std::vector<int64_t> slot_page;
  kv::SequenceKv* cold = nullptr;         // the host cache: the caller's, or own_cold
  std::unique_ptr<kv::SequenceKv> own_cold;
};

// Where the weights live under a VRAM budget (LlamaDecoder::Plan).
struct VramPlan {
  uint64_t budget = 0;         // 0: no budget
  uint64_t fixed_bytes = 0;    // KV cache + activations + Q8 scratch + RoPE tables + head + norms
  uint64_t kv_bytes = 0;        // n_kv caches
  uint64_t kv_seq_bytes = 0;    // one sequence's K and V
  uint64_t head_bytes = 0;     // output matrix
  uint64_t layer_bytes = 0;    // every layer's matrices (each padded to the offset alignment)
  uint64_t largest_layer = 0;
  uint64_t ring_bytes = 0;     // 2 × largest_layer when any layer streams, else 0
  int64_t kv_pages = 0;        // pages of one sequence's context (ceil(ctx / page_tokens))
  int64_t kv_hot_pages = 0;    // of them in VRAM (= kv_pages: no window)
  uint64_t kv_cold_bytes = 0;  // with a window: the cold-page group buffers + softmax state
  bool kv_windowed() const { return kv_hot_pages < kv_pages; }
  int n_resident = 0;          // layers 0 .. n_resident-1 resident, the rest streamed
  int n_streamed = 0;          // n_host + n_disk
  uint64_t resident_layer_bytes = 0;  // the resident layers' share of layer_bytes
  // Where each layer's weights live: kVram for 0 .. n_resident-1, then kHost or kDisk.
  std::vector<WeightTier> tiers;
  int n_host = 0, n_disk = 0;
  uint64_t host_bytes = 0;     // host tier: host-visible memory (group layout)
  uint64_t staging_bytes = 0;  // disk tier: 2 host-visible staging buffers (group layout)
  // Matrix bytes each forward pass moves: host tier → VRAM ring; disk tier files →
  // staging (the page-aligned reads are at most disk_read_bytes_upper) → VRAM ring.
  uint64_t host_copy_bytes_per_pass = 0;
  uint64_t disk_bytes_per_pass = 0;
  uint64_t disk_read_bytes_upper = 0;
  uint64_t device_bytes() const;  // fixed + ring + resident layers
  std::string ToString() const;
};

class LlamaDecoder {
 public:
  // Plans the placement (reading only sizes), reads the VRAM tier and the output head
  // from the model's files and uploads them, reads the host tier into host-visible
  // buffers; allocates the KV cache, the ring and the staging buffers. `weights` and
  // `provider` must outlive the decoder (embedding rows are read through the provider
  // at each step; the disk tier from the files).
  // Errors: a VRAM budget too small for the fixed buffers and two layer slots
  // (kResourceExhausted naming the bytes needed and given), device allocation failures
  // (kResourceExhausted), host_layers of another length (kInvalidArgument), read errors
  // naming the layer, file and offset, unsupported features (kUnsupported).
  static Result<std::unique_ptr<LlamaDecoder>> Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                    models::WeightProvider& provider, const LlamaDecoderOptions& o);
  static Result<std::unique_ptr<LlamaDecoder>> Open(VulkanDevice& dev, const models::ModelWeights& weights,
                                                    models::WeightProvider& provider, int64_t ctx, DType kv_dtype,
                                                    int64_t page_tokens = 256);

  // The placement Open would choose (no device memory is touched).
  static Result<VramPlan> Plan(const VulkanDevice& dev, const models::ModelWeights& weights,
                               const LlamaDecoderOptions& o);

  // Runs `token` at position n_tokens() and appends it to the KV cache.
  // logits: [n_vocab]. Errors: a full context (kResourceExhausted), an out-of-range
  // token (kInvalidArgument), device errors.
  Status Step(int32_t token, float* logits);

  // Runs `tokens` at positions n_tokens().. in chunks of at most max_rows (tiled GEMM
  // for m > 1), appends them to the KV cache and writes the logits of the last one.
  // logits: [n_vocab]. Errors as Step (the whole prompt must fit the context).
  Status Prefill(std::span<const int32_t> tokens, float* logits);

  // A KV cache for Run (zeroed, n_tokens 0). With a KV window, pages leaving VRAM go to
  // `cold` (an empty cache of the decoder's layout, which must outlive the DeviceKv; the
  // engine passes the sequence's own RAM or disk cache), or when null to a new InRamKv.
  // Errors: device allocation (kResourceExhausted naming "K cache" / "V cache"); a
  // `cold` cache of another layout or not empty (kInvalidArgument).
  Result<std::unique_ptr<DeviceKv>> NewKv(kv::SequenceKv* cold = nullptr);
  // Drops the tokens at positions >= n (prefix reuse, rejected drafts), in VRAM and in
  // the host cache. Errors: n outside [0, n_tokens]; the host cache's Truncate errors.
  Status Truncate(DeviceKv& kv, int64_t n);

  // Runs `tokens` at positions kv.n_tokens.. (chunks of at most max_rows) and appends
  // them to kv. logits: [n_vocab] of the last token, or [tokens.size(), n_vocab] when
  // all_logits (each row's head is a GEMV, as a decode step's). On failure kv.n_tokens
  // is unchanged. Errors as Prefill.
  Status Run(DeviceKv& kv, std::span<const int32_t> tokens, float* logits, bool all_logits);
  // Several sequences in one step: their rows share each pass over the weights (passes
  // of at most max_rows rows; an item longer than what a pass has left continues in the
  // next, a tree item is never split), attention runs per sequence over its own cache.
  // Every row has decode numerics (GEMM rows = GEMV, attention per row), so each item's
  // logits are bit-identical to running it alone. On failure every kv's n_tokens is as
  // before. Errors as Prefill; a sequence twice, a bad tree (kInvalidArgument), a tree
  // without LlamaDecoderOptions::trees, with a KV window or sliding layers (kUnsupported).
  Status Run(std::span<const RunItem> items);
  // After a tree step whose first row was at slot `first` (kv.n_tokens = first + the
  // step's rows): keeps rows `path` of the step (increasing, path[j] >= j) at slots
  // first, first + 1, ... and drops the rest, so the cache is that of a chain decode of
  // the path. Device copies; errors: a bad path (kInvalidArgument).
  Status KeepTreePath(DeviceKv& kv, int64_t first, std::span<const int32_t> path);

  // Rows [0, n) of `layer`'s K and V of kv, in the cache dtype (session save/restore):
  // k, v: [n, kv_dim] elements of kv_dtype. Errors: n beyond the context, device errors.
  // WriteKv fills a new kv (n_tokens 0) layer by layer, 0 .. n_layer-1 in order (with a
  // window the rows go to the host cache, committed at the last layer, and the last
  // pages to VRAM); the caller then sets kv.n_tokens = n.
  Status ReadKv(const DeviceKv& kv, int64_t layer, int64_t n, void* k, void* v);
  Status WriteKv(DeviceKv& kv, int64_t layer, int64_t n, const void* k, const void* v);

  int64_t n_tokens() const { return own_kv_ ? own_kv_->n_tokens : 0; }
  const LlamaDecoderOptions& options() const { return opts_; }
  VulkanDevice& device() { return dev_; }

  // kOk when Open would accept the model and options; else the kUnsupported /
  // kInvalidArgument Open returns, naming the feature (QKV bias, q/k norm, ...).
  static Status Supports(const models::ModelConfig& c, const LlamaDecoderOptions& o);
  uint64_t device_bytes() const { return device_bytes_; }  // weights + KV + scratch + ring
  const VramPlan& plan() const { return plan_; }
  const WeightTierStats& tier_stats() const { return tier_stats_; }

 private:
  static constexpr int kMats = 7;  // wq, wk, wv, wo, gate, up, down
  struct Layer {
    std::array<WeightBuffer, kMats> mats;  // buffer null for a streamed layer (set per step)
    std::array<uint64_t, kMats> host_offset;  // each matrix's offset in the group layout
    uint64_t bytes = 0;                       // packed size (offsets aligned)
    int buffer = -1;                          // index into layer_buffers_ (resident), else -1
    WeightTier tier = WeightTier::kVram;
    Buffer host;                              // kHost: the group layout in host-visible memory
    std::vector<CopyRegion> regions;          // group layout → packed layout, one per matrix
    Buffer attn_norm, ffn_norm;
    int rope_table;  // index into rope_tables_ (layers with the same frequencies share)
    // The architecture's steps between the Q/K/V projections and RoPE (layer_parts.h).
    std::vector<std::unique_ptr<QkvPart>> qkv_parts;
  };
  LlamaDecoder(VulkanDevice& dev, const models::ModelWeights& w, models::WeightProvider& p)
      : dev_(dev), k_(dev), w_(w), provider_(p) {}
  Result<Buffer> UploadF32(const std::vector<float>& v, const char* what);
  // One sequence's rows in a pass: rows [row0, row0 + n) of the activation buffers.
  struct Segment {
    DeviceKv* kv;
    const int32_t* ids;
    int64_t n;
    int64_t row0;
    float* logits;    // last row's, or every row's (all_logits); null: none
    bool all_logits;
    int64_t tree_base;                 // tree_parent empty: a chain
    std::span<const int32_t> tree_parent;
  };
  // Runs the segments (ids range-checked, rows in total <= max_rows) through every layer
  // in one pass over the weights and appends each segment's rows to its kv.
  Status Forward(std::span<const Segment> segs);
  Status CheckRun(const DeviceKv& kv, std::span<const int32_t> tokens) const;
  // A streamed layer into ring[slot] (async): kHost from its host buffer, kDisk read
  // into staging[slot] first.
  Status Stage(int layer, int slot);
  // Reads layer l's matrices from the files into base (group layout, bytes of the group).
  Status ReadLayer(int64_t l, uint8_t* base, uint64_t bytes, const char* why);
  // KV window (llama_decoder_kv.cc). Before a pass writing rows [kv.n_tokens, + n): the
  // pages it touches get their ring slots (evicted pages appended to the host cache
  // first; a partly written page that is only in the host cache loaded back).
  Status PrepareKvWindow(DeviceKv& kv, int64_t n);
  Status SpillKv(DeviceKv& kv, int64_t to);  // host cache rows up to `to`, from the ring
  // The chunk's K/V rows (kn_, vn_) into the cache, then the attention of its n queries
  // over every page they see: into att_.
  // Rows [row0, row0 + n) of kn_/vn_/q_; the output into att_'s same rows.
  Status Attend(DeviceKv& kv, int layer, int64_t row0, int64_t n, std::span<const int64_t> positions,
                const GpuAttentionShape& shape);
  // Attend's body: queries from `q` (rows from 0), output into `out`.
  Status AttendRows(DeviceKv& kv, int layer, int64_t row0, int64_t n, std::span<const int64_t> positions,
                    const GpuAttentionShape& shape, const Buffer& q, const Buffer& out);
  // A tree segment's attention (llama_decoder_tree.cc): the pages before the one holding
  // slot tree_base folded once for all rows (state stored), then per row its chain-layout
  // region (committed rows of that page, then its ancestors) folded from that state.
  Status AttendTree(const Segment& seg, int layer, std::span<const int64_t> positions, std::span<const int32_t> depth,
                    const GpuAttentionShape& shape);
  Status CheckTree(const RunItem& it) const;
  // Scratch of one segment's attention queries and output when it does not start at
  // row 0 ([max_rows, q_dim] f32): the FFN's gate_/up_ buffers (idle during attention)
  // when n_ff >= q_dim, else buffers of their own.
  const Buffer& QScratch() const { return qs_.bytes() ? qs_ : gate_; }
  const Buffer& OutScratch() const { return atts_.bytes() ? atts_ : up_; }
  uint64_t KvRowBytes() const;
  int64_t KvHotRows() const;  // rows per layer of a DeviceKv's K (or V) buffer

  VulkanDevice& dev_;
  Kernels k_;
  const models::ModelWeights& w_;
  models::WeightProvider& provider_;  // embedding rows
  std::unique_ptr<WeightFileReader> files_;  // every weight matrix (the three tiers)
  WeightTierStats tier_stats_;
  LlamaDecoderOptions opts_;
  VramPlan plan_;
  std::vector<GpuKvPage> pages_;  // this step's page table (scratch)
  uint64_t device_bytes_ = 0;
  std::vector<Buffer> layer_buffers_;  // resident layers' matrices, one buffer per layer
  Buffer output_buffer_;
  std::vector<Layer> layers_;
  WeightBuffer output_{};
  Buffer output_norm_;
  std::vector<std::vector<float>> inv_freqs_;  // distinct RoPE frequency sets
  std::vector<float> mscales_;
  std::vector<Buffer> rope_tables_;
  std::unique_ptr<DeviceKv> own_kv_;  // Step/Prefill's cache (options own_kv)
  Buffer x_, h_, q_, kn_, vn_, att_, o_, gate_, up_, last_, logits_;
  Buffer qs_, atts_;  // QScratch/OutScratch when n_ff < q_dim
  // Draft trees (options trees): one row's chain-layout KV region, its query, output and
  // online-softmax state.
  Buffer tree_k_, tree_v_, tree_q_, tree_out_, tree_state_;
  int64_t tree_rows_cap_ = 0;
  std::vector<float> host_rows_;
  // Streaming: the ring's two VRAM slots, their host-visible staging buffers, the copy
  // into each slot and the compute submission that last read it.
  Buffer ring_[2], staging_[2];
  // KV window: cold pages of one layer staged for attention, double-buffered: group b
  // is gathered into host-visible cold_stage_[b] (K: [cold_group_pages_ pages, kv_dim],
  // then V at cold_group_bytes_), copied on the transfer queue into cold_[b] (same
  // layout) while the previous group's attention computes; cold_copy_[b] / cold_use_[b]:
  // its last copy and the last submission that read it. And the online softmax's state
  // between dispatches.
  Buffer cold_[2], cold_stage_[2], att_state_;
  int64_t cold_group_pages_ = 0;
  uint64_t cold_group_bytes_ = 0;
  SubmissionId cold_copy_[2] = {0, 0}, cold_use_[2] = {0, 0};
  SubmissionId slot_copy_[2] = {0, 0}, slot_use_[2] = {0, 0};
  int slot_layer_[2] = {-1, -1};
};

}  // namespace spool::gpu
