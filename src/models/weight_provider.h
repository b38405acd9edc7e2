// The forward pass's view of weight storage: it asks for a group's bytes right before
// using them and gives them back right after. Implementations (runtime/) keep groups
// resident or stream them from disk into a ring of buffers, prefetching ahead.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace spool::models {

class WeightProvider {
 public:
  virtual ~WeightProvider() = default;
  // Called once before a forward step uses groups in order 0..n_groups-1.
  virtual void BeginStep() {}
  // Returns the group's buffer laid out as WeightGroup describes (each MatrixRef at its
  // group_offset). Blocks until the bytes are available. Valid until Release(g).
  virtual Result<const uint8_t*> Acquire(int g) = 0;
  virtual void Release(int g) = 0;
  // Reads embedding rows: out [n, n_embd] f32 for token ids (already range-checked).
  virtual Status EmbeddingRows(const int32_t* ids, int64_t n, float* out) = 0;
};

}  // namespace spool::models
