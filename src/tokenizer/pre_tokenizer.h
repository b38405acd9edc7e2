// Pre-tokenisation: splits a normalised text segment into pieces ("words") that
// the model encodes independently. Steps run in order, each refining the pieces
// (Hugging Face semantics: Split/ByteLevel/Digits/Metaspace/Whitespace/...).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "tokenizer/regex.h"
#include "tokenizer/spec.h"

namespace spool::tokenizer {

// The GPT-2 split pattern used by ByteLevel(use_regex=true).
extern const char kGpt2Pattern[];

class PreTokenizer {
 public:
  // Compiles all regexes; errors name the step.
  static Result<std::unique_ptr<PreTokenizer>> Create(const std::vector<PreTokenizerStep>& steps);
  // Splits `text` (valid UTF-8). `at_start`: the segment begins at offset 0 of
  // the input (Metaspace prepend_scheme "first").
  Status Run(std::string_view text, bool at_start, std::vector<std::string>& pieces) const;

 private:
  std::vector<PreTokenizerStep> steps_;
  std::vector<std::unique_ptr<Regex>> regexes_;  // parallel to steps_
};

// Splits `text` at the delimiter ranges `matches` (sorted, disjoint) according
// to `behavior`; with `invert` the ranges are the kept content instead.
void SplitByRanges(std::string_view text, std::vector<std::pair<size_t, size_t>> matches, SplitBehavior behavior,
                   bool invert, std::vector<std::string>& out);

}  // namespace spool::tokenizer
