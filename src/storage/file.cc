#include "storage/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/aligned_buffer.h"

namespace spool::storage {

namespace {
constexpr uint64_t kBounceBytes = 4ull << 20;  // bounce buffer size for unaligned direct reads

bool Aligned(uint64_t v) { return v % kDirectAlign == 0; }
}  // namespace

std::string ErrnoText(int err) {
  const char* name = nullptr;
  switch (err) {
    case EIO: name = "EIO"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOENT: name = "ENOENT"; break;
    case EACCES: name = "EACCES"; break;
    case ENOMEM: name = "ENOMEM"; break;
    case EFAULT: name = "EFAULT"; break;
    case EBADF: name = "EBADF"; break;
    case EAGAIN: name = "EAGAIN"; break;
    default: break;
  }
  std::string text = std::strerror(err);
  return name ? std::string(name) + " (" + text + ")" : text + " (errno " + std::to_string(err) + ")";
}

Result<File> File::Open(const std::string& path, OpenMode mode) {
  File f;
  f.path_ = path;
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;  // a FIFO must not block open(); refused below
  if (mode.direct && mode.simulate_direct_refused) {
    f.drop_cache_ = true;
  } else if (mode.direct) {
    f.fd_ = ::open(path.c_str(), flags | O_DIRECT);
    if (f.fd_ >= 0) {
      f.direct_ = true;
    } else if (errno == EINVAL) {
      f.drop_cache_ = true;  // filesystem refuses O_DIRECT: buffered + DONTNEED
    } else if (errno != ENOENT) {
      return IoError(path + ": cannot open: " + ErrnoText(errno));
    }
  }
  if (f.fd_ < 0) f.fd_ = ::open(path.c_str(), flags);
  if (f.fd_ < 0) {
    int e = errno;
    if (e == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + ErrnoText(e));
  }
  struct stat st;
  if (::fstat(f.fd_, &st) != 0) return IoError(path + ": fstat failed: " + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + ": not a regular file");
  ::fcntl(f.fd_, F_SETFL, ::fcntl(f.fd_, F_GETFL) & ~O_NONBLOCK);
  f.size_ = static_cast<uint64_t>(st.st_size);
  if (f.direct_ && f.size_ > 0) {
    // Some filesystems accept O_DIRECT at open and refuse it at read time: probe once.
    AlignedBuffer probe(kDirectAlign);
    ssize_t got;
    do {
      got = ::pread(f.fd_, probe.data(), kDirectAlign, 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && errno == EINVAL) {
      ::close(f.fd_);
      f.fd_ = ::open(path.c_str(), flags);
      if (f.fd_ < 0) return IoError(path + ": cannot reopen without O_DIRECT: " + ErrnoText(errno));
      ::fcntl(f.fd_, F_SETFL, ::fcntl(f.fd_, F_GETFL) & ~O_NONBLOCK);
      f.direct_ = false;
      f.drop_cache_ = true;
    }
  }
  if (f.drop_cache_) ::posix_fadvise(f.fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  return f;
}

File::File(File&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      size_(o.size_),
      direct_(o.direct_),
      drop_cache_(o.drop_cache_) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    direct_ = o.direct_;
    drop_cache_ = o.drop_cache_;
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

Status File::ErrnoError(const char* op, uint64_t offset, int err) const {
  return IoError(path_ + ": " + op + " at offset " + std::to_string(offset) + " failed: " + ErrnoText(err));
}

int64_t File::PreadFull(void* dst, uint64_t offset, uint64_t len) const {
  uint8_t* out = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  while (done < len) {
    ssize_t got = ::pread(fd_, out + done, len - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (got == 0) break;  // EOF
    done += static_cast<uint64_t>(got);
    // In direct mode a short read that is not block aligned means EOF was reached.
    if (direct_ && done < len && !Aligned(done)) break;
  }
  return static_cast<int64_t>(done);
}

void File::DropCache(uint64_t offset, uint64_t len) const {
  if (drop_cache_) ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
}

Status File::ReadBuffered(uint8_t* dst, uint64_t offset, uint64_t len) const {
  int64_t got = PreadFull(dst, offset, len);
  if (got < 0) return ErrnoError("read", offset, static_cast<int>(-got));
  if (static_cast<uint64_t>(got) < len)
    return IoError(path_ + ": file truncated while reading (wanted " + std::to_string(len) + " bytes at offset " +
                   std::to_string(offset) + ", got " + std::to_string(got) + ")");
  DropCache(offset, len);
  return Status::Ok();
}

Status File::ReadDirect(uint8_t* dst, uint64_t offset, uint64_t len) const {
  if (Aligned(offset) && Aligned(len) && Aligned(reinterpret_cast<uintptr_t>(dst))) {
    int64_t got = PreadFull(dst, offset, len);
    if (got < 0) return ErrnoError("O_DIRECT read", offset, static_cast<int>(-got));
    if (static_cast<uint64_t>(got) < len)
      return IoError(path_ + ": file truncated while reading (wanted " + std::to_string(len) + " bytes at offset " +
                     std::to_string(offset) + ", got " + std::to_string(got) + ")");
    return Status::Ok();
  }
  // Unaligned: read the aligned superset piece by piece through a bounce buffer.
  const uint64_t end = offset + len;
  const uint64_t first = offset / kDirectAlign * kDirectAlign;
  const uint64_t last = (end + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  AlignedBuffer bounce(std::min(kBounceBytes, last - first));
  for (uint64_t pos = first; pos < end; pos += bounce.size()) {
    uint64_t want = std::min<uint64_t>(bounce.size(), last - pos);
    int64_t got = PreadFull(bounce.data(), pos, want);
    if (got < 0) return ErrnoError("O_DIRECT read", pos, static_cast<int>(-got));
    uint64_t copy_from = std::max(pos, offset);
    uint64_t copy_to = std::min(pos + want, end);
    if (pos + static_cast<uint64_t>(got) < copy_to)
      return IoError(path_ + ": file truncated while reading (wanted bytes up to offset " + std::to_string(end) +
                     ", the file ended at " + std::to_string(pos + static_cast<uint64_t>(got)) + ")");
    std::memcpy(dst + (copy_from - offset), bounce.data() + (copy_from - pos), copy_to - copy_from);
  }
  return Status::Ok();
}

Status File::ReadAt(void* dst, uint64_t offset, uint64_t len) const {
  if (offset > size_ || len > size_ - offset)
    return InvalidArgument(path_ + ": read of " + std::to_string(len) + " bytes at offset " + std::to_string(offset) +
                           " lies past the end of the file (" + std::to_string(size_) + " bytes)");
  if (len == 0) return Status::Ok();
  uint8_t* out = static_cast<uint8_t*>(dst);
  return direct_ ? ReadDirect(out, offset, len) : ReadBuffered(out, offset, len);
}

}  // namespace spool::storage
