// Finds added tokens (special and user-defined) in raw text before the model
// runs. Matching is leftmost-longest, like Hugging Face's added vocabulary.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tokenizer/spec.h"

namespace spool::tokenizer {

// One piece of the input: either plain text (id == -1) or a matched token.
struct Fragment {
  int32_t id = -1;
  size_t begin = 0, end = 0;  // byte range in the input (text fragments)
};

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);
  // Splits `text` into fragments. Special tokens are matched only when
  // `parse_special`; user-defined tokens always. lstrip/rstrip tokens swallow
  // adjacent whitespace; single_word tokens need non-word neighbours.
  // `literal`: sorted, non-overlapping ranges where no special token may match
  // (text that must stay plain even with parse_special).
  std::vector<Fragment> Split(std::string_view text, bool parse_special, std::span<const ByteSpan> literal = {}) const;

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices, longest first
};

}  // namespace spool::tokenizer
