// The residency planner: divides the memory budget (--mem-budget) between what every
// step needs and the weight groups that stay resident; the rest are streamed.
//
// Fill order (DESIGN.md, "The memory budget"):
//   1. fixed: the process baseline (code, libraries, model metadata, tokenizer: the
//      RSS measured when planning) + a runtime reserve (thread stacks, oneDNN state,
//      allocator slack) + activations for one prefill chunk (counted term by term in
//      EstimateActivationBytes) + the embedding row scratch + a resident draft model
//      (speculative decoding: its own all-resident plan);
//   2. the streaming ring: prefetch_depth slots × the largest streamed group (0 when
//      everything is resident);
//   3. the KV cache of every sequence as the engine will create it: the whole context
//      in RAM, or (kv_window > 0 and ctx > kv_window) the disk-backed store's hot window
//      and read-ahead ring (kv::DiskKv::EstimateRamBytes);
//   4. MoE models: an expert cache of at least one token's routed experts of a layer
//      (n_expert_used slots of the largest expert; a smaller LRU cache never hits);
//   5. resident weight groups (dense parts: attention, norms, router, shared expert,
//      head) until the budget is full;
//   6. MoE models: what is left grows the expert cache, up to every routed expert
//      (then the experts are read once at open, as resident groups are).
// Which groups are resident: the head first when keeping it makes more bytes resident
// (it is usually the largest group, and a streamed head forces every ring slot to its
// size), then layers spread evenly over the depth of the model (resident layers
// interleave with streamed ones, so the disk keeps reading while resident layers
// compute). The token embedding table (untied models) is resident only when every
// group is; otherwise only the rows a step needs are read from the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/dtype.h"
#include "base/status.h"
#include "models/weights.h"

