// The three places a layer's weights can live under --device vulkan (issue 17 item 3),
// and the reads that fill them from the model's own files.
//
//   kVram  resident in device memory: read from the files once at open, uploaded.
//   kHost  resident in host memory the device copies from (a host-visible buffer:
//          pinned system memory on a discrete GPU), read from the files once at open
//          straight into it; copied into the VRAM ring on the transfer queue each pass.
//          Held once: the host's WeightProvider does not hold it too.
//   kDisk  read from the files each pass straight into one of two host-visible staging
//          buffers (O_DIRECT where the files and the memory allow it), then copied into
//          the VRAM ring while the previous layer computes.
//
// Layout: a layer's matrices are read as their page-aligned supersets into a buffer in
// models/weights.h's group layout (base + MatrixRef::group_offset holds the matrix; the
// supersets land page-aligned), and copied from there into the packed device layout
// (each matrix at an offset aligned for storage-buffer binding) by one multi-region copy.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/status.h"
#include "models/weights.h"
#include "storage/reader.h"

namespace spool::gpu {

enum class WeightTier : uint8_t { kVram, kHost, kDisk };
const char* WeightTierName(WeightTier t);  // "vram", "host", "disk"

// Bytes moved for the weight tiers (cumulative since the decoder opened).
struct WeightTierStats {
  // At open: the VRAM and host tiers (and the output head) read from the files.
  uint64_t load_bytes = 0;          // matrix bytes
  double load_seconds = 0;
  // Each pass: host tier → VRAM ring (matrix bytes copied).
  uint64_t host_copy_bytes = 0;
  // Each pass: disk tier, files → staging (matrix bytes; the page-aligned reads are
  // disk_device_bytes) → VRAM ring (disk_copy_bytes).
  uint64_t disk_read_bytes = 0;
  uint64_t disk_device_bytes = 0;
  double disk_read_seconds = 0;     // host wall time waiting for the disk-tier reads
  uint64_t disk_bounced_bytes = 0;  // of them, copied through the reader's bounce buffer
                                    // (the staging memory was not 4096-aligned)
  uint64_t disk_copy_bytes = 0;
  uint64_t passes = 0;              // forward passes (prefill chunks and decode steps)
  // How disk-tier reads reach the staging buffers, in words: "O_DIRECT straight into the
  // staging buffers", or the fallback and its reason.
  std::string read_path;
};

// Reads a group's matrices from the model files into a buffer in group layout.
// Not thread-safe.
class WeightFileReader {
 public:
  // Opens the model's files (ReaderOptions: O_DIRECT by default; the files fall back to
  // buffered reads + DONTNEED where the filesystem refuses it). Errors: the files'.
  static Result<std::unique_ptr<WeightFileReader>> Open(const models::ModelWeights& w,
                                                        const storage::ReaderOptions& options);

  // Reads each matrix of `mats` (all of one group) into base + its group_offset, as its
  // page-aligned superset (clamped to the file's end). base must hold `base_bytes`
  // (the group's bytes). Straight into base when the reads may go there; if a read
  // into base fails while the same read into host memory of our own succeeds (O_DIRECT
  // refused for that memory, e.g. a device mapping), this and every later read go
  // through a bounce buffer and read_path() says why. Errors: read errors naming the
  // file and offset (the reader's), with `what` as context.
  Status Read(std::span<const models::MatrixRef* const> mats, uint8_t* base, uint64_t base_bytes,
              const std::string& what);

  // Σ nbytes of mats, and the bytes their page-aligned supersets read.
  static uint64_t PayloadBytes(std::span<const models::MatrixRef* const> mats);
  uint64_t ReadBytes(std::span<const models::MatrixRef* const> mats) const;

  const std::string& read_path() const { return read_path_; }
  storage::Reader& reader() { return *reader_; }  // tests: fault injection, stats

 private:
  void Requests(std::span<const models::MatrixRef* const> mats, uint8_t* base,
                std::vector<storage::ReadRequest>* out) const;
  std::unique_ptr<storage::Reader> reader_;
  bool bounce_ = false;
  AlignedBuffer bounce_buf_;
  std::string read_path_;
  std::vector<storage::ReadRequest> reqs_;
};

}  // namespace spool::gpu
