// SentencePiece-style BPE by piece score (GGUF tokenizer.ggml.model = "llama").
//
// The whole segment (spaces already escaped to "▁") starts as one symbol per
// character. Repeatedly, the adjacent pair whose concatenation is a vocabulary
// piece with the highest score is merged (leftmost on ties). Symbols left that
// are not pieces become byte tokens "<0xAB>" (or unk). Heap entries remember the
// byte length of the pair so that stale ones are skipped.
#include <queue>

#include "tokenizer/model.h"
#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

class SpmModel : public Model {
 public:
  explicit SpmModel(const VocabView& vocab) : vocab_(vocab) {}

  void Encode(std::string_view text, std::vector<int32_t>& out) const override {
    struct Symbol {
      uint32_t start, len;  // byte range in text; len == 0: merged away
      int32_t prev, next;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t len = 1;
      ScanUtf8(text, pos, &len);
      const int32_t index = static_cast<int32_t>(symbols.size());
      symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1, -1});
      if (index > 0) symbols[index - 1].next = index;
      pos += len;
    }
    if (symbols.empty()) return;

    struct Candidate {
      double score;
      int32_t left, right;
      uint32_t size;
    };
    auto worse = [](const Candidate& a, const Candidate& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
    const std::vector<double>& scores = vocab_.spec->scores;
    auto consider = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const uint32_t size = symbols[left].len + symbols[right].len;
      const int32_t id = vocab_.Find(text.substr(symbols[left].start, size));
      if (id < 0) return;
      heap.push({scores[static_cast<size_t>(id)], left, right, size});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) consider(i - 1, i);

    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& left = symbols[c.left];
      Symbol& right = symbols[c.right];
      if (left.len == 0 || right.len == 0 || left.len + right.len != c.size) continue;
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = c.left;
      consider(left.prev, c.left);
      consider(c.left, left.next);
    }
    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      const std::string_view piece = text.substr(symbols[i].start, symbols[i].len);
      const int32_t id = vocab_.Find(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : piece) {  // byte fallback, then the 1-byte piece, then unk
        int32_t b = vocab_.byte_ids[static_cast<uint8_t>(c)];
        if (b < 0) b = vocab_.Find(std::string_view(&c, 1));
        if (b < 0) b = vocab_.spec->unk_id;
        if (b >= 0) out.push_back(b);
      }
    }
  }

 private:
  VocabView vocab_;
};

}  // namespace

Result<std::unique_ptr<Model>> CreateSpmModel(const VocabView& vocab) {
  const TokenizerSpec& spec = *vocab.spec;
  if (spec.scores.size() != spec.tokens.size())
    return InvalidFile(spec.source + ": scores has " + std::to_string(spec.scores.size()) +
                       " entries, expected one per token (" + std::to_string(spec.tokens.size()) + ")");
  return std::unique_ptr<Model>(new SpmModel(vocab));
}

}  // namespace spool::tokenizer