namespace spool::runtime {

// The engine builds these from its EngineOptions in one place (runtime/engine.h
// PlannerOptionsFor), so that `spool show --plan` and every command that runs a model
// plan with the same numbers.
struct PlannerOptions {
  uint64_t budget_bytes = 0;      // 0: auto = kAutoBudgetFraction of MemAvailable
  int64_t ctx = 4096;             // tokens of KV per sequence
  int64_t n_seq = 1;              // sequences with a KV cache at once
  // --kv-window: when > 0 and ctx > kv_window_tokens, each sequence keeps only this
  // window (whole pages) + a read-ahead ring in RAM (kv/disk_kv.h); else all of ctx.
  int64_t kv_window_tokens = 0;
  DType kv_dtype = DType::kBF16;
  int64_t kv_page_tokens = 256;
  // Rows of the largest step; 0: auto, the planner chooses a prefill chunk (ChoosePrefillChunk's
  // rule below) and plans with it.
  int64_t prefill_chunk = 512;
  int64_t max_logit_rows = 1;     // logit rows the caller keeps per chunk (perplexity: chunk)
  int64_t recurrent_keep_recent = 0;  // linear-attention models: recent states kept (kv::RecurrentLayout)
  int threads = 1;
  int prefetch_depth = 2;         // ring slots (>= 2)
  uint64_t baseline_bytes = 0;    // process RSS before the engine allocates; 0: measure now
  // A resident draft model for speculative decoding (--draft): its whole plan (weights,
  // KV, activations, reserve), taken off the budget before anything else.
  uint64_t draft_bytes = 0;
  // --device vulkan (runtime/gpu_backend.h, the three weight tiers): the device reads
  // every weight group from the model's files itself. device_groups[g]: held in VRAM
  // (the VRAM plan's resident layers and the head; no host memory). The other layer
  // groups are this plan's to place: resident = the device's host tier (host-visible
  // memory, read once at open), streamed = its disk tier (read every pass into two
  // staging buffers of the largest such group: this plan's ring). Empty: the CPU.
  std::vector<bool> device_groups;
  // --device vulkan with every sequence's whole KV cache in VRAM: no host KV cache
  // (false: the host holds the pages older than the VRAM window, in RAM or on disk).
  bool device_kv_in_vram = false;
};

// The measured baseline is rounded up to this, so that two processes doing the same
// work (`spool show --plan` and `spool run`) plan with the same figure.
inline constexpr uint64_t kBaselineGranule = 1ull << 20;

inline constexpr double kAutoBudgetFraction = 0.7;
// Reserve for what the process allocates besides the terms counted explicitly.
inline constexpr uint64_t kRuntimeReserveBytes = 48ull << 20;

struct ResidencyPlan {
  uint64_t budget_bytes = 0;
  bool budget_auto = false;
  // Fixed part.
  uint64_t baseline_bytes = 0;     // RSS measured at planning time
  uint64_t reserve_bytes = 0;      // kRuntimeReserveBytes
  uint64_t activation_bytes = 0;   // EstimateActivationBytes
  uint64_t embedding_scratch_bytes = 0;
  uint64_t draft_bytes = 0;        // resident draft model (PlannerOptions::draft_bytes)
  // Ring.
  int ring_slots = 0;
  uint64_t ring_slot_bytes = 0;
  uint64_t ring_bytes() const { return static_cast<uint64_t>(ring_slots) * ring_slot_bytes; }
  // KV.
  uint64_t kv_bytes = 0;           // all sequences (incl. recurrent_bytes)
  int64_t recurrent_keep_recent = 0;  // of those, states kept per sequence for speculative rollback
  uint64_t kv_disk_bytes = 0;      // all sequences' scratch files at the full context (0: KV in RAM)
  uint64_t recurrent_bytes = 0;    // of kv_bytes: linear-attention states (+ pending copy, checkpoints), all sequences
  int64_t ctx = 0;                 // the inputs that sized the plan, for the record
  int64_t n_seq = 1;
  int64_t kv_window_tokens = 0;    // as given (0: all in RAM)
  bool kv_on_disk = false;         // ctx > window: the disk-backed store's RAM is counted
  int64_t prefill_rows = 0;        // rows of the largest step
  // Tokens per prefill step of one sequence (the engine's resolved --prefill-chunk) and
  // whether the planner chose it (PlannerOptions::prefill_chunk == 0).
  int64_t prefill_chunk = 0;
  bool prefill_chunk_auto = false;
  int threads = 1;
  // Weights.
  std::vector<bool> resident;      // [n_groups]
  bool embedding_resident = false; // untied table held in RAM (tied: the head group's rows)
  uint64_t resident_bytes = 0;     // resident groups + resident embedding table
  uint64_t streamed_bytes_per_step = 0;  // device bytes per step (page-aligned reads)
  uint64_t embedding_row_bytes = 0;      // bytes read per token when the table is not in RAM
  int n_streamed = 0;
  // Expert cache (MoE models; 0 slots otherwise): slots of the largest routed expert's
  // buffer. expert_cache_slots >= n_experts_total: every expert is held, read at open.
  int64_t expert_cache_slots = 0;
  uint64_t expert_slot_bytes = 0;
  int64_t n_experts_total = 0;           // routed experts of all MoE layers
  int64_t expert_min_slots = 0;          // n_expert_used: one token's experts of a layer
  uint64_t expert_bytes_per_token = 0;   // device bytes when every routed expert misses (upper bound)
  uint64_t expert_cache_bytes() const { return static_cast<uint64_t>(expert_cache_slots) * expert_slot_bytes; }
  bool experts_resident() const { return expert_cache_slots >= n_experts_total; }
  // Disk read speed for the prediction (bytes/s; 0: not known). Set by the engine from
  // --disk-bw or a probe that runs inside the ring's share of the budget.
  double disk_bytes_per_s = 0;
  bool disk_measured = false;
  // --device vulkan (PlannerOptions::device_groups): the groups VRAM holds. Then the
  // device reads every group itself: `resident` marks its host tier, the other
  // non-device groups its disk tier, the ring its staging buffers; StreamingWeights
  // holds no group (only the embedding table, when embedding_resident).
  std::vector<bool> on_device;
  bool device_tiers() const { return !on_device.empty(); }
  uint64_t device_min_bytes = 0;       // the host bytes before any layer (fixed, host KV, row scratch)
  uint64_t device_largest_bytes = 0;   // the largest layer group not in VRAM (a staging buffer's size)

