#include "apps/run_session.h"

#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "kv/disk_kv.h"
#include "kv/session.h"

namespace spool::apps {

namespace {

// The "prefill_checkpoint" settings of a session (untrusted), checked against the
// session's n tokens.
struct Checkpoint {
  int64_t base_tokens = 0;
  std::vector<int32_t> base_pending;
  bool drop_bos = false;
};

Result<std::optional<Checkpoint>> ReadCheckpoint(const std::string& path, const nlohmann::ordered_json& settings,
                                                 int64_t n_tokens, int64_t n_vocab) {
  if (!settings.is_object()) return std::optional<Checkpoint>();
  auto it = settings.find("prefill_checkpoint");
  if (it == settings.end()) return std::optional<Checkpoint>();
  const auto& j = *it;
  auto bad = [&](const std::string& what) {
    return InvalidFile(path + ": settings.prefill_checkpoint: " + what);
  };
  if (!j.is_object()) return bad("expected an object");
  Checkpoint c;
  auto b = j.find("base_tokens");
  if (b == j.end() || !b->is_number_integer()) return bad("base_tokens: expected an integer");
  c.base_tokens = b->get<int64_t>();
  if (c.base_tokens < 0 || c.base_tokens > n_tokens)
    return bad("base_tokens " + std::to_string(c.base_tokens) + " outside [0, " + std::to_string(n_tokens) + "]");
  auto p = j.find("base_pending");
  if (p == j.end() || !p->is_array() || p->size() > 16) return bad("base_pending: expected an array of at most 16 ids");
  for (const auto& id : *p) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= n_vocab)
      return bad("base_pending: expected token ids in [0, " + std::to_string(n_vocab) + ")");
    c.base_pending.push_back(id.get<int32_t>());
  }
  auto d = j.find("drop_bos");
  if (d == j.end() || !d->is_boolean()) return bad("drop_bos: expected a boolean");
  c.drop_bos = d->get<bool>();
  return std::optional<Checkpoint>(std::move(c));
}

// Truncates seq to `keep` tokens; *feed holds the tokens to feed after them. A model
// whose recurrent state cannot be rewound to `keep` (linear-attention layers) goes back
// to the nearest kept checkpoint before it (Engine::RewindPoint: a turn end, a chunk
// boundary, or 0), and the sequence's tokens in between move to the front of *feed, so
// the same tokens are fed either way.
Status TruncateForFeed(runtime::Engine& engine, runtime::Sequence& seq, int64_t keep, std::vector<int32_t>* feed) {
  const int64_t at = engine.RewindPoint(seq, keep);
  feed->insert(feed->begin(), seq.tokens().begin() + at, seq.tokens().begin() + keep);
  return engine.Truncate(seq, at);
}

}  // namespace

Result<int64_t> ParseCheckpointEvery(const std::string& text) {
  if (text == "auto") return kCheckpointAuto;
  if (text == "off") return int64_t{0};
  char* end = nullptr;
  errno = 0;
  const long long v = text.empty() ? 0 : std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || errno != 0 || *end != '\0' || v <= 0)
    return InvalidArgument("--checkpoint-every must be auto, off or a positive number of prompt tokens, got '" + text +
                           "'");
  return static_cast<int64_t>(v);
}

