// Test helpers: temp files filled with a position-dependent byte pattern.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace spool::storage::testing {

// Byte at file offset i: mixes all bits of i so misplaced ranges are caught.
inline uint8_t PatternByte(uint64_t i) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull;
  return static_cast<uint8_t>((x >> 29) ^ (x >> 47) ^ i);
}

class TempFile {
 public:
  // Creates a file of `size` pattern bytes under the build tree (a disk-backed
  // filesystem, so that O_DIRECT is exercised).
  explicit TempFile(uint64_t size) {
    std::string dir = std::filesystem::current_path().string();
    path_ = dir + "/storage-test-XXXXXX";
    int fd = ::mkstemp(path_.data());
    std::vector<uint8_t> buf(1 << 20);
    for (uint64_t done = 0; done < size;) {
      uint64_t n = std::min<uint64_t>(buf.size(), size - done);
      for (uint64_t k = 0; k < n; ++k) buf[k] = PatternByte(done + k);
      if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) break;
      done += n;
    }
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  void Truncate(uint64_t size) const { (void)::truncate(path_.c_str(), static_cast<off_t>(size)); }

 private:
  std::string path_;
};

// Index of the first byte of dst[0..len) that differs from the pattern at `offset`, or -1.
inline int64_t FirstMismatch(const uint8_t* dst, uint64_t offset, uint64_t len) {
  for (uint64_t k = 0; k < len; ++k)
    if (dst[k] != PatternByte(offset + k)) return static_cast<int64_t>(k);
  return -1;
}

}  // namespace spool::storage::testing