  uint64_t fixed_bytes() const {
    return baseline_bytes + reserve_bytes + activation_bytes + embedding_scratch_bytes + draft_bytes;
  }
  uint64_t planned_bytes() const {
    return fixed_bytes() + ring_bytes() + kv_bytes + resident_bytes + expert_cache_bytes();
  }
  bool all_resident() const { return n_streamed == 0 && experts_resident(); }
};

// Bytes of transformer scratch, matmul scratch and logits for a step of `rows` rows.
uint64_t EstimateActivationBytes(const models::ModelConfig& c, int64_t rows, int64_t max_logit_rows, int threads);
// In-RAM KV bytes: Σ over layers of (pages held) × page_tokens × kv_dim × 2 (K, V) ×
// dtype; a layer holds its tokens rounded up to pages, a sliding-window layer at most
// ceil((window - 1 + step_tokens) / page_tokens) + 1 pages (InRamKv frees the rest:
// the window before the step's first query plus the step's own rows).
uint64_t EstimateKvBytes(const models::ModelConfig& c, int64_t tokens, int64_t page_tokens, DType dtype,
                         int64_t step_tokens = 1);
// "" unless a sliding layer's window is not shorter than ctx; else a sentence saying
// that those layers attend to the whole context (accepted, as in transformers and
// llama.cpp: the mask never cuts anything, the kernel gives full attention bit for bit).
std::string SlidingWindowNote(const models::ModelConfig& c, int64_t ctx);
// Per-layer sliding windows of a model as kv::KvLayout::window wants them (0: full).
std::vector<int64_t> SlidingWindows(const models::ModelConfig& c);
// One sequence's KV RAM as the engine creates it (Engine::NewSequence): InRamKv for ctx
// tokens when kv_window is 0 or ctx <= kv_window, else DiskKv's hot window + ring.
uint64_t EstimateSequenceKvBytes(const models::ModelConfig& c, int64_t ctx, int64_t kv_window, int64_t page_tokens,
                                 DType dtype, int64_t step_tokens = 1);
// One sequence's KV bytes on disk at the full context (0 when it stays in RAM): a
// DiskKv spills every page before its hot window, 2 × page_bytes rounded up to 4096
// each; a sliding-window layer keeps at most its live pages that are not hot,
// ceil((window - 1 + step_tokens) / page_tokens) + 1 − hot pages (the rest are punched
// out of the file or never written, kv/disk_kv.h).
uint64_t EstimateSequenceKvDiskBytes(const models::ModelConfig& c, int64_t ctx, int64_t kv_window, int64_t page_tokens,
                                     DType dtype, int64_t step_tokens = 1);
// Device bytes read for a group: page-aligned supersets of its matrices.
uint64_t GroupReadBytes(const models::ModelWeights& w, int g);
// Device bytes read for routed expert e of layer l: page-aligned supersets of its extents.
uint64_t ExpertReadBytes(const models::ModelWeights& w, int64_t l, int64_t e);

// Prefill chunk candidates for auto (PlannerOptions::prefill_chunk == 0), largest first.
// Rule: plan with the smallest; then take the largest candidate (at most the context)
// whose plan is feasible and keeps exactly the same resident weight groups, embedding
// residency and expert cache slots. A bigger chunk reads the streamed weights fewer
// times per prompt, and its activations come only from budget that would otherwise
// stay unused, so decode speed never pays for it. Deterministic for given inputs.
inline constexpr int64_t kAutoPrefillChunks[] = {4096, 2048, 1024, 512};

// Errors: ResourceExhausted when the budget cannot hold the fixed part, the KV cache,
// a ring for the largest group and (MoE) one token's experts of a layer (the message
// lists every term); InvalidArgument for
// bad options; Unavailable-style Io when auto cannot read MemAvailable.
Result<ResidencyPlan> PlanResidency(const models::ModelWeights& w, const PlannerOptions& options);

// Sequential O_DIRECT read speed of the model's largest file, in bytes/s: reads up to
// `max_bytes` with the async reader (1 MiB pieces) in batches of `batch_bytes` into
// two buffers used in turn (RSS: 2 × batch_bytes, freed on return).
inline constexpr uint64_t kDiskProbeBytes = 256ull << 20;
Result<double> MeasureDiskBandwidth(const formats::ModelSource& src, uint64_t max_bytes = kDiskProbeBytes,
                                    uint64_t batch_bytes = 32ull << 20);
// The probe's batch size inside a plan: half the ring's bytes (at most 32 MiB, at least
// one page), so that probing before the ring is allocated stays within the plan; 0
// when nothing streams (no probe needed: the prediction is "not I/O bound").
uint64_t DiskProbeBatchBytes(const ResidencyPlan& plan);

// Human-readable plan (one line per fact; streamed/resident groups as ranges) and the
// decode speed the disk allows (plan.disk_bytes_per_s <= 0: not predicted).
std::string FormatPlan(const models::ModelWeights& w, const ResidencyPlan& plan);
nlohmann::ordered_json PlanToJson(const models::ModelWeights& w, const ResidencyPlan& plan);

}  // namespace spool::runtime
