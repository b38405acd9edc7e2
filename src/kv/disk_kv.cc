#include "kv/disk_kv.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/strings.h"
#include "base/timer.h"
#include "storage/file.h"

namespace spool::kv {

namespace {
uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
std::atomic<uint64_t> g_file_counter{0};
}  // namespace

Status DiskQuota::Reserve(uint64_t bytes) {
  uint64_t cur = used_.load();
  do {
    if (limit_ != 0 && cur + bytes > limit_)
      return ResourceExhausted("the KV cache needs more than --kv-max-disk " + FormatBytes(limit_) + " on disk (" +
                               FormatBytes(cur) + " in use, " + FormatBytes(bytes) +
                               " more needed): raise --kv-max-disk, raise --kv-window, or lower --ctx");
  } while (!used_.compare_exchange_weak(cur, cur + bytes));
  return Status::Ok();
}

std::string SpoolHome() {
  const char* h = std::getenv("SPOOL_HOME");
  if (h && *h) return h;
  const char* home = std::getenv("HOME");
  if (home && *home) return std::string(home) + "/.spool";
  return "/tmp/spool-" + std::to_string(::getuid());
}

Status MakeDirs(const std::string& path) {
  if (path.empty()) return InvalidArgument("empty directory path");
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string part = path.substr(0, i);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return IoError(part + ": cannot create directory: " + storage::ErrnoText(errno));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return IoError(path + ": not a directory");
  return Status::Ok();
}

DiskKv::DiskKv(const KvLayout& layout, const DiskKvOptions& options)
    : layout_(layout),
      opt_(options),
      written_(layout.n_layer, 0),
      first_hot_(layout.n_layer, 0),
      released_(layout.n_layer, 0),
      on_disk_(layout.n_layer),
      ring_(layout.n_layer) {
  SPOOL_CHECK(layout.dtype == DType::kF32 || layout.dtype == DType::kBF16);
  SPOOL_CHECK(layout.page_tokens > 0 && layout.n_layer > 0);
  SPOOL_CHECK(options.max_tokens > 0);
  slot_ = RoundUp(layout.page_bytes(), storage::kDirectAlign);
  hot_pages_ = std::max<int64_t>(1, CeilDiv(std::max<int64_t>(options.window_tokens, 0), layout.page_tokens));
  max_pages_ = CeilDiv(options.max_tokens, layout.page_tokens);
  SPOOL_CHECK(layout.window.empty() || static_cast<int64_t>(layout.window.size()) == layout.n_layer);
  for (auto& r : ring_) r.resize(hot_pages_);
  for (auto& d : on_disk_) d.assign(max_pages_, 0);
}

DiskKv::~DiskKv() {
  (void)DrainInflight();
  reader_.reset();
  if (write_fd_ >= 0) ::close(write_fd_);
  if (opt_.quota && reserved_ > 0) opt_.quota->Release(reserved_);
}

uint64_t DiskKv::EstimateRamBytes(const KvLayout& layout, const DiskKvOptions& options) {
  // Same sizing as the constructor: slots rounded up to the O_DIRECT alignment, the hot
  // window rounded up to whole pages (>= 1), a read-ahead ring of >= 2 pages.
  const uint64_t slot = RoundUp(layout.page_bytes(), storage::kDirectAlign);
  const int64_t hot = std::max<int64_t>(1, CeilDiv(std::max<int64_t>(options.window_tokens, 0), layout.page_tokens));
  const uint64_t depth = std::max<uint64_t>(2, options.prefetch_bytes / (2 * slot));
  return (static_cast<uint64_t>(layout.n_layer * hot) + depth) * 2 * slot;
}

uint64_t DiskKv::Offset(int64_t layer, int64_t page) const {
  return (static_cast<uint64_t>(layer) * static_cast<uint64_t>(max_pages_) + static_cast<uint64_t>(page)) * 2 * slot_;
}

uint8_t* DiskKv::HotPage(int64_t layer, int64_t page) {
  SPOOL_CHECK(page >= first_hot_[layer] && page < first_hot_[layer] + hot_pages_);
  AlignedBuffer& b = ring_[layer][page % hot_pages_];
  if (b.size() == 0) b.Reset(2 * slot_);
  return b.data();
}

Status DiskKv::EnsureFile() {
  if (reader_) return Status::Ok();
  SPOOL_TRY(MakeDirs(opt_.dir));
  const std::string path = opt_.dir + "/seq-" + std::to_string(::getpid()) + "-" +
                           std::to_string(g_file_counter.fetch_add(1)) + ".kv";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);
  bool direct = fd >= 0;
  if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return IoError(path + ": cannot create the KV scratch file (--kv-dir): " + storage::ErrnoText(errno));
  auto fail = [&](Status st) {
    ::close(fd);
    ::unlink(path.c_str());
    return st;
  };
  // Sparse: blocks are allocated only for pages actually spilled.
  const uint64_t capacity = Offset(layout_.n_layer, 0);
  if (::ftruncate(fd, static_cast<off_t>(capacity)) != 0)
    return fail(IoError(path + ": cannot size the KV scratch file to " + FormatBytes(capacity) + ": " +
                        storage::ErrnoText(errno)));
  storage::ReaderOptions ro;
  ro.direct = true;
  ro.queue_depth = 32;
  auto reader = storage::Reader::Open({path}, ro);
  if (!reader.ok()) return fail(reader.status());
  ::unlink(path.c_str());  // the open descriptors keep it alive; nothing is left after a crash
  write_fd_ = fd;
  write_direct_ = direct;
  reader_ = std::move(*reader);
  const uint64_t depth = std::max<uint64_t>(2, opt_.prefetch_bytes / (2 * slot_));
  read_bufs_.resize(depth);
  for (uint64_t i = 0; i < depth; ++i) {
    read_bufs_[i].Reset(2 * slot_);
    free_bufs_.push_back(static_cast<int>(i));
  }
  return Status::Ok();
}

