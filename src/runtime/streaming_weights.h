// A WeightProvider that keeps the groups a ResidencyPlan marks resident in RAM and
// streams the others from the model's own files (safetensors shards or GGUF, no
// converted copy) on every step.
//
// I/O: one storage::Reader (io_uring, or a pread thread pool with SPOOL_IO=pread or
// StreamingOptions::reader.backend), files opened with O_DIRECT (buffered reads +
// POSIX_FADV_DONTNEED where the filesystem refuses it). Each matrix is read as its
// page-aligned superset straight into its place in a ring slot (models/weights.h lays
// groups out so that this lands in place): no copy, no allocation per step.
//
// Ring: plan.ring_slots slots of plan.ring_slot_bytes, allocated once. Streamed groups
// are read in the cyclic order the forward pass uses them (layer 0..L-1, head, then the
// next step's layer 0 ...): Release(g) frees g's slot and at once submits the read of
// the streamed group `ring_slots` positions later, so the next groups (also those of
// the next step) are read while the current one computes. Quantised GGUF weights are
// streamed as stored; the kernels dequantise on the fly.
//
// Embedding rows: when the table is not in RAM (untied and not resident, or tied to a
// streamed head) EmbeddingRows reads only the rows of the step's tokens (page-aligned
// supersets, synchronous pread on the reader's files, so they do not queue behind the
// ring's reads) into a scratch buffer sized for the largest step.
//
// Expert cache (MoE models): plan.expert_cache_slots slots of plan.expert_slot_bytes in
// one buffer allocated at open, each holding one routed expert (ExpertRef layout).
// PrepareExperts pins the wave's experts; each one not cached takes the least recently
// used unpinned slot (or, with ExpertEviction::kFrequency, the least used expert's)
// and its extents' reads are submitted at once (one reader ticket
// per expert), so Expert(l, e) waits for e alone and the first experts' math overlaps
// the others' reads. When the plan holds every expert they are read at open with the
// resident groups and never evicted. A failed expert read empties its slot (the next
// step reads it again) and is returned by Expert, naming layer, expert, file and offset.
//
// Errors: a failed read (I/O error, file truncated since open) is returned by the
// Acquire that needs it, naming the group, file and offset; the next BeginStep drains
// the ring and starts over, so a later step can succeed if the file is readable again.
// A file replaced (renamed over) after open keeps being read from the open file.
//
// Not thread-safe: one forward pass at a time (the Engine's contract).
#pragma once

#include <memory>
#include <vector>

#include "base/aligned_buffer.h"
#include "models/weight_provider.h"
#include "models/weights.h"
#include "runtime/planner.h"
#include "storage/reader.h"

namespace spool::runtime {

// Which cached expert a miss replaces (among the unpinned slots).
enum class ExpertEviction {
  kLru,        // least recently used
  kFrequency,  // fewest uses of that expert (counted per expert, cached or not, halved
               // every 8 × slots lookups so old popularity fades), then least recent
};

struct StreamingOptions {
  storage::ReaderOptions reader;   // backend, O_DIRECT, queue depth, piece size
  ExpertEviction expert_eviction = ExpertEviction::kFrequency;
};

// Cumulative counters.
struct StreamStats {
  uint64_t resident_bytes = 0;         // loaded once at open
  uint64_t streamed_bytes = 0;         // device bytes read for streamed groups since open
  uint64_t embedding_bytes = 0;        // device bytes read for embedding rows
  uint64_t groups_streamed = 0;        // group reads completed
  double wait_seconds = 0;             // Acquire blocked on a streamed group's read
  double load_seconds = 0;             // reading the resident groups at open
  // Expert cache: lookups are experts named by PrepareExperts (one per expert a row
  // block's router chose, however many of the block's rows chose it).
  uint64_t expert_hits = 0, expert_misses = 0;
  uint64_t expert_bytes = 0;           // device bytes read for experts on misses
  double expert_wait_seconds = 0;      // Expert() blocked on a read
  uint64_t bytes_read() const { return streamed_bytes + embedding_bytes + expert_bytes; }
};

class StreamingWeights final : public models::WeightProvider {
 public:
  // Allocates the ring and the resident groups and reads the latter. Errors: the
  // reader's open errors, read errors of resident groups (naming file and offset).
  static Result<std::unique_ptr<StreamingWeights>> Open(const models::ModelWeights& weights, const ResidencyPlan& plan,
                                                        const StreamingOptions& options = {});
  ~StreamingWeights() override;  // waits for reads in flight

