// A read-only file as a byte range, read with pread (optionally O_DIRECT).
//
// Page-cache policy: with OpenMode::direct the kernel page cache is bypassed
// (O_DIRECT). Where the filesystem refuses O_DIRECT (EINVAL at open or at the first
// read, e.g. tmpfs), the file falls back to buffered reads followed by
// posix_fadvise(POSIX_FADV_DONTNEED) on the range just read, so streamed weights do
// not silently pile up in the page cache either way (DESIGN.md, memory budget).
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace spool::storage {

// Alignment O_DIRECT needs for file offset, length and memory address. 4096 covers
// every common logical block size (512 and 4096).
inline constexpr uint64_t kDirectAlign = 4096;

struct OpenMode {
  bool direct = false;  // request O_DIRECT (falls back as described above)
  // Tests only: behave as if the filesystem refused O_DIRECT (exercises the fallback
  // on machines where every filesystem accepts it).
  bool simulate_direct_refused = false;
};

class File {
 public:
  // Opens `path` read-only. Errors: NotFound, Io (naming the path and errno text),
  // InvalidArgument when it is not a regular file.
  static Result<File> Open(const std::string& path, OpenMode mode = {});

  File() = default;
  File(File&& o) noexcept;
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }  // at open time
  int fd() const { return fd_; }
  // True when reads really bypass the page cache (O_DIRECT accepted).
  bool is_direct() const { return direct_; }
  // True when O_DIRECT was asked for but refused, so reads drop pages after use.
  bool drops_cache() const { return drop_cache_; }

  // Reads exactly `len` bytes at `offset` into `dst` (any alignment). Thread-safe
  // (pread; no shared file position). Handles short reads and EINTR. In direct mode
  // unaligned requests go through a bounce buffer (an aligned superset is read and
  // the wanted bytes copied), aligned ones are read straight into `dst`.
  // Errors (each naming the path and offset): InvalidArgument if the range lies past
  // size(); Io "file truncated while reading" if the file shrank; Io with the errno
  // text otherwise.
  Status ReadAt(void* dst, uint64_t offset, uint64_t len) const;

  // One pread attempt-loop for [offset, offset+len) straight into dst, no bounce
  // buffer: used by the async reader. Returns bytes read (< len only at EOF) or -errno.
  int64_t PreadFull(void* dst, uint64_t offset, uint64_t len) const;

  // posix_fadvise(DONTNEED) on a range when drops_cache(); no-op otherwise.
  void DropCache(uint64_t offset, uint64_t len) const;

 private:
  Status ReadDirect(uint8_t* dst, uint64_t offset, uint64_t len) const;
  Status ReadBuffered(uint8_t* dst, uint64_t offset, uint64_t len) const;
  Status ErrnoError(const char* op, uint64_t offset, int err) const;

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool direct_ = false;
  bool drop_cache_ = false;
};

// Human-readable errno text, e.g. "EIO (Input/output error)".
std::string ErrnoText(int err);

}  // namespace spool::storage
