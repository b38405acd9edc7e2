// Sequential, bounds-checked reading of an untrusted byte source (a file read
// with pread in 1 MiB chunks, or a memory span for fuzzing). Private to formats.
//
// Every read checks against the source size first, so a truncated or lying file
// yields a Status (naming `name` and the byte offset) before any allocation is
// sized by untrusted data.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/status.h"

namespace spool::formats {

class ByteReader {
 public:
  // Reads from a file (opened here, closed in the destructor). Fails NotFound/Io naming path.
  static Result<ByteReader> OpenFile(const std::string& path);
  // Reads from memory that must outlive the reader.
  static ByteReader FromMemory(const void* data, uint64_t size, std::string name);

  ByteReader(ByteReader&& o) noexcept;
  ByteReader& operator=(ByteReader&&) = delete;
  ByteReader(const ByteReader&) = delete;
  ~ByteReader();

  const std::string& name() const { return name_; }
  uint64_t size() const { return size_; }
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  // Copies n bytes at the current position and advances. InvalidFile if fewer remain.
  Status Read(void* dst, uint64_t n, const char* what);
  Status Skip(uint64_t n, const char* what);

  template <typename T>
  Result<T> ReadPod(const char* what) {
    T v;
    SPOOL_TRY(Read(&v, sizeof v, what));
    return v;
  }

  // Reads `n` raw bytes at an absolute position without moving pos (e.g. a header).
  Status ReadAt(void* dst, uint64_t offset, uint64_t n, const char* what);

  // "<name>: <what> at byte offset <pos>: <msg>" as InvalidFile.
  Status Error(const std::string& what, const std::string& msg) const;

 private:
  ByteReader() = default;
  Status Fill(uint64_t offset, uint64_t n, uint8_t* dst);  // raw source read

  std::string name_;
  int fd_ = -1;
  const uint8_t* mem_ = nullptr;
  uint64_t size_ = 0;
  uint64_t pos_ = 0;
  // Window of the file cached in buf_: [buf_start_, buf_start_ + buf_len_).
  std::vector<uint8_t> buf_;
  uint64_t buf_start_ = 0;
  uint64_t buf_len_ = 0;
};

}  // namespace spool::formats
