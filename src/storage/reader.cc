#include "storage/reader.h"

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "base/timer.h"
#include "storage/reader_backends.h"

namespace spool::storage {

struct Reader::Batch {
  uint64_t pending = 0;  // pieces not finished yet
  Status status;         // first failure
};

struct Reader::State {
  mutable std::mutex mu;
  std::condition_variable cv_work;  // pieces queued or stopping
  std::condition_variable cv_done;  // a batch finished / all drained
  std::deque<Piece> queue;
  std::unordered_map<Ticket, Batch> batches;
  Ticket next_ticket = 1;
  uint64_t outstanding = 0;  // pieces queued or in flight
  bool stop = false;
  ReaderStats stats;
  FaultInjector injector;
};

const char* IoBackendName(IoBackend b) {
  switch (b) {
    case IoBackend::kAuto: return "auto";
    case IoBackend::kIoUring: return "io_uring";
    case IoBackend::kPread: return "pread";
  }
  return "?";
}

Reader::Reader(std::vector<File> files, ReaderOptions options, IoBackend backend)
    : files_(std::move(files)), options_(options), backend_(backend), state_(std::make_unique<State>()) {}

Reader::~Reader() = default;

Result<std::unique_ptr<Reader>> Reader::Open(const std::vector<std::string>& paths, ReaderOptions options) {
  if (options.max_piece_bytes == 0 || options.max_piece_bytes % kDirectAlign != 0)
    return InvalidArgument("ReaderOptions.max_piece_bytes must be a positive multiple of 4096, got " +
                           std::to_string(options.max_piece_bytes));
  if (options.queue_depth < 16) options.queue_depth = 16;
  if (options.pread_threads < 1) options.pread_threads = 1;
  std::vector<File> files;
  files.reserve(paths.size());
  for (const auto& p : paths) {
    SPOOL_ASSIGN_OR_RETURN(File f, File::Open(p, OpenMode{options.direct}));
    files.push_back(std::move(f));
  }
  IoBackend want = options.backend;
  if (want == IoBackend::kAuto) {
    const char* env = std::getenv("SPOOL_IO");
    if (env && std::strcmp(env, "pread") == 0) want = IoBackend::kPread;
  }
  if (want != IoBackend::kPread) {
    std::string why;
    std::unique_ptr<Reader> r = detail::MakeUringReader(files, options, &why);
    if (r) return r;
    if (want == IoBackend::kIoUring) return Unsupported("io_uring is not available: " + why);
  }
  return detail::MakePreadReader(files, options);
}

Result<Ticket> Reader::Submit(std::span<const ReadRequest> batch) {
  for (size_t i = 0; i < batch.size(); ++i) {
    const ReadRequest& r = batch[i];
    if (r.file_index >= files_.size())
      return InvalidArgument("read request #" + std::to_string(i) + ": file index " + std::to_string(r.file_index) +
                             " but the reader has " + std::to_string(files_.size()) + " files");
    const File& f = files_[r.file_index];
    if (r.offset > f.size() || r.length > f.size() - r.offset)
      return InvalidArgument(f.path() + ": read request #" + std::to_string(i) + " [" + std::to_string(r.offset) +
                             ", +" + std::to_string(r.length) + ") lies past the end of the file (" +
                             std::to_string(f.size()) + " bytes)");
    if (r.length > 0 && r.dst == nullptr)
      return InvalidArgument("read request #" + std::to_string(i) + ": null destination");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  Ticket t = state_->next_ticket++;
  Batch& b = state_->batches[t];
  for (const ReadRequest& r : batch) {
    for (uint64_t done = 0; done < r.length; done += options_.max_piece_bytes) {
      uint64_t len = std::min(options_.max_piece_bytes, r.length - done);
      state_->queue.push_back(Piece{r.file_index, r.offset + done, len, static_cast<uint8_t*>(r.dst) + done, t});
      ++b.pending;
      ++state_->outstanding;
    }
  }
  if (b.pending > 0) state_->cv_work.notify_all();
  return t;
}

Status Reader::Wait(Ticket ticket) {
  Stopwatch sw;
  std::unique_lock<std::mutex> lock(state_->mu);
  auto it = state_->batches.find(ticket);
  if (it == state_->batches.end())
    return InvalidArgument("Reader::Wait: unknown ticket " + std::to_string(ticket) + " (already waited on?)");
  // A reference (not the iterator) survives rehashing by concurrent Submit calls.
  Batch& batch = it->second;
  state_->cv_done.wait(lock, [&] { return batch.pending == 0; });
  Status st = std::move(batch.status);
  state_->batches.erase(ticket);
  state_->stats.wait_seconds += sw.Seconds();
  return st;
}

Status Reader::ReadAll(std::span<const ReadRequest> batch) {
  SPOOL_ASSIGN_OR_RETURN(Ticket t, Submit(batch));
  return Wait(t);
}

ReaderStats Reader::stats() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->stats;
}

void Reader::SetFaultInjector(FaultInjector injector) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->injector = std::move(injector);
}

bool Reader::PopPiece(Piece* out, bool wait) {
  std::unique_lock<std::mutex> lock(state_->mu);
  if (wait) state_->cv_work.wait(lock, [&] { return state_->stop || !state_->queue.empty(); });
  if (state_->queue.empty()) return false;
  *out = state_->queue.front();
  state_->queue.pop_front();
  return true;
}

int Reader::InjectedError(const Piece& p) const {
  FaultInjector inj;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->injector) return 0;
    inj = state_->injector;
  }
  return inj(p.file_index, p.offset);
}

void Reader::FinishPiece(const Piece& p, const Status& status, const Counters& cost) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stats.device_bytes += cost.device_bytes;
  state_->stats.reads += cost.reads;
  state_->stats.bounced_bytes += cost.bounced_bytes;
  if (status.ok()) state_->stats.bytes_read += p.length;
  Batch& b = state_->batches[p.ticket];
  if (!status.ok() && b.status.ok()) b.status = status;
  --b.pending;
  --state_->outstanding;
  if (b.pending == 0 || state_->outstanding == 0) state_->cv_done.notify_all();
}

void Reader::Drain() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv_done.wait(lock, [&] { return state_->outstanding == 0; });
  state_->stop = true;
  state_->cv_work.notify_all();
}

bool Reader::stopping() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->stop;
}

}  // namespace spool::storage
