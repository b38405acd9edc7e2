// Text normalisation (NFC/NFKC via utf8proc, lowercase, prepend, replace, ...),
// applied to each plain-text segment before pre-tokenisation.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tokenizer/regex.h"
#include "tokenizer/spec.h"

namespace spool::tokenizer {

class Normalizer {
 public:
  // Compiles the regexes of kReplace steps. Errors name the step.
  static Result<std::unique_ptr<Normalizer>> Create(const std::vector<NormalizerStep>& steps);
  bool empty() const { return steps_.empty(); }
  // `text` must be valid UTF-8; the result is valid UTF-8.
  Result<std::string> Apply(std::string_view text) const;

 private:
  std::vector<NormalizerStep> steps_;
  std::vector<std::unique_ptr<Regex>> regexes_;  // parallel to steps_ (null if unused)
};

// Unicode normal forms through utf8proc. `text` must be valid UTF-8.
std::string NormalizeNfc(std::string_view text);
std::string NormalizeNfkc(std::string_view text);
std::string NormalizeNfd(std::string_view text);
std::string NormalizeNfkd(std::string_view text);

}  // namespace spool::tokenizer
