// Rank-based BPE (GPT-2 / Hugging Face BPE / GGUF "gpt2").
//
// A word starts as one symbol per character (unknown characters become byte
// tokens with byte_fallback, else unk). The adjacent pair with the lowest merge
// rank is merged, leftmost first, until no pair has a merge. Symbols form a
// doubly linked list and candidate pairs sit in a min-heap, so a word of n
// characters costs O(n log n). Stale heap entries are detected by comparing the
// ids stored in the entry with the current symbols: a symbol's id only ever
// changes by growing into a longer token, so an id never comes back.
#include <queue>
#include <unordered_map>

#include "tokenizer/model.h"
#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

struct MergeTarget {
  int32_t rank;
  int32_t merged_id;
};

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

class BpeModel : public Model {
 public:
  BpeModel(const VocabView& vocab, std::unordered_map<uint64_t, MergeTarget> merges)
      : vocab_(vocab), merges_(std::move(merges)) {}

  void Encode(std::string_view word, std::vector<int32_t>& out) const override {
    const TokenizerSpec& spec = *vocab_.spec;
    if (spec.ignore_merges) {
      const int32_t whole = vocab_.Find(word);
      if (whole >= 0) {
        out.push_back(whole);
        return;
      }
    }
    struct Symbol {
      int32_t id;
      int32_t prev, next;  // indices into symbols, -1 at the ends
      bool unknown;        // an unk placeholder (fused with a following one)
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    size_t pos = 0;
    std::vector<int32_t> bytes;
    auto push = [&](int32_t id, bool unknown) {
      const int32_t index = static_cast<int32_t>(symbols.size());
      symbols.push_back({id, index - 1, -1, unknown});
      if (index > 0) symbols[index - 1].next = index;
    };
    while (pos < word.size()) {
      size_t len = 1;
      ScanUtf8(word, pos, &len);
      const std::string_view ch = word.substr(pos, len);
      pos += len;
      const int32_t id = vocab_.Find(ch);
      if (id >= 0) {
        push(id, false);
        continue;
      }
      bytes.clear();
      if (spec.byte_fallback && vocab_.AppendBytes(ch, bytes)) {
        for (int32_t b : bytes) push(b, false);
        continue;
      }
      if (spec.unk_id >= 0) {
        if (spec.fuse_unk && !symbols.empty() && symbols.back().unknown) continue;
        push(spec.unk_id, true);
      }
    }
    if (symbols.empty()) return;

    struct Candidate {
      int32_t rank;
      int32_t left;  // index of the left symbol (text order)
      int32_t left_id, right_id, merged_id;
    };
    auto worse = [](const Candidate& a, const Candidate& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
    auto consider = [&](int32_t left) {
      if (left < 0) return;
      const int32_t right = symbols[left].next;
      if (right < 0) return;
      auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
      if (it == merges_.end()) return;
      heap.push({it->second.rank, left, symbols[left].id, symbols[right].id, it->second.merged_id});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& left = symbols[c.left];
      if (left.id != c.left_id || left.next < 0) continue;  // left symbol was merged away or grew
      Symbol& right = symbols[left.next];
      if (right.id != c.right_id) continue;
      left.id = c.merged_id;
      left.unknown = false;
      right.id = -1;  // removed
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = c.left;
      consider(left.prev);
      consider(c.left);
    }
    for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
  }

 private:
  VocabView vocab_;
  std::unordered_map<uint64_t, MergeTarget> merges_;
};

}  // namespace

Result<std::unique_ptr<Model>> CreateBpeModel(const VocabView& vocab) {
  const TokenizerSpec& spec = *vocab.spec;
  std::unordered_map<uint64_t, MergeTarget> merges;
  merges.reserve(spec.merges.size() * 2);
  std::string merged;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [a, b] = spec.merges[rank];
    const int32_t left = vocab.Find(a), right = vocab.Find(b);
    merged = a + b;
    const int32_t target = vocab.Find(merged);
    if (left < 0 || right < 0 || target < 0) {
      // HF rejects such a file; llama.cpp keeps going. A merge whose result is
      // not a token can never be emitted, so skipping it is safe for GGUF.
      if (spec.source.find(".gguf") != std::string::npos) continue;
      return InvalidFile(spec.source + ": merges[" + std::to_string(rank) + "] = '" + a + " " + b +
                         "' uses a token missing from the vocabulary ('" +
                         (left < 0 ? a : right < 0 ? b : merged) + "')");
    }
    // The first (lowest-rank) occurrence of a pair wins, as in HF and llama.cpp.
    merges.emplace(PairKey(left, right), MergeTarget{static_cast<int32_t>(rank), target});
  }
  return std::unique_ptr<Model>(new BpeModel(vocab, std::move(merges)));
}

}  // namespace spool::tokenizer
