#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

std::string Utf8procMap(std::string_view text, int options) {
  if (text.empty()) return std::string();
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                                          static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
  if (n < 0 || out == nullptr) return std::string(text);  // input was validated; keep it as is
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

bool IsAscii(std::string_view text) {
  for (char c : text)
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  return true;
}

std::string ReplaceLiteral(std::string_view text, const std::string& from, const std::string& to) {
  if (from.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.data() + pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(text.data() + pos, text.size() - pos);
  return out;
}

std::string BertClean(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const uint32_t cp = NextCodepoint(text, pos);
    if (cp == 0 || cp == 0xFFFD) continue;
    if (cp != '\t' && cp != '\n' && cp != '\r' && IsOther(cp)) continue;
    if (IsWhitespace(cp)) {
      out += ' ';
    } else if (IsCjk(cp)) {
      out += ' ';
      AppendUtf8(out, cp);
      out += ' ';
    } else {
      AppendUtf8(out, cp);
    }
  }
  return out;
}

}  // namespace

std::string NormalizeNfc(std::string_view text) {
  return IsAscii(text) ? std::string(text) : Utf8procMap(text, UTF8PROC_COMPOSE);
}
std::string NormalizeNfkc(std::string_view text) {
  return IsAscii(text) ? std::string(text) : Utf8procMap(text, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}
std::string NormalizeNfd(std::string_view text) {
  return IsAscii(text) ? std::string(text) : Utf8procMap(text, UTF8PROC_DECOMPOSE);
}
std::string NormalizeNfkd(std::string_view text) {
  return IsAscii(text) ? std::string(text) : Utf8procMap(text, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
}

Result<std::unique_ptr<Normalizer>> Normalizer::Create(const std::vector<NormalizerStep>& steps) {
  auto n = std::make_unique<Normalizer>();
  n->steps_ = steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    std::unique_ptr<Regex> re;
    if (steps[i].kind == NormalizerStep::Kind::kReplace && steps[i].pattern_is_regex) {
      auto compiled = Regex::Compile(steps[i].pattern);
      if (!compiled.ok()) return compiled.status().WithContext("normalizer step " + std::to_string(i) + " (Replace)");
      re = std::move(compiled).value();
    }
    n->regexes_.push_back(std::move(re));
  }
  return n;
}

Result<std::string> Normalizer::Apply(std::string_view input) const {
  std::string text(input);
  for (size_t i = 0; i < steps_.size(); ++i) {
    const NormalizerStep& step = steps_[i];
    switch (step.kind) {
      case NormalizerStep::Kind::kNfc: text = NormalizeNfc(text); break;
      case NormalizerStep::Kind::kNfkc: text = NormalizeNfkc(text); break;
      case NormalizerStep::Kind::kNfd: text = NormalizeNfd(text); break;
      case NormalizerStep::Kind::kNfkd: text = NormalizeNfkd(text); break;
      case NormalizerStep::Kind::kLowercase: {
        std::string out;
        out.reserve(text.size());
        size_t pos = 0;
        while (pos < text.size()) AppendUtf8(out, ToLower(NextCodepoint(text, pos)));
        text = std::move(out);
        break;
      }
      case NormalizerStep::Kind::kStripAccents: {
        std::string out;
        out.reserve(text.size());
        size_t pos = 0;
        while (pos < text.size()) {
          const uint32_t cp = NextCodepoint(text, pos);
          if (!IsNonspacingMark(cp)) AppendUtf8(out, cp);
        }
        text = std::move(out);
        break;
      }
      case NormalizerStep::Kind::kPrepend:
        if (!text.empty()) text = step.content + text;
        break;
      case NormalizerStep::Kind::kReplace:
        if (regexes_[i]) {
          std::vector<std::pair<size_t, size_t>> matches;
          SPOOL_TRY(regexes_[i]->FindAll(text, matches));
          std::string out;
          size_t prev = 0;
          for (auto [b, e] : matches) {
            out.append(text, prev, b - prev);
            out += step.content;
            prev = e;
          }
          out.append(text, prev, std::string::npos);
          text = std::move(out);
        } else {
          text = ReplaceLiteral(text, step.pattern, step.content);
        }
        break;
      case NormalizerStep::Kind::kStrip: {
        // Strip White_Space code points from either end.
        auto cps = ToCodepoints(text);
        size_t b = 0, e = cps.size();
        if (step.left)
          while (b < e && IsWhitespace(cps[b])) ++b;
        if (step.right)
          while (e > b && IsWhitespace(cps[e - 1])) --e;
        text = FromCodepoints(std::vector<uint32_t>(cps.begin() + static_cast<long>(b), cps.begin() + static_cast<long>(e)));
        break;
      }
      case NormalizerStep::Kind::kBertClean: text = BertClean(text); break;
    }
  }
  return text;
}

}  // namespace spool::tokenizer
