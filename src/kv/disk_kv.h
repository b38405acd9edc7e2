// A disk-backed KV cache for long contexts: per layer, the most recent pages (the hot
// window) live in RAM and older pages are spilled to a per-sequence scratch file.
//
// Memory: (hot window pages + prefetch ring) × 2 × page slot bytes, independent of the
// context length. Disk: one file per sequence under `dir`, created on the first spill
// and unlinked right after it is opened (a crash leaves nothing behind); it is sparse,
// sized for `max_tokens`, laid out layer-major so one layer's pages are contiguous:
//
//   offset(layer, page) = (layer · max_pages + page) · 2 · slot     [K slot | V slot]
//   slot = page_bytes rounded up to 4096 (O_DIRECT alignment)
//
// I/O: spills are O_DIRECT pwrites (buffered + DONTNEED where the filesystem refuses
// O_DIRECT); cold pages are read through a storage::Reader (io_uring) into a ring of
// aligned buffers, several pages in flight ahead of the page being folded. When a
// layer's pages are done, the first cold pages of the next layer (wrapping to layer 0
// for the next step) are requested, so their reads overlap the rest of the layer's
// compute. Cold pages never change until Truncate, so such prefetches stay valid.
//
// Sliding-window layers (layout.window): at each Commit the pages wholly before the
// window of the next query (n_tokens - window + 1) are released: a hot one frees its
// buffer, a spilled one is punched out of the file (fallocate PUNCH_HOLE) and its bytes
// go back to the quota, and a page released before its turn to spill is never written.
// So a sliding layer's disk use stays at most its window plus one step's pages however
// long the context; released rows read as zeros and are never read from disk.
//
// Contracts are SequenceKv's (kv/kv_cache.h). Bit-identity: pages are stored and
// read back byte for byte, so attention sees exactly what InRamKv would give it.
// Thread-safety: none; one step at a time (the engine's rule).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "kv/kv_cache.h"
#include "storage/reader.h"

namespace spool::kv {

// Disk bytes all sequences of one engine may spill (--kv-max-disk). Thread-safe.
class DiskQuota {
 public:
  explicit DiskQuota(uint64_t limit_bytes) : limit_(limit_bytes) {}  // 0: unlimited
  // ResourceExhausted naming the limit when `bytes` more would exceed it.
  Status Reserve(uint64_t bytes);
  void Release(uint64_t bytes) { used_.fetch_sub(bytes); }
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

 private:
  uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

struct DiskKvOptions {
  int64_t window_tokens = 2048;   // hot window per layer, rounded up to whole pages (>= 1 page)
  int64_t max_tokens = 0;         // capacity (the context length); sizes the sparse file
  std::string dir;                // scratch directory (created if missing)
  std::shared_ptr<DiskQuota> quota;  // nullptr: unlimited
  uint64_t prefetch_bytes = 8ull << 20;  // read-ahead ring (at least 2 pages)
};

// Counters of one DiskKv, cumulative.
struct DiskKvStats {
  uint64_t pages_spilled = 0, bytes_written = 0;
  uint64_t pages_read = 0, bytes_read = 0;
  uint64_t pages_prefetched_across_layers = 0;  // next-layer prefetches that were used
  uint64_t pages_released = 0;      // sliding-window pages dropped (hot or on disk)
  uint64_t pages_punched = 0;       // pages on disk punched out of the file (released, or truncated away)
  uint64_t pages_not_spilled = 0;   // released while hot: never written
  uint64_t punch_failures = 0;      // filesystem without PUNCH_HOLE: bytes stay allocated
  double seconds_read_wait = 0;  // blocked waiting for cold pages
  double seconds_write = 0;      // inside spill pwrites
};

class DiskKv final : public SequenceKv {
 public:
  // No I/O happens here: the scratch file is created on the first spill (its errors
  // surface from Write).
  DiskKv(const KvLayout& layout, const DiskKvOptions& options);
  ~DiskKv() override;

