// A WeightProvider that reads every weight group into RAM once, at open.
// (The streaming provider, runtime/streaming_weights.h, keeps only part of them.)
#pragma once

#include <memory>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/thread_pool.h"
#include "models/weight_provider.h"
#include "models/weights.h"

namespace spool::runtime {

class ResidentWeights final : public models::WeightProvider {
 public:
  // Reads all groups (and the embedding table when it is not the tied head).
  static Result<std::unique_ptr<ResidentWeights>> Load(const models::ModelWeights& weights);

  Result<const uint8_t*> Acquire(int g) override { return groups_[g].data(); }
  void Release(int) override {}
  int64_t ExpertCapacity() const override { return w_.config().moe.n_expert; }
  Status PrepareExperts(int, std::span<const int32_t>) override { return Status::Ok(); }
  Result<const uint8_t*> Expert(int layer, int32_t e) override { return experts_[layer][e].data(); }
  bool ExpertReady(int, int32_t) const override { return true; }
  void ReleaseExperts(int) override {}
  Status EmbeddingRows(const int32_t* ids, int64_t n, float* out) override;

  uint64_t bytes() const;

 private:
  explicit ResidentWeights(const models::ModelWeights& w) : w_(w) {}
  const models::ModelWeights& w_;
  std::vector<AlignedBuffer> groups_;
  std::vector<std::vector<AlignedBuffer>> experts_;  // [n_layer][n_expert] (empty for dense layers)
  AlignedBuffer embd_;           // token_embd when not tied (else read from the head group)
  const uint8_t* embd_data_ = nullptr;
};

// Reads one group's matrices from the model files into `dst` (group layout).
Status ReadGroup(const models::ModelWeights& w, int g, uint8_t* dst);
// Reads one routed expert's extents into `dst` (ExpertRef layout).
Status ReadExpert(const models::ModelWeights& w, int64_t layer, int64_t e, uint8_t* dst);

}  // namespace spool::runtime
