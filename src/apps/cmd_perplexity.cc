// spool perplexity MODEL --file F --ctx N: llama.cpp's perplexity method.
//
// The whole text is tokenized with BOS; it is cut into floor(n_tokens / N) windows of
// N tokens; in each window the first token is replaced by BOS (when the model adds
// one), the cache starts empty, and the logits at positions N/2 .. N-2 score the next
// token. PPL = exp(mean negative log-likelihood over all scored tokens).
#include <cmath>
#include <cstdio>
#include <vector>

#include "apps/command.h"
#include "apps/common_flags.h"
#include "base/progress.h"
#include "base/strings.h"
#include "runtime/perplexity.h"

namespace spool::apps {
namespace {

int RunPerplexity(int argc, char** argv) {
  ArgParser p("spool perplexity", "MODEL --file F");
  EngineFlags ef = AddEngineFlags(p);
  std::string& file = p.String("-f,--file", "", "text file to score");
  int64_t& max_chunks = p.Int("--chunks", 0, "score at most this many windows (0: all)");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1 || file.empty()) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  auto opts = ef.ToOptions(Workload{Workload::Kind::kPerplexity});
  if (!opts.ok()) return Fail(opts.status().message());
  const int64_t n_ctx = opts->ctx;
  auto text = ReadFileToString(file);
  if (!text.ok()) return Fail(text.status().message());
  auto engine_r = runtime::Engine::Open(p.positional()[0], *opts);
  if (!engine_r.ok()) return Fail(engine_r.status().message());
  runtime::Engine& engine = **engine_r;
  const tokenizer::Tokenizer* tok = engine.tokenizer();
  if (!tok) return Fail("the model has no tokenizer");
  auto ids = tok->Encode(*text, /*add_special=*/true, /*parse_special=*/false);
  if (!ids.ok()) return Fail(ids.status().message());
  const int64_t n_tokens = static_cast<int64_t>(ids->size());
  const bool add_bos = !ids->empty() && tok->bos_id() >= 0 && (*ids)[0] == tok->bos_id();
  const int64_t n_windows = max_chunks > 0 ? std::min(max_chunks, n_tokens / n_ctx) : n_tokens / n_ctx;
  std::printf("perplexity: %lld tokens, %lld windows of %lld, scoring %lld tokens each\n",
              static_cast<long long>(n_tokens), static_cast<long long>(n_windows), static_cast<long long>(n_ctx),
              static_cast<long long>(n_ctx - 1 - n_ctx / 2));
  ProgressLine progress("perplexity", "windows", n_windows);
  auto res = runtime::Perplexity(engine, *ids, n_ctx, add_bos ? tok->bos_id() : -1, max_chunks,
                                 [&](int64_t w, double running) {
                                   std::printf("[%lld]%.4f\n", static_cast<long long>(w + 1), running);
                                   std::fflush(stdout);
                                   progress.Update(w + 1);
                                   return true;
                                 });
  if (!res.ok()) return Fail(res.status().message());
  progress.Finish();
  std::printf("ppl %.4f\n", res->ppl);
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("perplexity", "score a text file (llama.cpp's perplexity method)", spool::apps::RunPerplexity);
