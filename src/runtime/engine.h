// spool's public engine API: open a model, create sequences, feed and decode tokens.
// The CLI, the server and the batch runner use only this (and runtime/generate.h).
//
// Threading: an Engine runs one step at a time; calls must not overlap (the server
// serialises them through its scheduler). Sequences belong to one engine.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "formats/model_source.h"
#include "kv/disk_kv.h"
#include "kv/kv_cache.h"
#include "models/config.h"
#include "models/transformer.h"
#include "models/weights.h"
#include "gpu/device_spec.h"
#include "runtime/gpu_backend.h"
#include "runtime/planner.h"
#include "runtime/streaming_weights.h"
#include "storage/reader.h"
#include "tokenizer/tokenizer.h"

namespace spool::runtime {

struct EngineOptions {
  int threads = 0;               // <= 0: all cores
  int64_t ctx = 0;               // context length per sequence; 0: min(model maximum, 4096)
  // false: a ctx above the model's trained context is refused; true: allowed with a
  // warning (llama.cpp's behaviour; positions past it are untrained, e.g. long-prompt timing).
  bool ctx_beyond_training = false;
  // Tokens per prefill step (weights read once per chunk); 0: auto, chosen by the planner
  // from the budget (runtime/planner.h kAutoPrefillChunks; options() then holds the
  // choice). Prefill logits depend on the chunk (GEMM rows), not on how it was chosen.
  int64_t prefill_chunk = 512;
  DType kv_dtype = DType::kBF16; // kF32 or kBF16
  int64_t kv_page_tokens = 256;
  bool load_tokenizer = true;    // false: ids only (tests on tokenizer-less fixtures)
  // KV placement (kv/disk_kv.h): when the context exceeds kv_window tokens, each layer
  // keeps its last kv_window tokens' pages in RAM and spills older pages to a scratch
  // file under kv_dir. 0: everything in RAM.
  int64_t kv_window = 2048;
  std::string kv_dir;            // "": $SPOOL_HOME/kv (else ~/.spool/kv)
  uint64_t kv_max_disk = 0;      // bytes all sequences may spill; 0: unlimited
  // Weight residency (runtime/planner.h): the whole process's memory budget in bytes;
  // 0 = auto (70% of MemAvailable). Groups that do not fit are streamed from the files.
  uint64_t mem_budget = 0;
  int prefetch_depth = 2;                            // ring slots for streamed groups
  int64_t max_logit_rows = 1;                        // logit rows a caller keeps per chunk (planning)
  // Sequences holding a KV cache at once (scheduler: active + prefix-cached). Planning only.
  int64_t max_sequences = 1;
  // Disk read speed for the plan's decode prediction (--disk-bw), bytes/s; 0: unknown,
  // measured at open when measure_disk is set and weights stream. The probe runs before
  // the ring is allocated, in buffers no larger than the ring (DiskProbeBatchBytes), so
  // it stays within the plan.
  double disk_bytes_per_s = 0;
  bool measure_disk = false;
  // Rows of the largest Step() a caller will run (scheduler: decode tokens plus prefill
  // chunks of several sequences); 0: prefill_chunk. Planning only.
  int64_t max_step_rows = 0;
  // llama.cpp's CPU rounding, bit for bit (models/config.h ggml_numerics): GGUF models
  // only (llama3 scaling as GGUF's rope_freqs, and yarn, included). Costs: attention walks the KV pages twice and
  // keeps [32 rows, n_head, context] scores per block of queries (not flat in context).
  bool ggml_numerics = false;
  storage::IoBackend io_backend = storage::IoBackend::kAuto;  // kAuto honours SPOOL_IO=pread
  ExpertEviction expert_eviction = ExpertEviction::kFrequency;  // MoE expert cache (--expert-eviction)
  // Speculative decoding (runtime/speculative.h). max_draft: draft tokens per
  // verification step at most (planning: steps of max_draft + 1 rows); 0: no speculation.
  int64_t max_draft = 0;
  // A draft model (--draft MODEL): same vocabulary, opened with the engine, kept
  // resident; its whole plan is taken off mem_budget. "": none. "self", "self:q8_0",
  // "self:q4_0": a quantised copy of this model (runtime/self_draft.h), built once
  // under $SPOOL_HOME/drafts.
  std::string draft_model;
  // Draft trees will be verified (--draft-tree > 0). On a Vulkan device they need the
  // whole KV cache in VRAM and no sliding-window layer (refused at open; auto: CPU).
  bool draft_trees = false;
  // Where the forward pass runs (--device; runtime/gpu_backend.h): the CPU (the
  // reference), a Vulkan device, or auto (a Vulkan GPU when one exists and runs the
  // model, else the CPU with a warning saying why). On Vulkan: dense Llama-family
  // models; each sequence's KV cache lives in VRAM (kv_window/kv_dir do not apply).
  gpu::DeviceSpec device;
  // Device bytes for weights + KV caches (max_sequences of ctx tokens) + activations;
  // layers that do not fit stream through a VRAM ring each step. 0: all in VRAM.
  uint64_t vram_budget = 0;
  // Tokens of each sequence's KV cache kept in VRAM (gpu::LlamaDecoderOptions::
  // kv_hot_tokens: whole pages, at least one chunk's); older pages live in its CPU cache
  // (RAM, or DiskKv beyond kv_window). 0: the VRAM plan decides.
  int64_t vram_kv_window = 0;
};

// One conversation / document: its tokens and their KV cache.
class Sequence {
 public:
  ~Sequence();
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t n_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  kv::SequenceKv& kv() { return *kv_; }
  // The linear-attention layers' state (models with Gated DeltaNet layers), else nullptr.
  kv::RecurrentState* recurrent() { return state_.get(); }

