// Where one stored tensor lives: the common currency of every model format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/dtype.h"

namespace spool::formats {

// Shape convention: row-major, outermost dimension first (PyTorch order). A weight
// matrix used as y = W x is [n_out, n_in] with each row of n_in elements contiguous
// (for quantised types a row is a whole number of blocks). GGUF stores dimensions
// innermost first (ne[0]); the GGUF parser reverses them into this order.
struct TensorInfo {
  std::string name;             // as stored in the file ("blk.0.attn_q.weight", "model.layers.0...")
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;  // outermost first
  uint32_t file_index = 0;      // index into the owning container's file list
  uint64_t offset = 0;          // absolute byte offset in that file (already bounds-checked)
  uint64_t nbytes = 0;          // exact byte length (= DTypeBytes(dtype, n_elements()))

  uint64_t n_elements() const {
    uint64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  uint64_t rows() const { return shape.empty() ? 1 : n_elements() / shape.back(); }
  uint64_t cols() const { return shape.empty() ? 1 : shape.back(); }
};

}  // namespace spool::formats