  const KvLayout& layout() const override { return layout_; }
  int64_t n_tokens() const override { return n_tokens_; }
  Status Write(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v) override;
  Status WriteRaw(int64_t layer, int64_t pos, int64_t n, const void* k, const void* v) override;
  Status Commit(int64_t n) override;
  Status ForEachPage(int64_t layer, int64_t end, const std::function<void(const KvPageView&)>& fn) override;
  Status Truncate(int64_t n) override;
  int64_t live_from(int64_t layer) const override { return released_[layer] * layout_.page_tokens; }
  Status WriteReleased(int64_t layer, int64_t pos, int64_t n) override;

  // Bytes of pages on disk now (what the quota is charged), and what the filesystem has
  // allocated to the scratch file (st_blocks; 0 before the first spill).
  uint64_t disk_bytes() const;
  uint64_t file_allocated_bytes() const;
  int64_t hot_pages() const { return hot_pages_; }
  uint64_t slot_bytes() const { return slot_; }
  // Bytes of RAM the page buffers may reach (hot window + prefetch ring, all layers).
  uint64_t max_ram_bytes() const { return EstimateRamBytes(layout_, opt_); }
  // The same for a DiskKv not yet created (the residency planner budgets it).
  static uint64_t EstimateRamBytes(const KvLayout& layout, const DiskKvOptions& options);
  const DiskKvStats& stats() const { return stats_; }

 private:
  struct Inflight {
    int64_t layer, page;
    int buffer;
    storage::Ticket ticket;
  };
  template <typename StoreFn>
  Status WriteRows(int64_t layer, int64_t pos, int64_t n, StoreFn store);
  uint8_t* HotPage(int64_t layer, int64_t page);  // page must be hot
  Status EnsureFile();
  Status Spill(int64_t layer, int64_t page);
  Status Rewind(int64_t layer, int64_t n);  // layer holds exactly n rows afterwards, last pages hot
  uint64_t Offset(int64_t layer, int64_t page) const;
  Status Submit(int64_t layer, int64_t page);
  Status DrainInflight();  // waits for (and discards) every read in flight
  void Release(int64_t layer, int64_t keep_from);  // sliding layers: drop pages wholly before keep_from
  void Punch(int64_t layer, int64_t page);  // a page on disk no longer needed: hole + quota back

  KvLayout layout_;
  DiskKvOptions opt_;
  uint64_t slot_ = 0;        // bytes of one of K or V in the file and in RAM
  int64_t hot_pages_ = 1;
  int64_t max_pages_ = 0;
  int64_t n_tokens_ = 0;
  std::vector<int64_t> written_;    // [layer] rows written (committed or not)
  std::vector<int64_t> first_hot_;  // [layer] pages [first_hot, n_pages) are in RAM; older ones on disk
  std::vector<int64_t> released_;   // [layer] pages [0, released_) are released (sliding layers)
  std::vector<std::vector<uint8_t>> on_disk_;  // [layer][page] 1: written to the file, charged to the quota
  std::vector<std::vector<AlignedBuffer>> ring_;  // [layer][page % hot_pages]: K slot then V slot

  // Scratch file (lazily created).
  int write_fd_ = -1;
  bool write_direct_ = false;
  std::unique_ptr<storage::Reader> reader_;
  uint64_t reserved_ = 0;  // bytes reserved from the quota

  // Read-ahead ring.
  std::vector<AlignedBuffer> read_bufs_;
  std::vector<int> free_bufs_;
  std::deque<Inflight> inflight_;
  AlignedBuffer zeros_;  // one zero page: what released pages read as
  DiskKvStats stats_;
};

// Where spool keeps its files: $SPOOL_HOME, else $HOME/.spool.
std::string SpoolHome();
// mkdir -p; IoError naming the path on failure.
Status MakeDirs(const std::string& path);

}  // namespace spool::kv