 private:
  friend class Engine;
  std::unique_ptr<kv::SequenceKv> kv_;
  std::unique_ptr<kv::RecurrentState> state_;
  // --device vulkan: the KV cache in VRAM (kv_ stays empty); allocated at first use.
  std::unique_ptr<gpu::DeviceKv> dkv_;
  std::vector<int32_t> tokens_;  // every token whose K/V is in the cache
};

struct EngineStats {
  uint64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double load_seconds = 0;
  uint64_t resident_bytes = 0;
  // Weight bytes read from disk while prefilling / decoding (streamed groups and
  // embedding rows; device bytes incl. page alignment).
  uint64_t prefill_weight_bytes = 0, decode_weight_bytes = 0;
  // Steps (weight passes) that carried decode rows; with speculation one such step
  // verifies several tokens, so decode_tokens / decode_steps > 1.
  uint64_t decode_steps = 0;
};

// done/total tokens of a long prefill; return false to cancel (→ kCancelled).
using ProgressFn = std::function<bool(int64_t done, int64_t total)>;

// States a linear-attention sequence keeps for speculative rollback (kv::RecurrentLayout::
// keep_recent): max_draft + 1 (a verification step's rows) when speculating, else 0.
inline int64_t RecurrentKeepRecent(const EngineOptions& o) { return o.max_draft > 0 ? o.max_draft + 1 : 0; }

// The one mapping from engine options to planner options (context default, threads,
// step rows, KV window, sequences). `ctx` is the resolved context, `threads` the pool's.
PlannerOptions PlannerOptionsFor(const EngineOptions& options, int64_t ctx, int threads);

// What Engine::Open would plan, without reading weights (spool show --plan).
struct EnginePlan {
  std::unique_ptr<models::ModelWeights> weights;  // metadata; no tensor data loaded
  int64_t ctx = 0;
  ResidencyPlan plan;
  std::optional<gpu::VramPlan> vram_plan;  // options.device is vulkan[:N]
};

class Engine {
 public:
  // Errors: bad options (InvalidArgument), unreadable or invalid model files, a budget
  // too small for the plan (ResourceExhausted, naming every term), read errors.
  static Result<std::unique_ptr<Engine>> Open(const std::string& model, const EngineOptions& options);
  // Runs every step of Open up to and including the plan (and the disk probe when
  // options.measure_disk): the same function, so the same figures as Open, measured
  // in this process. Errors as Open's.
  static Result<EnginePlan> Plan(const std::string& model, const EngineOptions& options);
  ~Engine();

  const models::ModelConfig& config() const { return weights_->config(); }
  const models::ModelWeights& weights() const { return *weights_; }
  const formats::ModelSource& source() const { return weights_->source(); }
  const EngineOptions& options() const { return options_; }
  int64_t ctx() const { return ctx_; }
  int64_t n_vocab() const { return config().n_vocab; }
  // nullptr when the model ships no tokenizer (or load_tokenizer was false).
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_.get(); }
  ThreadPool& pool() { return *pool_; }
  // The draft model's engine (EngineOptions::draft_model), nullptr when none.
  Engine* draft_engine() { return draft_.get(); }
  // A self-draft (draft_model "self[:q8_0|q4_0]") was (re)built by this Open / Plan.
  bool self_draft_built() const { return self_draft_built_; }

