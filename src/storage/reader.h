// Asynchronous batched reads of byte ranges from a fixed set of files.
//
//   auto reader = Reader::Open({"a.safetensors", "b.safetensors"}, {});
//   Ticket t = *reader->Submit({{0, off, len, dst}, {1, off2, len2, dst2}});
//   ... compute while the reads run ...
//   SPOOL_TRY(reader->Wait(t));   // all of t's bytes are in place, or a Status says why
//
// Backends (one interface): io_uring (liburing; queue depth >= 16) and a pool of
// threads doing pread. ReaderOptions::backend = kAuto picks io_uring and falls back
// to pread when io_uring_queue_init fails (old kernel, seccomp) or when the
// environment sets SPOOL_IO=pread. Requests are split into pieces of at most
// max_piece_bytes (1 MiB) so many are in flight at once.
//
// Zero-copy: in direct mode (O_DIRECT) a piece whose offset, length and dst are all
// 4096-aligned is read straight into dst. Otherwise the aligned superset is read into
// a reusable bounce buffer and copied (one memcpy). Callers that care (the weight
// streamer) should request aligned ranges into aligned buffers.
//
// Thread-safety: Submit/Wait/stats may be called from any thread. Ownership: `dst`
// memory must stay valid until Wait(ticket) returns. Wait returns only once every
// piece of the batch has finished (success or failure), so a failed batch never
// leaves the kernel writing into memory the caller has reused.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/file.h"

namespace spool::storage {

struct ReadRequest {
  uint32_t file_index = 0;  // index into the reader's files
  uint64_t offset = 0;      // byte offset in that file
  uint64_t length = 0;      // bytes; offset + length <= file size
  void* dst = nullptr;      // [length] bytes, valid until Wait() returns
};

enum class IoBackend { kAuto, kIoUring, kPread };
const char* IoBackendName(IoBackend b);

struct ReaderOptions {
  IoBackend backend = IoBackend::kAuto;
  bool direct = true;                   // open files with O_DIRECT (see storage/file.h fallback)
  uint32_t queue_depth = 32;            // io_uring entries in flight (clamped to >= 16)
  uint64_t max_piece_bytes = 1 << 20;   // requests are split into pieces of at most this (multiple of 4096)
  int pread_threads = 4;                // pread backend worker count
};

struct ReaderStats {
  uint64_t bytes_read = 0;      // bytes delivered to callers' buffers
  uint64_t device_bytes = 0;    // bytes read from the files (incl. alignment padding)
  uint64_t reads = 0;           // read operations issued (pieces, plus resubmits of short reads)
  uint64_t bounced_bytes = 0;   // bytes copied out of bounce buffers
  double wait_seconds = 0;      // time callers spent blocked in Wait()
};

using Ticket = uint64_t;

// Test hook: called once per piece before it is issued with (file_index, piece offset).
// A non-zero return is taken as that errno for the piece (e.g. EIO), as if the read failed.
using FaultInjector = std::function<int(uint32_t file_index, uint64_t offset)>;

class Reader {
 public:
  // Opens every path (File::Open with options.direct) and starts the backend.
  // Errors: the file errors of File::Open; Unsupported when backend == kIoUring is
  // forced and io_uring is unavailable; InvalidArgument for bad options.
  static Result<std::unique_ptr<Reader>> Open(const std::vector<std::string>& paths, ReaderOptions options = {});

  virtual ~Reader();  // waits for every piece in flight, then stops the backend
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Queues a batch. All requests are validated first (file index, range inside the
  // file, dst non-null): if any is bad, nothing is queued and InvalidArgument names it.
  Result<Ticket> Submit(std::span<const ReadRequest> batch);
  Result<Ticket> Submit(std::initializer_list<ReadRequest> batch) {
    return Submit(std::span<const ReadRequest>(batch.begin(), batch.size()));
  }
  // Blocks until every piece of `ticket` has finished. Returns the first failure (its
  // message names the file and offset) or Ok. Each ticket can be waited on once;
  // InvalidArgument for an unknown ticket.
  Status Wait(Ticket ticket);
  // Submit + Wait.
  Status ReadAll(std::span<const ReadRequest> batch);

  ReaderStats stats() const;
  IoBackend backend() const { return backend_; }
  size_t num_files() const { return files_.size(); }
  const File& file(size_t i) const { return files_[i]; }

  // Installs (or clears, with nullptr) the fault injector. Call while no batch is in flight.
  void SetFaultInjector(FaultInjector injector);

 protected:
  // One piece of a request: at most max_piece_bytes.
  struct Piece {
    uint32_t file_index;
    uint64_t offset;
    uint64_t length;
    uint8_t* dst;
    Ticket ticket;
  };
  struct Counters {
    uint64_t device_bytes = 0;
    uint64_t reads = 0;
    uint64_t bounced_bytes = 0;
  };

  Reader(std::vector<File> files, ReaderOptions options, IoBackend backend);

  // For backends. PopPiece blocks until a piece is queued (true) or the reader is
  // stopping with an empty queue (false); with wait == false it never blocks.
  bool PopPiece(Piece* out, bool wait);
  // Reports a finished piece (status Ok or the failure) and what it cost.
  void FinishPiece(const Piece& p, const Status& status, const Counters& cost);
  int InjectedError(const Piece& p) const;
  // Stops the backend threads; called from the subclass destructor after Drain().
  void Drain();
  bool stopping() const;

  std::vector<File> files_;
  ReaderOptions options_;

 private:
  struct Batch;
  struct State;
  IoBackend backend_;
  std::unique_ptr<State> state_;
};

}  // namespace spool::storage