Status DiskKv::Spill(int64_t layer, int64_t page) {
  if (page < released_[layer]) {  // a sliding layer released it while it was hot
    stats_.pages_not_spilled += 1;
    return Status::Ok();
  }
  SPOOL_TRY(EnsureFile());
  if (!on_disk_[layer][page]) {
    if (opt_.quota) SPOOL_TRY(opt_.quota->Reserve(2 * slot_));
    reserved_ += 2 * slot_;
    on_disk_[layer][page] = 1;
  }
  Stopwatch sw;
  const uint8_t* src = HotPage(layer, page);
  const uint64_t off = Offset(layer, page), len = 2 * slot_;
  for (uint64_t done = 0; done < len;) {
    ssize_t w = ::pwrite(write_fd_, src + done, len - done, static_cast<off_t>(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : ENOSPC;
      std::string where = "writing KV page " + std::to_string(page) + " of layer " + std::to_string(layer) + " to " +
                          opt_.dir + ": " + storage::ErrnoText(e);
      if (e == ENOSPC || e == EDQUOT || e == EFBIG)
        return ResourceExhausted("the KV cache disk is full (" + where +
                                 "): free space there, choose another --kv-dir, raise --kv-window or lower --ctx");
      return IoError(where);
    }
    done += static_cast<uint64_t>(w);
  }
  if (!write_direct_) ::posix_fadvise(write_fd_, static_cast<off_t>(off), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
  stats_.pages_spilled += 1;
  stats_.bytes_written += len;
  stats_.seconds_write += sw.Seconds();
  return Status::Ok();
}

template <typename StoreFn>
Status DiskKv::WriteRows(int64_t layer, int64_t pos, int64_t n, StoreFn store) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer);
  SPOOL_TRY(CheckWritePos(layer, pos, n_tokens_, written_[layer]));
  if (pos != written_[layer]) SPOOL_TRY(Rewind(layer, pos));
  const int64_t pt = layout_.page_tokens;
  const uint64_t rb = layout_.row_bytes();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = pos + i, p = t / pt, r = t % pt;
    if (p >= max_pages_) return InternalError("KV write at position " + std::to_string(t) + " beyond the capacity of " +
                                              std::to_string(opt_.max_tokens) + " tokens");
    if (r == 0 && p - first_hot_[layer] == hot_pages_) {  // a new page and the window is full
      SPOOL_TRY(Spill(layer, first_hot_[layer]));
      first_hot_[layer] += 1;
    }
    uint8_t* page = HotPage(layer, p);
    store(i, page + r * rb, page + slot_ + r * rb);
    written_[layer] = t + 1;
  }
  return Status::Ok();
}

Status DiskKv::Write(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v) {
  const int64_t row = layout_.row_elems();
  return WriteRows(layer, pos, n, [&](int64_t i, uint8_t* kd, uint8_t* vd) {
    StoreRow(layout_.dtype, k + i * row, row, kd);
    StoreRow(layout_.dtype, v + i * row, row, vd);
  });
}

Status DiskKv::WriteRaw(int64_t layer, int64_t pos, int64_t n, const void* k, const void* v) {
  const uint64_t rb = layout_.row_bytes();
  return WriteRows(layer, pos, n, [&](int64_t i, uint8_t* kd, uint8_t* vd) {
    std::memcpy(kd, static_cast<const uint8_t*>(k) + i * rb, rb);
    std::memcpy(vd, static_cast<const uint8_t*>(v) + i * rb, rb);
  });
}

