// Unigram language-model tokenisation (Hugging Face "Unigram"): Viterbi search
// for the segmentation with the highest total piece score. A character no piece
// covers is an unknown with score (min score - 10); consecutive unknowns are
// fused; unknown text becomes byte tokens when byte_fallback is set.
#include <algorithm>
#include <limits>

#include "tokenizer/model.h"
#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

constexpr double kUnkPenalty = 10.0;

class UnigramModel : public Model {
 public:
  UnigramModel(const VocabView& vocab, size_t max_piece_bytes, double unk_score)
      : vocab_(vocab), max_piece_bytes_(max_piece_bytes), unk_score_(unk_score) {}

  void Encode(std::string_view text, std::vector<int32_t>& out) const override {
    const TokenizerSpec& spec = *vocab_.spec;
    struct Node {
      double score = 0;
      int64_t start = -1;  // -1: unreachable
      int32_t id = -1;
    };
    std::vector<Node> best(text.size() + 1);
    best[0].start = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t char_len = 1;
      ScanUtf8(text, pos, &char_len);
      if (best[pos].start >= 0) {
        bool has_single = false;
        size_t len = char_len;
        const size_t max_len = std::min(max_piece_bytes_, text.size() - pos);
        while (len <= max_len) {
          const int32_t id = vocab_.Find(text.substr(pos, len));
          if (id >= 0) {
            const double candidate = best[pos].score + spec.scores[static_cast<size_t>(id)];
            Node& target = best[pos + len];
            if (target.start < 0 || candidate > target.score) target = {candidate, static_cast<int64_t>(pos), id};
            if (len == char_len) has_single = true;
          }
          if (pos + len >= text.size()) break;
          size_t next = 1;
          ScanUtf8(text, pos + len, &next);
          len += next;
        }
        if (!has_single) {
          const double candidate = best[pos].score + unk_score_;
          Node& target = best[pos + char_len];
          if (target.start < 0 || candidate > target.score)
            target = {candidate, static_cast<int64_t>(pos), spec.unk_id};
        }
      }
      pos += char_len;
    }
    // Backtrack into pieces; unknown runs are fused into one piece.
    std::vector<std::string_view> pieces;
    size_t end = text.size();
    size_t unk_end = 0;
    bool in_unk = false;
    while (end > 0) {
      const Node& node = best[end];
      const size_t start = static_cast<size_t>(node.start);
      const bool is_unk = spec.unk_id >= 0 && node.id == spec.unk_id && spec.fuse_unk;
      if (is_unk) {
        if (!in_unk) unk_end = end;
        in_unk = true;
      } else {
        if (in_unk) pieces.push_back(text.substr(end, unk_end - end));
        in_unk = false;
        pieces.push_back(text.substr(start, end - start));
      }
      end = start;
    }
    if (in_unk) pieces.push_back(text.substr(0, unk_end));
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
      const int32_t id = vocab_.Find(*it);
      if (id >= 0) {
        out.push_back(id);
      } else if (!(spec.byte_fallback && vocab_.AppendBytes(*it, out)) && spec.unk_id >= 0) {
        out.push_back(spec.unk_id);
      }
    }
  }

 private:
  VocabView vocab_;
  size_t max_piece_bytes_;
  double unk_score_;
};

}  // namespace

Result<std::unique_ptr<Model>> CreateUnigramModel(const VocabView& vocab) {
  const TokenizerSpec& spec = *vocab.spec;
  if (spec.scores.size() != spec.tokens.size())
    return InvalidFile(spec.source + ": Unigram scores has " + std::to_string(spec.scores.size()) +
                       " entries, expected one per token (" + std::to_string(spec.tokens.size()) + ")");
  if (spec.unk_id < 0 && !spec.byte_fallback)
    return InvalidFile(spec.source + ": Unigram model needs unk_id (or byte_fallback)");
  double min_score = std::numeric_limits<double>::infinity();
  size_t max_bytes = 1;
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    min_score = std::min(min_score, static_cast<double>(spec.scores[i]));
    max_bytes = std::max(max_bytes, spec.tokens[i].size());
  }
  return std::unique_ptr<Model>(new UnigramModel(vocab, max_bytes, min_score - kUnkPenalty));
}

}  // namespace spool::tokenizer
