// The model step: one pre-token ("word") -> token ids. One implementation per
// ModelKind; all are immutable after construction and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "tokenizer/spec.h"

namespace spool::tokenizer {

// Hash that allows lookups by string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Shared read-only view of the vocabulary that every model uses.
struct VocabView {
  const TokenizerSpec* spec = nullptr;
  const TokenMap* token_to_id = nullptr;
  std::array<int32_t, 256> byte_ids{};  // "<0xAB>" token per byte, or -1

  int32_t Find(std::string_view text) const {
    auto it = token_to_id->find(text);
    return it == token_to_id->end() ? -1 : it->second;
  }
  // Appends the byte tokens of `bytes`; false (nothing appended) if any is missing.
  bool AppendBytes(std::string_view bytes, std::vector<int32_t>& out) const;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-token (valid UTF-8, non-empty) to `out`.
  virtual void Encode(std::string_view word, std::vector<int32_t>& out) const = 0;
};

// Builds the model named by spec.model; validates merges and scores.
Result<std::unique_ptr<Model>> CreateModel(const VocabView& vocab);

Result<std::unique_ptr<Model>> CreateBpeModel(const VocabView& vocab);
Result<std::unique_ptr<Model>> CreateSpmModel(const VocabView& vocab);
Result<std::unique_ptr<Model>> CreateUnigramModel(const VocabView& vocab);
Result<std::unique_ptr<Model>> CreateWordPieceModel(const VocabView& vocab);

}  // namespace spool::tokenizer
