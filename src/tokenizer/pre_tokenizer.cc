#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/utf8.h"

namespace spool::tokenizer {

const char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

// Ranges of single characters for which `pred` holds.
template <typename Pred>
Ranges CharRanges(std::string_view text, Pred pred) {
  Ranges out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const uint32_t cp = NextCodepoint(text, pos);
    if (pred(cp)) out.emplace_back(start, pos);
  }
  return out;
}

Ranges LiteralRanges(std::string_view text, const std::string& needle) {
  Ranges out;
  if (needle.empty()) return out;
  size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + needle.size());
    pos += needle.size();
  }
  return out;
}

}  // namespace

void SplitByRanges(std::string_view text, Ranges matches, SplitBehavior behavior, bool invert,
                   std::vector<std::string>& out) {
  // Tag every byte range as delimiter (true) or content (false), in order.
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) parts.push_back({{prev, b}, invert});
    parts.push_back({{b, e}, !invert});
    prev = e;
  }
  if (prev < text.size()) parts.push_back({{prev, text.size()}, invert});

  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.emplace_back(text.substr(b, e - b));
  };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (auto& [r, is_delim] : parts) emit(r.first, r.second);
      break;
    case SplitBehavior::kRemoved:
      for (auto& [r, is_delim] : parts)
        if (!is_delim) emit(r.first, r.second);
      break;
    case SplitBehavior::kContiguous: {
      size_t i = 0;
      while (i < parts.size()) {
        size_t j = i + 1;
        if (parts[i].second)
          while (j < parts.size() && parts[j].second && parts[j].first.first == parts[j - 1].first.second) ++j;
        emit(parts[i].first.first, parts[j - 1].first.second);
        i = j;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      std::vector<std::pair<size_t, size_t>> merged;
      bool previous_delim = false;
      for (auto& [r, is_delim] : parts) {
        if (is_delim && !previous_delim && !merged.empty()) {
          merged.back().second = r.second;
        } else {
          merged.push_back(r);
        }
        previous_delim = is_delim;
      }
      for (auto [b, e] : merged) emit(b, e);
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      std::vector<std::pair<size_t, size_t>> merged;  // built right to left
      bool previous_delim = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        auto& [r, is_delim] = *it;
        if (is_delim && !previous_delim && !merged.empty()) {
          merged.back().first = r.first;
        } else {
          merged.push_back(r);
        }
        previous_delim = is_delim;
      }
      for (auto it = merged.rbegin(); it != merged.rend(); ++it) emit(it->first, it->second);
      break;
    }
  }
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(const std::vector<PreTokenizerStep>& steps) {
  auto p = std::make_unique<PreTokenizer>();
  p->steps_ = steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const PreTokenizerStep& s = steps[i];
    std::string pattern;
    if (s.kind == PreTokenizerStep::Kind::kSplit && s.pattern_is_regex) pattern = s.pattern;
    if (s.kind == PreTokenizerStep::Kind::kByteLevel && s.use_regex) pattern = kGpt2Pattern;
    if (s.kind == PreTokenizerStep::Kind::kWhitespace) pattern = R"(\w+|[^\w\s]+)";
    std::unique_ptr<Regex> re;
    if (!pattern.empty()) {
      auto compiled = Regex::Compile(pattern);
      if (!compiled.ok()) return compiled.status().WithContext("pre_tokenizer step " + std::to_string(i));
      re = std::move(compiled).value();
    }
    p->regexes_.push_back(std::move(re));
  }
  return p;
}

Status PreTokenizer::Run(std::string_view text, bool at_start, std::vector<std::string>& pieces) const {
  pieces.clear();
  if (text.empty()) return Status::Ok();
  pieces.emplace_back(text);
  std::vector<std::string> next;
  Ranges ranges;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const PreTokenizerStep& step = steps_[i];
    next.clear();
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string& piece = pieces[k];
      ranges.clear();
      switch (step.kind) {
        case PreTokenizerStep::Kind::kSplit:
          if (regexes_[i]) {
            SPOOL_TRY(regexes_[i]->FindAll(piece, ranges));
          } else {
            ranges = LiteralRanges(piece, step.pattern);
          }
          SplitByRanges(piece, ranges, step.behavior, step.invert, next);
          break;
        case PreTokenizerStep::Kind::kByteLevel: {
          if (step.add_prefix_space && !piece.empty() && piece[0] != ' ') piece.insert(piece.begin(), ' ');
          const size_t first = next.size();
          if (regexes_[i]) {
            SPOOL_TRY(regexes_[i]->FindAll(piece, ranges));
            SplitByRanges(piece, ranges, SplitBehavior::kIsolated, false, next);
          } else {
            next.push_back(piece);
          }
          for (size_t j = first; j < next.size(); ++j) next[j] = ByteLevelEncode(next[j]);
          break;
        }
        case PreTokenizerStep::Kind::kDigits:
          ranges = CharRanges(piece, IsNumeric);
          SplitByRanges(piece, ranges,
                        step.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false, next);
          break;
        case PreTokenizerStep::Kind::kMetaspace: {
          std::string replaced;
          replaced.reserve(piece.size() + 3);
          for (char c : piece) {
            if (c == ' ') {
              replaced += step.replacement;
            } else {
              replaced += c;
            }
          }
          const bool starts = replaced.compare(0, step.replacement.size(), step.replacement) == 0;
          const bool prepend = step.prepend_scheme == PrependScheme::kAlways ||
                               (step.prepend_scheme == PrependScheme::kFirst && at_start && k == 0);
          if (prepend && !starts) replaced = step.replacement + replaced;
          if (step.split) {
            ranges = LiteralRanges(replaced, step.replacement);
            SplitByRanges(replaced, ranges, SplitBehavior::kMergedWithNext, false, next);
          } else {
            next.push_back(std::move(replaced));
          }
          break;
        }
        case PreTokenizerStep::Kind::kWhitespace:
          SPOOL_TRY(regexes_[i]->FindAll(piece, ranges));
          SplitByRanges(piece, ranges, SplitBehavior::kRemoved, true, next);
          break;
        case PreTokenizerStep::Kind::kWhitespaceSplit:
          ranges = CharRanges(piece, IsWhitespace);
          SplitByRanges(piece, ranges, SplitBehavior::kRemoved, false, next);
          break;
        case PreTokenizerStep::Kind::kPunctuation:
          ranges = CharRanges(piece, IsPunctuation);
          SplitByRanges(piece, ranges, step.behavior, false, next);
          break;
        case PreTokenizerStep::Kind::kBert: {
          std::vector<std::string> words;
          ranges = CharRanges(piece, IsWhitespace);
          SplitByRanges(piece, ranges, SplitBehavior::kRemoved, false, words);
          for (const std::string& w : words) {
            ranges = CharRanges(w, IsPunctuation);
            SplitByRanges(w, ranges, SplitBehavior::kIsolated, false, next);
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
  return Status::Ok();
}

}  // namespace spool::tokenizer
