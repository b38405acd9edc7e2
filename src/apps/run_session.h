// The sequence a `spool run` works on: a fresh one, or a saved session (--session NAME)
// continued or reused as a prefix, and saving it back afterwards.
//
// Continue (default): the session's tokens stay in the cache; the prompt fed is the
// session's pending token (the last generated one, never fed) followed by the new
// prompt's tokens without a leading BOS. An empty new prompt just continues
// generating, so `-n 8` twice gives exactly the ids of one `-n 16` (greedy).
// Reuse prefix (--reuse-prefix): the new prompt is the whole text again; the cache is
// truncated to the longest prefix it shares with the session and only the rest is
// computed (at least one token, for the logits).
//
// Checkpoints (docs/usage.md, --checkpoint-every): a long prefill saves the session
// every N prompt tokens (at chunk ends) with the settings key "prefill_checkpoint"
// {base_tokens, base_pending, drop_bos}: the state the session had before the
// interrupted run (its first base_tokens tokens + base_pending) and whether that run
// dropped the prompt's BOS. A later run with a checkpointed session rebuilds the
// prompt that run would have fed (base_pending + the prompt), keeps the checkpoint's
// tokens it shares, cut to a multiple of the prefill chunk from base_tokens (so the
// rest is fed in the uninterrupted run's chunks: same logits), and computes the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace spool::apps {

struct RunSequenceOptions {
  std::string session;       // "" = no session
  bool reuse_prefix = false;
  bool prompt_from_text = true;  // the prompt came from the tokenizer (may start with BOS)
  bool truncate = false;     // --truncate: keep the first token + the last ctx - n_predict - 1
  int64_t n_predict = 0;
  // Prompt tokens between checkpoints (kCheckpointAuto: every max(8192, a quarter of
  // the sequence) tokens, so that rewriting the whole session costs O(final size) in
  // all; 0: never). Only with a session.
  int64_t checkpoint_every = 0;
};
inline constexpr int64_t kCheckpointAuto = -1;
inline constexpr int64_t kCheckpointAutoMinTokens = 8192;
// "auto", "off" or a positive token count; InvalidArgument naming --checkpoint-every.
Result<int64_t> ParseCheckpointEvery(const std::string& text);

struct RunSequenceState {
  std::string session_path;     // "" = no session
  bool restored = false;
  int64_t prompt_tokens_reused = 0;  // tokens whose K/V came from the session file
  int64_t prompt_tokens_truncated = 0;
  // What a checkpoint records (see above).
  int64_t base_tokens = 0;
  std::vector<int32_t> base_pending;
  bool drop_bos = false;
  int64_t checkpoint_every = 0;      // resolved from RunSequenceOptions
  int64_t last_checkpoint_tokens = 0;  // sequence length at the last checkpoint (or start)
  int64_t checkpoints = 0;
};

// Returns the sequence to generate on and rewrites *prompt into the tokens to feed.
// Errors: bad session names, damaged or foreign sessions (kv/session.h), a prompt
// longer than the context without --truncate.
Result<std::unique_ptr<runtime::Sequence>> PrepareRunSequence(runtime::Engine& engine, const RunSequenceOptions& o,
                                                              std::vector<int32_t>* prompt, RunSequenceState* state);

// Saves the session (when there is one) after a successful generation: the cached
// tokens plus the last generated id as pending.
Status SaveRunSession(runtime::Engine& engine, runtime::Sequence& seq, const RunSequenceState& state,
                      const std::vector<int32_t>& generated);

// Called after each prefill chunk (done of total prompt tokens fed): saves a checkpoint
// when one is due (never after the last chunk: the final save follows generation).
// *saved tells whether it wrote one. Errors: those of Engine::SaveSession.
Status MaybeCheckpointRunSession(runtime::Engine& engine, runtime::Sequence& seq, RunSequenceState* state,
                                 int64_t done, int64_t total, bool* saved);

}  // namespace spool::apps