  std::unique_ptr<Sequence> NewSequence();

  // Appends `tokens` to the sequence in chunks of options.prefill_chunk.
  // logits: [n_vocab] for the last token, or [tokens.size(), n_vocab] when all_logits.
  // Fails (sequence unchanged) when an id is out of range or the context would overflow.
  Status Prefill(Sequence& seq, std::span<const int32_t> tokens, float* logits, bool all_logits = false,
                 const ProgressFn& progress = nullptr);

  // One decode step for many sequences at once: seqs[i] gets tokens[i].
  // logits: [seqs.size(), n_vocab]. One pass over the weights serves all of them.
  Status Decode(std::span<Sequence* const> seqs, std::span<const int32_t> tokens, float* logits);

  // One step over several sequences at once, mixing prefill chunks and decode tokens:
  // items[i].seq gets items[i].tokens appended (at most max(prefill_chunk, max_step_rows)
  // tokens in all is what the planner budgeted). One pass over the weights serves every
  // item, and each item's logits are bit-identical to running it alone (a chunk through
  // Prefill's path with the same m, a single token through Decode's).
  // logits: [Σ (all_logits ? tokens.size() : 1), n_vocab] in item order.
  // On failure no sequence changes.
  // decode_rows: the item's rows take decode numerics (models::SeqStep::decode_rows):
  // row i's logits are bit-identical to feeding tokens[0..i] by Decode, one per step.
  // That is a speculative verification: the last accepted token plus drafts, checked
  // in one pass over the weights; the caller then Truncates what it rejects. Counted
  // as decode tokens. Set all_logits too to get every row's logits.
  struct StepItem {
    Sequence* seq = nullptr;
    std::span<const int32_t> tokens;  // at least one
    bool all_logits = false;
    bool decode_rows = false;
    // A draft tree (models::SeqStep::tree_parent, models/tree_attention.h): node i at
    // slot tree_base + i with parent tree_parent[i] (-1: hangs off slot tree_base - 1),
    // position tree_base + depth, attending to the committed tokens and its ancestors
    // only, with decode numerics. [seq.n_tokens() + tokens.size() - tree_base]; empty:
    // no tree. tree_rows (optional) receives the step's K/V for KeepTreePath.
    int64_t tree_base = 0;
    std::span<const int32_t> tree_parent;
    models::TreeRows* tree_rows = nullptr;
  };
  // Errors: InvalidArgument for an empty item, a bad id or tree, a sequence twice;
  // ResourceExhausted when the context would overflow; read errors.
  Status Step(std::span<const StepItem> items, float* logits);

  // After a tree step (StepItem::tree_rows = rows): keeps the step's rows `path`
  // (increasing row indices) as the tokens after the sequence's first rows.first and
  // drops the rest; the sequence is then exactly as if the path's tokens alone had been
  // decoded (later logits bit-identical; RAM and disk KV). Errors: a bad path
  // (InvalidArgument), KV errors.
  Status KeepTreePath(Sequence& seq, const models::TreeRows& rows, std::span<const int32_t> path);

  // Drops tokens at position >= n from the sequence (prefix reuse, rejected drafts):
  // in RAM and disk-backed KV alike, the sequence is then exactly as if the dropped
  // tokens had never been fed (later steps' logits bit-identical).
  Status Truncate(Sequence& seq, int64_t n);
  // Models with linear-attention layers: keep a checkpoint of seq's recurrent state at
  // its current length, so that a later Truncate / RewindPoint can return there (a chat
  // turn's prompt end). Returns false (nothing to keep) for other models.
  bool KeepCheckpoint(Sequence& seq);
  // The largest m <= n that Truncate(seq, m) accepts as far as the recurrent state goes
  // (models with linear-attention layers: the length, a kept checkpoint or 0; other
  // models: n). Callers that want "at most n" (chat's next turn) truncate there.
  int64_t RewindPoint(Sequence& seq, int64_t n) const;