Status DiskKv::Commit(int64_t n) {
  for (int64_t l = 0; l < layout_.n_layer; ++l)
    if (written_[l] < n_tokens_ + n)
      return InternalError("KV commit of " + std::to_string(n) + " tokens but layer " + std::to_string(l) + " holds only " +
                           std::to_string(written_[l] - n_tokens_) + " new rows");
  n_tokens_ += n;
  // The next query is at position n_tokens_: a sliding layer needs keys from
  // n_tokens_ - window + 1 on.
  for (int64_t l = 0; l < layout_.n_layer; ++l)
    if (const int64_t w = layout_.layer_window(l); w > 0) Release(l, n_tokens_ - w + 1);
  return Status::Ok();
}

void DiskKv::Release(int64_t l, int64_t keep_from) {
  const int64_t first_kept = std::min<int64_t>(std::max<int64_t>(keep_from, 0) / layout_.page_tokens, max_pages_);
  for (int64_t p = released_[l]; p < first_kept; ++p) {
    stats_.pages_released += 1;
    if (p >= first_hot_[l]) {
      if (p < first_hot_[l] + hot_pages_) ring_[l][p % hot_pages_] = AlignedBuffer();
      continue;
    }
    // Reads of this page still in flight (a prefetch) land in their own buffers and are
    // discarded by ForEachPage, which no longer asks for the page.
    Punch(l, p);
  }
  released_[l] = std::max(released_[l], first_kept);
}

void DiskKv::Punch(int64_t l, int64_t p) {
  if (!on_disk_[l][p]) return;
  const uint64_t off = Offset(l, p), len = 2 * slot_;
  if (::fallocate(write_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                  static_cast<off_t>(len)) != 0) {
    stats_.punch_failures += 1;  // the bytes stay allocated and charged
    return;
  }
  on_disk_[l][p] = 0;
  if (opt_.quota) opt_.quota->Release(len);
  reserved_ -= len;
  stats_.pages_punched += 1;
}

Status DiskKv::WriteReleased(int64_t layer, int64_t pos, int64_t n) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer && n >= 0);
  SPOOL_TRY(CheckReleasable(layout_, layer));
  SPOOL_TRY(CheckWritePos(layer, pos, n_tokens_, written_[layer]));
  if (pos != written_[layer]) SPOOL_TRY(Rewind(layer, pos));
  const int64_t pt = layout_.page_tokens;
  int64_t done = 0;
  if (pos % pt == 0 && pos / pt == released_[layer] && first_hot_[layer] <= pos / pt) {
    // Whole pages continuing the released run: neither RAM nor disk. The layer's hot
    // window restarts after them.
    const int64_t whole = std::min(n / pt, max_pages_ - pos / pt);
    for (int64_t p = pos / pt; p < pos / pt + whole && p < first_hot_[layer] + hot_pages_; ++p)
      ring_[layer][p % hot_pages_] = AlignedBuffer();
    released_[layer] += whole;
    first_hot_[layer] = released_[layer];
    done = whole * pt;
    written_[layer] = pos + done;
  }
  if (done == n) return Status::Ok();
  const uint64_t rb = layout_.row_bytes();
  return WriteRows(layer, pos + done, n - done, [&](int64_t, uint8_t* kd, uint8_t* vd) {
    std::memset(kd, 0, rb);
    std::memset(vd, 0, rb);
  });
}

uint64_t DiskKv::disk_bytes() const { return reserved_; }

