// PCRE2 regular expressions for pre-tokenisers and normalisers (UTF + Unicode
// properties, JIT-compiled when available). Patterns come from untrusted files,
// so compile errors are Status values and matching never aborts.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace spool::tokenizer {

class Regex {
 public:
  // Compiles `pattern` with PCRE2_UTF | PCRE2_UCP. Errors name the offset.
  static Result<std::unique_ptr<Regex>> Compile(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping, non-empty
  // matches in `text` (valid UTF-8) to `out`, left to right. Thread-safe.
  Status FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace spool::tokenizer
