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
};

struct RunSequenceState {
  std::string session_path;     // "" = no session
  bool restored = false;
  int64_t prompt_tokens_reused = 0;  // tokens whose K/V came from the session file
  int64_t prompt_tokens_truncated = 0;
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

}  // namespace spool::apps
