// llama.cpp's perplexity method (llama-perplexity), as a library function.
//
// The token stream is cut into floor(n / n_ctx) windows of n_ctx tokens; in each the
// first token is replaced by `bos` (when bos >= 0), the cache starts empty, and the
// logits at positions n_ctx/2 .. n_ctx-2 score the next token.
// PPL = exp(mean negative log-likelihood over every scored token).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/engine.h"

namespace spool::runtime {

struct PerplexityResult {
  double ppl = 0;
  int64_t n_windows = 0;
  int64_t scored_tokens = 0;
  std::vector<double> running_ppl;  // after each window
};

// on_window(i, running_ppl) after each window; return false to stop early.
Result<PerplexityResult> Perplexity(Engine& engine, std::span<const int32_t> tokens, int64_t n_ctx, int32_t bos,
                                    int64_t max_windows = 0,
                                    const std::function<bool(int64_t, double)>& on_window = nullptr);

}  // namespace spool::runtime
