// The forward pass's view of weight storage: it asks for a group's bytes right before
// using them and gives them back right after. Implementations (runtime/) keep groups
// resident or stream them from disk into a ring of buffers, prefetching ahead.
#pragma once

#include <cstdint>
#include <span>

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

  // Routed experts of MoE layer `layer` (ModelWeights::expert), used between
  // Acquire(layer) and Release(layer) in waves: PrepareExperts names the experts a
  // router picked (distinct, ascending, at most ExpertCapacity()) and starts the reads
  // of those not in RAM at once; Expert(layer, e) returns e's buffer (ExpertRef layout),
  // blocking until its own read is done, so the first experts' math overlaps the rest's
  // reads; ReleaseExperts(layer) ends the wave (buffers invalid after it). Errors: a
  // failed read, naming layer, expert, file and offset; call ReleaseExperts after one.
  virtual int64_t ExpertCapacity() const = 0;
  virtual Status PrepareExperts(int layer, std::span<const int32_t> ids) = 0;
  virtual Result<const uint8_t*> Expert(int layer, int32_t e) = 0;
  // Whether Expert(layer, e) of the current wave would return without waiting for a
  // read (e was cached when the wave was prepared, or its read is known done). Lets the
  // caller run ready experts while the others' reads are in flight.
  virtual bool ExpertReady(int layer, int32_t e) const = 0;
  virtual void ReleaseExperts(int layer) = 0;
  // Reads embedding rows: out [n, n_embd] f32 for token ids (already range-checked).
  virtual Status EmbeddingRows(const int32_t* ids, int64_t n, float* out) = 0;
};

}  // namespace spool::models