Result<std::unique_ptr<runtime::Sequence>> PrepareRunSequence(runtime::Engine& engine, const RunSequenceOptions& o,
                                                              std::vector<int32_t>* prompt, RunSequenceState* state) {
  std::unique_ptr<runtime::Sequence> seq;
  const tokenizer::Tokenizer* tok = engine.tokenizer();
  auto is_bos = [&](int32_t id) { return o.prompt_from_text && tok && id == tok->bos_id(); };
  if (!o.session.empty()) {
    SPOOL_TRY(kv::ValidateSessionName(o.session).WithContext("--session"));
    const std::string dir = kv::DefaultSessionsDir();
    // Fail before any work when the session cannot be written (a long prefill would
    // otherwise be lost at its first checkpoint or at the end).
    if (Status st = kv::MakeDirs(dir); !st.ok())
      return IoError("--session " + o.session + ": cannot create the sessions folder: " + st.message());
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return IoError("--session " + o.session + ": cannot write to the sessions folder " + dir + ": " +
                     std::strerror(errno));
    state->session_path = kv::SessionPath(dir, o.session);
    state->checkpoint_every = o.checkpoint_every;
    struct stat st;
    if (::stat(state->session_path.c_str(), &st) == 0) {
      std::vector<int32_t> pending;
      nlohmann::ordered_json settings;
      SPOOL_ASSIGN_OR_RETURN(seq, engine.LoadSession(state->session_path, &pending, &settings));
      SPOOL_ASSIGN_OR_RETURN(auto cp, ReadCheckpoint(state->session_path, settings, seq->n_tokens(), engine.n_vocab()));
      state->restored = true;
      if (o.reuse_prefix) {
        const auto& have = seq->tokens();
        size_t common = 0;
        while (common < have.size() && common < prompt->size() && have[common] == (*prompt)[common]) ++common;
        if (common == prompt->size() && common > 0) --common;  // recompute the last token for its logits
        prompt->erase(prompt->begin(), prompt->begin() + static_cast<int64_t>(common));
        SPOOL_TRY(TruncateForFeed(engine, *seq, static_cast<int64_t>(common), prompt));
        state->base_tokens = seq->n_tokens();
      } else if (cp) {
        // An interrupted prefill: rebuild the prompt that run fed after its base state
        // and keep the checkpoint's tokens that match it, in whole chunks.
        if (cp->drop_bos && !prompt->empty() && is_bos(prompt->front())) prompt->erase(prompt->begin());
        prompt->insert(prompt->begin(), cp->base_pending.begin(), cp->base_pending.end());
        const auto& have = seq->tokens();
        const size_t base = static_cast<size_t>(cp->base_tokens);
        size_t common = 0;
        while (base + common < have.size() && common < prompt->size() && have[base + common] == (*prompt)[common])
          ++common;
        if (common == prompt->size() && common > 0) --common;  // recompute the last token for its logits
        const size_t chunk = static_cast<size_t>(std::max<int64_t>(engine.options().prefill_chunk, 1));
        common = common / chunk * chunk;
        if (prompt->empty()) {
          // The interrupted run fed nothing new: back to its base state.
          if (cp->base_tokens == 0) return InvalidArgument(state->session_path + ": the session is empty and so is the prompt");
          prompt->push_back(seq->tokens()[static_cast<size_t>(cp->base_tokens - 1)]);  // again, for its logits
          SPOOL_TRY(TruncateForFeed(engine, *seq, cp->base_tokens - 1, prompt));
        } else {
          prompt->erase(prompt->begin(), prompt->begin() + static_cast<int64_t>(common));
          SPOOL_TRY(TruncateForFeed(engine, *seq, cp->base_tokens + static_cast<int64_t>(common), prompt));
        }
        state->base_tokens = cp->base_tokens;
        state->base_pending = cp->base_pending;
        state->drop_bos = cp->drop_bos;
      } else {
        state->base_tokens = seq->n_tokens();
        state->base_pending = pending;
        state->drop_bos = true;
        if (!prompt->empty() && is_bos(prompt->front())) prompt->erase(prompt->begin());
        prompt->insert(prompt->begin(), pending.begin(), pending.end());
        if (prompt->empty()) {
          if (seq->n_tokens() == 0) return InvalidArgument(state->session_path + ": the session is empty and so is the prompt");
          // Nothing pending (the last run generated nothing): recompute the last token.
          prompt->push_back(seq->tokens().back());
          SPOOL_TRY(TruncateForFeed(engine, *seq, seq->n_tokens() - 1, prompt));
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
  state->last_checkpoint_tokens = seq->n_tokens();
  return seq;
}

Status MaybeCheckpointRunSession(runtime::Engine& engine, runtime::Sequence& seq, RunSequenceState* state,
                                 int64_t done, int64_t total, bool* saved) {
  *saved = false;
  // The prompt's end is a turn end: a model with linear-attention layers keeps a state
  // checkpoint there (saved with the session), so that a later --reuse-prefix run whose
  // prompt extends this one resumes from it instead of from 0.
  if (!state->session_path.empty() && done >= total) engine.KeepCheckpoint(seq);
  if (state->session_path.empty() || state->checkpoint_every == 0 || done >= total) return Status::Ok();
  const int64_t since = seq.n_tokens() - state->last_checkpoint_tokens;
  const int64_t every = state->checkpoint_every == kCheckpointAuto
                            ? std::max<int64_t>(kCheckpointAutoMinTokens, seq.n_tokens() / 4)
                            : state->checkpoint_every;
  if (since < every) return Status::Ok();
  nlohmann::ordered_json settings = {
      {"ctx", engine.ctx()},
      {"kv_type", engine.options().kv_dtype == DType::kF32 ? "f32" : "bf16"},
      {"kv_page_tokens", engine.options().kv_page_tokens},
      {"prefill_checkpoint",
       {{"base_tokens", state->base_tokens},
        {"base_pending", state->base_pending},
        {"drop_bos", state->drop_bos},
        {"prefill_chunk", engine.options().prefill_chunk},
        {"prompt_tokens_done", done},
        {"prompt_tokens_total", total}}},
  };
  SPOOL_TRY(engine.SaveSession(state->session_path, seq, {}, settings));
  state->last_checkpoint_tokens = seq.n_tokens();
  ++state->checkpoints;
  *saved = true;
  return Status::Ok();
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
