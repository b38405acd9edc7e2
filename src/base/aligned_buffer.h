// An owning, aligned, uninitialised byte buffer (for O_DIRECT reads and SIMD).
// Move-only; copying a buffer is always explicit (CopyFrom).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "base/check.h"

namespace spool {

class AlignedBuffer {
 public:
  static constexpr size_t kDefaultAlign = 4096;  // page: satisfies O_DIRECT and AVX-512

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes, size_t align = kDefaultAlign) { Reset(bytes, align); }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Reallocates to `bytes` (contents lost). Aborts on out-of-memory.
  void Reset(size_t bytes, size_t align = kDefaultAlign) {
    std::free(data_);
    data_ = nullptr;
    size_ = bytes;
    if (bytes == 0) return;
    size_t rounded = (bytes + align - 1) / align * align;
    data_ = static_cast<uint8_t*>(std::aligned_alloc(align, rounded));
    SPOOL_CHECK_MSG(data_ != nullptr, "out of memory");
  }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  template <typename T> T* as() { return reinterpret_cast<T*>(data_); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(data_); }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace spool