  void BeginStep() override;
  Result<const uint8_t*> Acquire(int g) override;
  void Release(int g) override;
  Status EmbeddingRows(const int32_t* ids, int64_t n, float* out) override;
  int64_t ExpertCapacity() const override { return static_cast<int64_t>(expert_slots_.size()); }
  Status PrepareExperts(int layer, std::span<const int32_t> ids) override;
  Result<const uint8_t*> Expert(int layer, int32_t e) override;
  bool ExpertReady(int layer, int32_t e) const override;
  void ReleaseExperts(int layer) override;

  const StreamStats& stats() const { return stats_; }
  const ResidencyPlan& plan() const { return plan_; }
  storage::Reader& reader() { return *reader_; }  // tests: fault injection, backend

 private:
  struct Slot {
    AlignedBuffer buf;           // [plan.ring_slot_bytes]
    int group = -1;
    storage::Ticket ticket = 0;
    bool in_flight = false;      // submitted, not yet waited on
    Status status;               // result of the read once waited on
  };
  struct ExpertSlot {
    int64_t key = -1;            // layer * n_expert + expert; -1: empty
    uint64_t last_use = 0;       // LRU clock at the last PrepareExperts naming it
    bool pinned = false;         // named by the current wave
    bool in_flight = false;      // submitted, not yet waited on
    storage::Ticket ticket = 0;
    uint64_t read_bytes = 0;     // device bytes of its read
    Status status;               // result of the read once waited on
  };
  StreamingWeights(const models::ModelWeights& w, const ResidencyPlan& plan, ExpertEviction ev)
      : w_(w), plan_(plan), eviction_(ev) {}
  uint8_t* ExpertSlotData(int32_t s) { return expert_arena_.data() + static_cast<uint64_t>(s) * plan_.expert_slot_bytes; }
  // Page-aligned reads of layer l's expert e into base (ExpertRef layout).
  void ExpertRequests(int64_t l, int64_t e, uint8_t* base, std::vector<storage::ReadRequest>* out) const;
  // Waits for slot s's read (if in flight) and counts it; a failure empties the slot.
  void FinishExpertRead(int32_t s);
  // Page-aligned reads of group g into base (group layout).
  void GroupRequests(int g, uint8_t* base, std::vector<storage::ReadRequest>* out) const;
  void Fill();           // submits reads until ring_slots are outstanding
  void Drain();          // waits for every outstanding read, discarding results
  void Restart(int64_t at);  // drains and restarts the cycle at streamed index `at`

  const models::ModelWeights& w_;
  ResidencyPlan plan_;
  ExpertEviction eviction_;
  std::unique_ptr<storage::Reader> reader_;
  std::vector<AlignedBuffer> resident_;          // [n_groups]; empty buffers for streamed groups
  AlignedBuffer embd_table_;                      // untied resident table (page-aligned superset)
  const uint8_t* embd_data_ = nullptr;            // table start when rows are in RAM
  std::vector<int> streamed_;                     // streamed group ids in forward order
  std::vector<int> stream_index_;                 // [n_groups] index into streamed_, or -1
  std::vector<Slot> slots_;
  std::vector<std::vector<storage::ReadRequest>> requests_;  // per slot, reused
  uint64_t next_submit_ = 0;   // cycle position of the next read to submit (slot = pos % slots)
  uint64_t next_acquire_ = 0;  // cycle position of the next group the forward pass uses
  bool acquired_ = false;      // the slot at next_acquire_ is held by the forward pass
  AlignedBuffer row_scratch_;  // embedding row supersets, grown to the largest step
  // Expert cache.
  AlignedBuffer expert_arena_;                   // [expert_cache_slots × expert_slot_bytes]
  std::vector<ExpertSlot> expert_slots_;
  std::vector<int32_t> expert_slot_of_;          // [n_layer × n_expert] slot, or -1
  std::vector<int32_t> wave_;                    // slots pinned by the current wave
  uint64_t expert_clock_ = 0;
  std::vector<uint32_t> expert_uses_;            // [n_layer × n_expert] (kFrequency)
  std::vector<storage::ReadRequest> expert_reqs_;
  StreamStats stats_;
};

}  // namespace spool::runtime
