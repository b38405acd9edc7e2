// Reader backend: a pool of threads, each doing blocking File::ReadAt per piece.
// Used where io_uring is unavailable or SPOOL_IO=pread. Unaligned direct reads
// allocate a bounce buffer per piece inside File::ReadAt (fallback path; io_uring
// reuses per-slot buffers).
#include <thread>

#include "storage/reader_backends.h"

namespace spool::storage::detail {

namespace {

class PreadReader final : public Reader {
 public:
  PreadReader(std::vector<File> files, const ReaderOptions& options)
      : Reader(std::move(files), options, IoBackend::kPread) {
    for (int i = 0; i < options.pread_threads; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  }
  ~PreadReader() override {
    Drain();
    for (auto& t : threads_) t.join();
  }

 private:
  void WorkerLoop() {
    Piece p;
    while (PopPiece(&p, /*wait=*/true)) {
      const File& f = files_[p.file_index];
      Counters cost;
      cost.reads = 1;
      Status st;
      if (int err = InjectedError(p); err != 0) {
        st = IoError(f.path() + ": read of " + std::to_string(p.length) + " bytes at offset " +
                     std::to_string(p.offset) + " failed: " + ErrnoText(err));
      } else {
        st = f.ReadAt(p.dst, p.offset, p.length);
        cost.device_bytes = p.length;
      }
      FinishPiece(p, st, cost);
    }
  }

  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<Reader> MakePreadReader(std::vector<File>& files, const ReaderOptions& options) {
  return std::make_unique<PreadReader>(std::move(files), options);
}

}  // namespace spool::storage::detail
