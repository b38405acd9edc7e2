// Prompt → generated tokens for one sequence: prefill, then sample/decode until a
// stop condition. Streams text through a callback as valid UTF-8 chunks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/speculative.h"
#include "sampling/sampler.h"

namespace spool::runtime {

struct GenerateRequest {
  std::vector<int32_t> prompt;         // new tokens to append to the sequence (may be empty)
  sampling::SamplingParams sampling;
  int64_t max_tokens = 128;            // new tokens at most
  bool ignore_eos = false;
  std::vector<std::string> stop;       // stop strings (not included in the text)
  // The text keeps control tokens (e.g. gpt-oss harmony's <|channel|>, which
  // chat/reasoning.h parses); default: they are dropped. EOS tokens never appear.
  bool keep_special_tokens = false;
  // Testing only (`--debug-forced-output`): these ids are "sampled" in order instead
  // of the sampler's choice, then generation ends with "stop". Empty: sample.
  std::vector<int32_t> forced_output;
  // Speculative decoding (runtime/speculative.h); nullptr: plain decoding. The output is
  // the same token for token; only the number of passes over the weights changes.
  Drafter* drafter = nullptr;
};

struct GenerateResult {
  std::vector<int32_t> ids;            // generated ids (an EOS that ended generation is included)
  std::string text;                    // generated text (EOS and stop strings excluded)
  std::string finish_reason;           // "stop" (EOS or stop string), "length", "cancelled"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;          // time to the first generated token's logits
  double decode_seconds = 0;
  SpecStats spec;                      // passes over the weights while decoding, drafts
};

// Called with each new text chunk; return false to stop (finish_reason "cancelled").
using TextFn = std::function<bool(const std::string& chunk)>;

// Runs the request on `seq`: feeds req.prompt (at least one token), then samples.
// The last generated token is returned but not fed to the model (its K/V are not in
// the cache): a caller that continues the conversation later passes it as the first
// token of the next request's prompt. This keeps "two runs of n" identical to "one
// run of 2n".
Result<GenerateResult> Generate(Engine& engine, Sequence& seq, const GenerateRequest& req, const TextFn& on_text = nullptr,
                                const ProgressFn& progress = nullptr);

}  // namespace spool::runtime
