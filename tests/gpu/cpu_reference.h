// The CPU engine a GPU test compares against: stories260K or any model opened with the
// given context, KV dtype and page size, and its weights loaded resident (the provider the
// GPU decoder reads). Shared by the GPU decoder tests.
#pragma once

#include <memory>
#include <string>

#include "base/check.h"
#include "runtime/engine.h"
#include "runtime/resident_weights.h"

namespace spool::gpu {

struct Opened {
  std::unique_ptr<runtime::Engine> engine;
  std::unique_ptr<models::WeightProvider> provider;
};

inline Opened OpenCpu(const std::string& model, int64_t ctx, DType kv, int64_t page_tokens, int threads = 2) {
  runtime::EngineOptions o;
  o.threads = threads;
  o.ctx = ctx;
  o.kv_dtype = kv;
  o.kv_page_tokens = page_tokens;
  auto engine = runtime::Engine::Open(model, o);
  SPOOL_CHECK_MSG(engine.ok(), engine.status().message().c_str());
  auto provider = runtime::ResidentWeights::Load((*engine)->weights());
  SPOOL_CHECK(provider.ok());
  return {std::move(engine.value()), std::move(provider.value())};
}

}  // namespace spool::gpu
