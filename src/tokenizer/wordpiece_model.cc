// WordPiece (BERT): greedy longest-match-first. The word is `word_prefix` + word
// (GGUF BERT vocabularies mark word starts with "▁"); pieces after the first
// carry `continuing_subword_prefix` ("##" in Hugging Face files). If any
// position has no match, the whole word becomes unk.
#include <algorithm>

#include "tokenizer/model.h"
#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

class WordPieceModel : public Model {
 public:
  WordPieceModel(const VocabView& vocab, size_t max_piece_bytes) : vocab_(vocab), max_piece_bytes_(max_piece_bytes) {}

  void Encode(std::string_view word_in, std::vector<int32_t>& out) const override {
    const TokenizerSpec& spec = *vocab_.spec;
    size_t n_chars = 0;
    for (char c : word_in) n_chars += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    if (n_chars > static_cast<size_t>(spec.max_input_chars_per_word)) {
      if (spec.unk_id >= 0) out.push_back(spec.unk_id);
      return;
    }
    const std::string word = spec.word_prefix + std::string(word_in);
    const size_t first_out = out.size();
    std::string candidate;
    size_t start = 0;
    while (start < word.size()) {
      size_t end = std::min(word.size(), start + max_piece_bytes_);
      // Move `end` back onto a character boundary.
      while (end > start && end < word.size() && (static_cast<uint8_t>(word[end]) & 0xC0) == 0x80) --end;
      int32_t found = -1;
      while (end > start) {
        candidate.assign(start > 0 ? spec.continuing_subword_prefix : std::string());
        candidate.append(word, start, end - start);
        found = vocab_.Find(candidate);
        if (found >= 0) break;
        --end;
        while (end > start && (static_cast<uint8_t>(word[end]) & 0xC0) == 0x80) --end;
      }
      if (found < 0) {
        out.resize(first_out);
        if (spec.unk_id >= 0) out.push_back(spec.unk_id);
        return;
      }
      out.push_back(found);
      start = end;
    }
  }

 private:
  VocabView vocab_;
  size_t max_piece_bytes_;
};

}  // namespace

Result<std::unique_ptr<Model>> CreateWordPieceModel(const VocabView& vocab) {
  size_t max_bytes = 1;
  for (const auto& t : vocab.spec->tokens) max_bytes = std::max(max_bytes, t.size());
  return std::unique_ptr<Model>(new WordPieceModel(vocab, max_bytes));
}

}  // namespace spool::tokenizer