  // Sessions (kv/session.h; defined in runtime/engine_session.cc). SaveSession writes
  // seq's tokens and KV plus `pending` (generated tokens not yet fed) to `path`,
  // atomically. LoadSession validates the file (format, checksums, this model's
  // fingerprint, KV type, context) and returns a sequence holding the saved tokens;
  // *pending gets the saved pending tokens, *settings (when not null) the saved settings
  // object (untrusted: validate what you read from it). Errors: NotFound, InvalidFile (corrupt,
  // truncated, other model), InvalidArgument (settings mismatch), Io/ResourceExhausted.
  Status SaveSession(const std::string& path, Sequence& seq, std::span<const int32_t> pending,
                     const nlohmann::ordered_json& settings);
  Result<std::unique_ptr<Sequence>> LoadSession(const std::string& path, std::vector<int32_t>* pending,
                                                nlohmann::ordered_json* settings = nullptr);
  // Identity of the model's files and config (kv::ModelFingerprint), computed once.
  Result<std::string> ModelFingerprint();
  // Bytes of KV pages currently spilled to disk by all sequences.
  uint64_t kv_disk_bytes() const;

  // MoE routing decisions of every later step (models::RoutingRecord), nullptr: off.
  void SetRoutingObserver(models::RoutingObserver fn) { transformer_->SetRoutingObserver(std::move(fn)); }

  const EngineStats& stats() const { return stats_; }
  const models::ForwardStats& forward_stats() const { return transformer_->stats(); }
  const ResidencyPlan& plan() const { return plan_; }
  const StreamStats& stream_stats() const { return streaming_->stats(); }

  // The device the forward pass runs on: "cpu" or "vulkan:N (name)".
  std::string device_name() const { return gpu_ ? gpu_->name() : "cpu"; }
  // --device auto's reason for the CPU ("" otherwise; also logged as a warning at Open).
  const std::string& device_note() const { return device_note_; }
  // The Vulkan device's counters (device time, transfers) and VRAM plan; nullptr on the CPU.
  const gpu::DeviceStats* device_stats() const { return gpu_ ? &gpu_->device_stats() : nullptr; }
  const gpu::VramPlan* vram_plan() const { return gpu_ ? &gpu_->vram_plan() : nullptr; }
  // Bytes moved per weight tier (host RAM and disk → VRAM); nullptr on the CPU.
  const gpu::WeightTierStats* tier_stats() const { return gpu_ ? &gpu_->tier_stats() : nullptr; }

 private:
  Engine() = default;
  // Open's steps before any weight is read: options, model metadata, context, thread
  // pool, tokenizer (so the measured baseline includes it), plan_, the disk probe.
  // given: the model's source already opened (a self-draft), else opened from `model`.
  Status PrepareAndPlan(const std::string& model, formats::ModelSource* given = nullptr);
  static Result<std::unique_ptr<Engine>> OpenImpl(const std::string& model, const EngineOptions& options,
                                                  formats::ModelSource* given);
  Status CheckTokens(std::span<const int32_t> tokens) const;
  // --device: opens the device and plans VRAM (gpu_; for auto, or sets device_note_)
  // before the host plan; LoadDevice reads the weights into their tiers after it.
  Status PrepareDevice();
  Status LoadDevice();
  std::vector<bool> HostLayers() const;  // [n_layer]: the host plan's RAM tier
  GpuBackendOptions DeviceOptions() const;
  // One run of `tokens` for seq on the device (allocates its DeviceKv at first use).
  Status RunOnDevice(Sequence& seq, std::span<const int32_t> tokens, float* logits, bool all_logits);
  // Checks the draft model (options_.draft_model) against this one (vocabulary) and
  // sizes its resident plan: sets draft_options_ and draft_bytes_.
  Status PlanDraft();

  EngineOptions options_;
  int64_t ctx_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<models::ModelWeights> weights_;
  std::unique_ptr<models::WeightProvider> provider_;
  StreamingWeights* streaming_ = nullptr;  // == provider_
  std::unique_ptr<models::Transformer> transformer_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  EngineStats stats_;
  ResidencyPlan plan_;
  std::shared_ptr<kv::DiskQuota> kv_quota_;  // --kv-max-disk, shared by all sequences
  std::string fingerprint_;                  // cached ModelFingerprint()
  std::unique_ptr<Engine> draft_;            // EngineOptions::draft_model
  EngineOptions draft_options_;              // how draft_ is opened (set by PlanDraft)
  uint64_t draft_bytes_ = 0;                 // its resident plan's bytes
  std::optional<formats::ModelSource> draft_source_;  // a self-draft's source (runtime/self_draft.h)
  bool self_draft_built_ = false;            // PlanDraft wrote the self-draft copy
  std::unique_ptr<GpuBackend> gpu_;          // --device vulkan: runs every step; null: the CPU
  std::string device_note_;
};

}  // namespace spool::runtime
