#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

bool IsWordChar(uint32_t cp) { return cp == '_' || IsLetter(cp) || IsNumeric(cp); }

// Code point that ends just before `pos` (pos > 0, text valid UTF-8).
uint32_t CodepointBefore(std::string_view text, size_t pos) {
  size_t start = pos - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return NextCodepoint(text, start);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& t : tokens)
    if (!t.content.empty()) tokens_.push_back(t);
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

std::vector<Fragment> AddedTokenMatcher::Split(std::string_view text, bool parse_special,
                                               std::span<const ByteSpan> literal) const {
  std::vector<Fragment> out;
  size_t text_start = 0;  // start of the pending plain-text fragment
  size_t pos = 0;
  size_t next_literal = 0;  // first literal span that ends after pos
  while (pos < text.size()) {
    while (next_literal < literal.size() && literal[next_literal].end <= pos) ++next_literal;
    const auto& bucket = by_first_byte_[static_cast<uint8_t>(text[pos])];
    const AddedToken* hit = nullptr;
    for (uint32_t index : bucket) {
      const AddedToken& t = tokens_[index];
      if (t.special && !parse_special) continue;
      if (t.special && next_literal < literal.size() && literal[next_literal].begin < pos + t.content.size()) continue;
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        const size_t end = pos + t.content.size();
        if (pos > 0 && IsWordChar(CodepointBefore(text, pos))) continue;
        size_t after = end;
        if (end < text.size() && IsWordChar(NextCodepoint(text, after))) continue;
      }
      hit = &t;
      break;
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + hit->content.size();
    if (hit->lstrip)
      while (begin > text_start && (text[begin - 1] == ' ' || text[begin - 1] == '\t' || text[begin - 1] == '\n' ||
                                    text[begin - 1] == '\r'))
        --begin;
    if (hit->rstrip)
      while (end < text.size() && (text[end] == ' ' || text[end] == '\t' || text[end] == '\n' || text[end] == '\r'))
        ++end;
    if (begin > text_start) out.push_back({-1, text_start, begin});
    out.push_back({hit->id, begin, end});
    pos = end;
    text_start = end;
  }
  if (text_start < text.size()) out.push_back({-1, text_start, text.size()});
  return out;
}

}  // namespace spool::tokenizer