uint64_t DiskKv::file_allocated_bytes() const {
  struct stat st;
  if (write_fd_ < 0 || ::fstat(write_fd_, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Status DiskKv::Submit(int64_t layer, int64_t page) {
  SPOOL_CHECK(!free_bufs_.empty());
  const int b = free_bufs_.back();
  auto t = reader_->Submit({storage::ReadRequest{0, Offset(layer, page), 2 * slot_, read_bufs_[b].data()}});
  if (!t.ok()) return t.status();
  free_bufs_.pop_back();
  inflight_.push_back(Inflight{layer, page, b, *t});
  return Status::Ok();
}

Status DiskKv::DrainInflight() {
  Status first;
  while (!inflight_.empty()) {
    Inflight f = inflight_.front();
    inflight_.pop_front();
    Status st = reader_->Wait(f.ticket);
    if (first.ok() && !st.ok()) first = st;
    free_bufs_.push_back(f.buffer);
  }
  return first;
}

Status DiskKv::ForEachPage(int64_t layer, int64_t end, const std::function<void(const KvPageView&)>& fn) {
  SPOOL_CHECK(layer >= 0 && layer < layout_.n_layer);
  SPOOL_CHECK(end >= 0 && end <= written_[layer]);
  const int64_t pt = layout_.page_tokens;
  const int64_t n_pages = CeilDiv(end, pt);
  auto view = [&](const uint8_t* kv, int64_t p) {
    return KvPageView{layout_.dtype, kv, kv + slot_, std::min(pt, end - p * pt), p * pt};
  };
  // Released pages (sliding layers) read as zeros: no query attends to them.
  const int64_t first_live = std::min(released_[layer], n_pages);
  if (first_live > 0 && zeros_.size() == 0) {
    zeros_.Reset(2 * slot_);
    std::memset(zeros_.data(), 0, zeros_.size());
  }
  for (int64_t p = 0; p < first_live; ++p) {
    const int64_t rows = std::min(pt, end - p * pt);
    fn(KvPageView{layout_.dtype, zeros_.data(), zeros_.data(), rows, p * pt});
  }
  const int64_t cold_end = std::max(first_live, std::min(first_hot_[layer], n_pages));
  // Reads already in flight are used only if they are this layer's first live cold
  // pages in order.
  if (!inflight_.empty() && (inflight_.front().layer != layer || inflight_.front().page != first_live ||
                             inflight_.back().page >= cold_end))
    (void)DrainInflight();
  if (!inflight_.empty()) stats_.pages_prefetched_across_layers += inflight_.size();
  int64_t next = inflight_.empty() ? first_live : inflight_.back().page + 1;
  for (int64_t p = first_live; p < cold_end; ++p) {
    while (!free_bufs_.empty() && next < cold_end) {
      Status st = Submit(layer, next++);
      if (!st.ok()) {
        (void)DrainInflight();
        return st;
      }
    }
    Inflight f = inflight_.front();
    SPOOL_CHECK(f.layer == layer && f.page == p);
    inflight_.pop_front();
    Stopwatch sw;
    Status st = reader_->Wait(f.ticket);
    stats_.seconds_read_wait += sw.Seconds();
    free_bufs_.push_back(f.buffer);
    if (!st.ok()) {
      (void)DrainInflight();
      return st.WithContext("reading KV page " + std::to_string(p) + " of layer " + std::to_string(layer));
    }
    stats_.pages_read += 1;
    stats_.bytes_read += 2 * slot_;
    fn(view(read_bufs_[f.buffer].data(), p));
  }
  // Start the next layer's cold pages (the next step's layer 0 after the last layer):
  // they load while this layer's hot pages fold and the rest of the layer computes.
  if (reader_ && inflight_.empty()) {
    const int64_t nl = (layer + 1) % layout_.n_layer;
    for (int64_t p = released_[nl]; p < first_hot_[nl] && !free_bufs_.empty(); ++p) {
      Status st = Submit(nl, p);
      if (!st.ok()) {
        (void)DrainInflight();
        break;  // only a hint: the pages are read again when needed
      }
    }
  }
  for (int64_t p = std::max(cold_end, first_hot_[layer]); p < n_pages; ++p) fn(view(HotPage(layer, p), p));
  return Status::Ok();
}

Status DiskKv::Rewind(int64_t layer, int64_t n) {
  SPOOL_TRY(DrainInflight().WithContext("KV prefetch"));
  const int64_t np = CeilDiv(n, layout_.page_tokens);
  if (np <= first_hot_[layer]) {
    // The new last pages are on disk: bring the window back into RAM so they can grow.
    const int64_t new_first = std::max<int64_t>(0, np - hot_pages_);
    first_hot_[layer] = new_first;
    for (int64_t p = std::max(new_first, released_[layer]); p < np; ++p) {
      SPOOL_CHECK(reader_ != nullptr && on_disk_[layer][p]);
      SPOOL_TRY(reader_->ReadAll(std::vector<storage::ReadRequest>{{0, Offset(layer, p), 2 * slot_, HotPage(layer, p)}}));
    }
  }
  written_[layer] = n;
  return Status::Ok();
}

Status DiskKv::Truncate(int64_t n) {
  if (n < 0 || n > n_tokens_)
    return InvalidArgument("cannot truncate KV cache of " + std::to_string(n_tokens_) + " tokens to " + std::to_string(n));
  SPOOL_TRY(CheckTruncateKeepsWindow(*this, n));
  if (n == 0)
    for (auto& r : released_) r = 0;
  n_tokens_ = n;
  for (int64_t l = 0; l < layout_.n_layer; ++l) SPOOL_TRY(Rewind(l, n));
  // Pages wholly past the new end are never read again: give their disk space back.
  for (int64_t l = 0; l < layout_.n_layer; ++l)
    for (int64_t p = CeilDiv(n, layout_.page_tokens); p < max_pages_; ++p) Punch(l, p);
  return Status::Ok();
}

}  // namespace spool::kv
