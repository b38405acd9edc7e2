#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

namespace spool::runtime {

Result<PerplexityResult> Perplexity(Engine& engine, std::span<const int32_t> tokens, int64_t n_ctx, int32_t bos,
                                    int64_t max_windows, const std::function<bool(int64_t, double)>& on_window) {
  if (n_ctx < 8) return InvalidArgument("perplexity window must be at least 8 tokens");
  if (n_ctx > engine.ctx()) return InvalidArgument("perplexity window exceeds the engine's context");
  const int64_t n = static_cast<int64_t>(tokens.size());
  int64_t n_windows = n / n_ctx;
  if (max_windows > 0) n_windows = std::min(n_windows, max_windows);
  if (n_windows == 0)
    return InvalidArgument("the text has " + std::to_string(n) + " tokens, fewer than one window of " + std::to_string(n_ctx));
  const int64_t V = engine.n_vocab();
  const int64_t first = n_ctx / 2;
  std::vector<float> logits(static_cast<size_t>(n_ctx) * V);
  PerplexityResult res;
  double nll = 0;
  for (int64_t w = 0; w < n_windows; ++w) {
    std::vector<int32_t> window(tokens.begin() + w * n_ctx, tokens.begin() + (w + 1) * n_ctx);
    if (bos >= 0) window[0] = bos;
    auto seq = engine.NewSequence();
    SPOOL_TRY(engine.Prefill(*seq, window, logits.data(), /*all_logits=*/true));
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + j * V;
      const float mx = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      const int32_t target = tokens[w * n_ctx + j + 1];
      nll += -(static_cast<double>(row[target]) - mx - std::log(sum));
      ++res.scored_tokens;
    }
    res.running_ppl.push_back(std::exp(nll / static_cast<double>(res.scored_tokens)));
    res.n_windows = w + 1;
    if (on_window && !on_window(w, res.running_ppl.back())) break;
  }
  res.ppl = res.running_ppl.back();
  return res;
}

}  // namespace spool::runtime
