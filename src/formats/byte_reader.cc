#include "formats/byte_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace spool::formats {

namespace {
constexpr uint64_t kChunk = 1 << 20;  // pread granularity for file sources
}  // namespace

Result<ByteReader> ByteReader::OpenFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + std::strerror(e));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return IoError(path + ": fstat failed: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a regular file (a model must be a file or a model folder)");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  ByteReader r;
  r.name_ = path;
  r.fd_ = fd;
  r.size_ = static_cast<uint64_t>(st.st_size);
  return r;
}

ByteReader ByteReader::FromMemory(const void* data, uint64_t size, std::string name) {
  ByteReader r;
  r.name_ = std::move(name);
  r.mem_ = static_cast<const uint8_t*>(data);
  r.size_ = size;
  return r;
}

ByteReader::ByteReader(ByteReader&& o) noexcept
    : name_(std::move(o.name_)),
      fd_(std::exchange(o.fd_, -1)),
      mem_(o.mem_),
      size_(o.size_),
      pos_(o.pos_),
      buf_(std::move(o.buf_)),
      buf_start_(o.buf_start_),
      buf_len_(o.buf_len_) {}

ByteReader::~ByteReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status ByteReader::Error(const std::string& what, const std::string& msg) const {
  return InvalidFile(name_ + ": " + what + " at byte offset " + std::to_string(pos_) + ": " + msg);
}

Status ByteReader::Fill(uint64_t offset, uint64_t n, uint8_t* dst) {
  if (mem_ != nullptr) {
    std::memcpy(dst, mem_ + offset, n);
    return Status::Ok();
  }
  uint64_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return IoError(name_ + ": read at offset " + std::to_string(offset + done) +
                     " failed: " + std::strerror(errno));
    }
    if (got == 0)
      return IoError(name_ + ": file truncated while reading (offset " +
                     std::to_string(offset + done) + ")");
    done += static_cast<uint64_t>(got);
  }
  return Status::Ok();
}

Status ByteReader::ReadAt(void* dst, uint64_t offset, uint64_t n, const char* what) {
  if (offset > size_ || n > size_ - offset)
    return InvalidFile(name_ + ": " + what + ": needs " + std::to_string(n) + " bytes at offset " +
                       std::to_string(offset) + " but the file has " + std::to_string(size_) +
                       " bytes");
  if (n == 0) return Status::Ok();
  uint8_t* out = static_cast<uint8_t*>(dst);
  if (mem_ != nullptr || n >= kChunk) return Fill(offset, n, out);
  // Small reads go through the cached window.
  if (offset < buf_start_ || offset + n > buf_start_ + buf_len_) {
    buf_.resize(kChunk);
    buf_start_ = offset;
    buf_len_ = std::min<uint64_t>(kChunk, size_ - offset);
    Status st = Fill(buf_start_, buf_len_, buf_.data());
    if (!st.ok()) {
      buf_len_ = 0;
      return st;
    }
  }
  std::memcpy(out, buf_.data() + (offset - buf_start_), n);
  return Status::Ok();
}

Status ByteReader::Read(void* dst, uint64_t n, const char* what) {
  if (n > remaining())
    return Error(what, "needs " + std::to_string(n) + " bytes but only " +
                           std::to_string(remaining()) + " remain (file truncated?)");
  SPOOL_TRY(ReadAt(dst, pos_, n, what));
  pos_ += n;
  return Status::Ok();
}

Status ByteReader::Skip(uint64_t n, const char* what) {
  if (n > remaining())
    return Error(what, "needs " + std::to_string(n) + " bytes but only " +
                           std::to_string(remaining()) + " remain (file truncated?)");
  pos_ += n;
  return Status::Ok();
}

}  // namespace spool::formats
