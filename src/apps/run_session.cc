#include "apps/run_session.h"

#include <sys/stat.h>

#include <algorithm>

#include "kv/session.h"

namespace spool::apps {

Result<std::unique_ptr<runtime::Sequence>> PrepareRunSequence(runtime::Engine& engine, const RunSequenceOptions& o,
                                                              std::vector<int32_t>* prompt, RunSequenceState* state) {
  std::unique_ptr<runtime::Sequence> seq;
  if (!o.session.empty()) {
    SPOOL_TRY(kv::ValidateSessionName(o.session).WithContext("--session"));
    state->session_path = kv::SessionPath(kv::DefaultSessionsDir(), o.session);
    struct stat st;
    if (::stat(state->session_path.c_str(), &st) == 0) {
      std::vector<int32_t> pending;
      SPOOL_ASSIGN_OR_RETURN(seq, engine.LoadSession(state->session_path, &pending));
      state->restored = true;
      if (o.reuse_prefix) {
        const auto& have = seq->tokens();
        size_t common = 0;
        while (common < have.size() && common < prompt->size() && have[common] == (*prompt)[common]) ++common;
        if (common == prompt->size() && common > 0) --common;  // recompute the last token for its logits
        SPOOL_TRY(engine.Truncate(*seq, static_cast<int64_t>(common)));
        prompt->erase(prompt->begin(), prompt->begin() + static_cast<int64_t>(common));
      } else {
        const tokenizer::Tokenizer* tok = engine.tokenizer();
        if (o.prompt_from_text && tok && !prompt->empty() && prompt->front() == tok->bos_id()) prompt->erase(prompt->begin());
        prompt->insert(prompt->begin(), pending.begin(), pending.end());
        if (prompt->empty()) {
          if (seq->n_tokens() == 0) return InvalidArgument(state->session_path + ": the session is empty and so is the prompt");
          // Nothing pending (the last run generated nothing): recompute the last token.
          const int32_t last = seq->tokens().back();
          SPOOL_TRY(engine.Truncate(*seq, seq->n_tokens() - 1));
          prompt->push_back(last);
        }
      }
      state->prompt_tokens_reused = seq->n_tokens();
    }
  }
  if (!seq) seq = engine.NewSequence();
  const int64_t ctx = engine.ctx();
  const int64_t need = seq->n_tokens() + static_cast<int64_t>(prompt->size());
  if (need > ctx) {
    if (!o.truncate || seq->n_tokens() > 0)
      return ResourceExhausted("the prompt needs " + std::to_string(need) + " tokens but the context holds " +
                               std::to_string(ctx) + ": raise --ctx (this model allows up to " +
                               std::to_string(engine.config().n_ctx_train) + ")" +
                               (seq->n_tokens() > 0 ? "" : " or pass --truncate to keep only the prompt's end"));
    const int64_t keep = ctx - std::max<int64_t>(o.n_predict, 0);
    if (keep < 2) return InvalidArgument("--truncate: --ctx " + std::to_string(ctx) + " leaves no room for the prompt after -n " +
                                         std::to_string(o.n_predict) + " tokens");
    // Keep the first token (BOS for most models) and the last keep - 1.
    state->prompt_tokens_truncated = static_cast<int64_t>(prompt->size()) - keep;
    prompt->erase(prompt->begin() + 1, prompt->end() - (keep - 1));
  }
  return seq;
}

Status SaveRunSession(runtime::Engine& engine, runtime::Sequence& seq, const RunSequenceState& state,
                      const std::vector<int32_t>& generated) {
  if (state.session_path.empty()) return Status::Ok();
  std::vector<int32_t> pending;
  if (!generated.empty()) pending.push_back(generated.back());  // not fed (runtime/generate.h)
  nlohmann::ordered_json settings = {
      {"ctx", engine.ctx()},
      {"kv_type", engine.options().kv_dtype == DType::kF32 ? "f32" : "bf16"},
      {"kv_page_tokens", engine.options().kv_page_tokens},
  };
  return engine.SaveSession(state.session_path, seq, pending, settings);
}

}  // namespace spool::apps
