// Reader backend: io_uring. One ring thread keeps up to queue_depth pieces in
// flight: it fills free slots from the queue, submits, reaps completions, resubmits
// short reads, and copies bounced pieces out. Each slot owns a lazily allocated
// bounce buffer (max_piece + 2 pages), reused for every unaligned direct piece.
#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "base/aligned_buffer.h"
#include "storage/reader_backends.h"

namespace spool::storage::detail {

namespace {

bool IsAligned(uint64_t v) { return v % kDirectAlign == 0; }

class UringReader final : public Reader {
 public:
  UringReader(std::vector<File> files, const ReaderOptions& options, std::unique_ptr<io_uring> ring)
      : Reader(std::move(files), options, IoBackend::kIoUring), ring_owner_(std::move(ring)),
        ring_(*ring_owner_), slots_(options.queue_depth) {
    for (size_t i = 0; i < slots_.size(); ++i) free_slots_.push_back(i);
    thread_ = std::thread([this] { RingLoop(); });
  }
  ~UringReader() override {
    Drain();
    thread_.join();
    io_uring_queue_exit(&ring_);
  }

 private:
  struct Slot {
    Piece piece{};
    uint8_t* buf = nullptr;   // where the read lands: piece.dst or bounce
    uint64_t read_offset = 0; // file offset of buf[0]
    uint64_t read_len = 0;    // bytes asked of the file (aligned up in direct mode)
    uint64_t need = 0;        // bytes of buf that must arrive (up to the piece's end)
    uint64_t done = 0;
    Counters cost;
    AlignedBuffer bounce;
  };

  // Prepares slot i for piece p; false if an injected fault finished it already.
  bool Start(size_t i, const Piece& p) {
    Slot& s = slots_[i];
    s.piece = p;
    s.done = 0;
    s.cost = Counters{};
    const File& f = files_[p.file_index];
    if (int err = InjectedError(p); err != 0) {
      s.cost.reads = 1;
      FinishPiece(p, IoError(f.path() + ": read of " + std::to_string(p.length) + " bytes at offset " +
                             std::to_string(p.offset) + " failed: " + ErrnoText(err)),
                  s.cost);
      return false;
    }
    bool zero_copy = !f.is_direct() ||
                     (IsAligned(p.offset) && IsAligned(p.length) && IsAligned(reinterpret_cast<uintptr_t>(p.dst)));
    if (zero_copy) {
      s.buf = p.dst;
      s.read_offset = p.offset;
      s.read_len = p.length;
      s.need = p.length;
    } else {
      s.read_offset = p.offset / kDirectAlign * kDirectAlign;
      uint64_t end = (p.offset + p.length + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
      s.read_len = end - s.read_offset;
      s.need = p.offset + p.length - s.read_offset;
      if (s.bounce.size() < s.read_len) s.bounce.Reset(options_.max_piece_bytes + 2 * kDirectAlign);
      s.buf = s.bounce.data();
    }
    return true;
  }

  void Queue(size_t i) {
    Slot& s = slots_[i];
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    // The ring has queue_depth entries and at most queue_depth slots are in flight.
    SPOOL_CHECK(sqe != nullptr);
    io_uring_prep_read(sqe, files_[s.piece.file_index].fd(), s.buf + s.done,
                       static_cast<unsigned>(s.read_len - s.done), s.read_offset + s.done);
    io_uring_sqe_set_data64(sqe, i);
    ++s.cost.reads;
    ++in_flight_;
  }

  void Complete(size_t i, int res) {
    Slot& s = slots_[i];
    --in_flight_;
    const File& f = files_[s.piece.file_index];
    if (res == -EINTR || res == -EAGAIN) {
      Queue(i);
      return;
    }
    Status st;
    if (res < 0) {
      st = IoError(f.path() + ": read at offset " + std::to_string(s.read_offset + s.done) +
                   " failed: " + ErrnoText(-res));
    } else {
      s.done += static_cast<uint64_t>(res);
      s.cost.device_bytes += static_cast<uint64_t>(res);
      bool eof = res == 0 || (f.is_direct() && !IsAligned(s.done));
      if (s.done < s.read_len && !eof) {  // short read: ask for the rest
        Queue(i);
        return;
      }
      if (s.done < s.need) {
        st = IoError(f.path() + ": file truncated while reading (wanted bytes up to offset " +
                     std::to_string(s.piece.offset + s.piece.length) + ", the file ended at " +
                     std::to_string(s.read_offset + s.done) + ")");
      } else if (s.buf != s.piece.dst) {
        std::memcpy(s.piece.dst, s.buf + (s.piece.offset - s.read_offset), s.piece.length);
        s.cost.bounced_bytes = s.piece.length;
      }
      if (st.ok()) f.DropCache(s.piece.offset, s.piece.length);
    }
    FinishPiece(s.piece, st, s.cost);
    free_slots_.push_back(i);
  }

  void RingLoop() {
    for (;;) {
      // Fill free slots; block for work only when nothing is in flight.
      bool queued = false;
      while (!free_slots_.empty()) {
        Piece p;
        if (!PopPiece(&p, /*wait=*/in_flight_ == 0 && !queued)) break;
        size_t i = free_slots_.back();
        free_slots_.pop_back();
        if (Start(i, p)) {
          Queue(i);
          queued = true;
        } else {
          free_slots_.push_back(i);
        }
      }
      if (in_flight_ == 0) {
        if (stopping()) return;
        continue;
      }
      int ret = io_uring_submit_and_wait(&ring_, 1);
      if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN) {
        // The ring itself failed: fail everything in flight so no caller hangs.
        FailAllInFlight(ret);
        continue;
      }
      io_uring_cqe* cqe;
      unsigned head;
      unsigned n = 0;
      std::vector<std::pair<size_t, int>> done;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        done.emplace_back(static_cast<size_t>(io_uring_cqe_get_data64(cqe)), cqe->res);
        ++n;
      }
      io_uring_cq_advance(&ring_, n);
      for (auto [i, res] : done) Complete(i, res);
    }
  }

  void FailAllInFlight(int ret) {
    // Wait out what the kernel still owns, then report the error for each slot.
    while (in_flight_ > 0) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_, &cqe) != 0 || cqe == nullptr) break;
      size_t i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight_;
      FinishPiece(slots_[i].piece, IoError("io_uring_submit failed: " + ErrnoText(-ret)), slots_[i].cost);
      free_slots_.push_back(i);
    }
  }

  std::unique_ptr<io_uring> ring_owner_;  // initialised; never moved (the kernel maps it)
  io_uring& ring_;
  std::vector<Slot> slots_;
  std::vector<size_t> free_slots_;
  size_t in_flight_ = 0;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Reader> MakeUringReader(std::vector<File>& files, const ReaderOptions& options, std::string* why) {
  auto ring = std::make_unique<io_uring>();
  int ret = io_uring_queue_init(options.queue_depth, ring.get(), 0);
  if (ret < 0) {
    *why = "io_uring_queue_init failed: " + ErrnoText(-ret);
    return nullptr;
  }
  return std::make_unique<UringReader>(std::move(files), options, std::move(ring));
}

}  // namespace spool::storage::detail
