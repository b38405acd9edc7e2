#include "chat/chat_prompt.h"

#include <algorithm>
#include <array>
#include <cstdio>

namespace spool::chat {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint32_t kPuaFirst = 0xE000, kPuaLast = 0xF8FF;  // BMP private-use area
constexpr int kMaxInputDepth = 512;                       // inputs come from bounded JSON parses

// Special-token texts, bucketed by first byte, longest first (leftmost-longest
// matching, as the tokenizer's added-token matcher).
struct SpecialTexts {
  std::vector<std::string> texts;
  std::array<std::vector<uint32_t>, 256> by_first_byte;
};

SpecialTexts CollectSpecials(const tokenizer::Tokenizer& tok) {
  SpecialTexts s;
  for (const tokenizer::AddedToken& t : tok.spec().added_tokens)
    if (t.special && !t.content.empty()) s.texts.push_back(t.content);
  for (uint32_t i = 0; i < s.texts.size(); ++i) s.by_first_byte[static_cast<uint8_t>(s.texts[i][0])].push_back(i);
  for (auto& bucket : s.by_first_byte)
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) { return s.texts[a].size() > s.texts[b].size(); });
  return s;
}

// Marks the private-use code points that occur in `text`.
void MarkPua(const std::string& text, std::vector<bool>& used) {
  for (size_t i = 0; i + 2 < text.size(); ++i) {
    const auto b0 = static_cast<uint8_t>(text[i]);
    if (b0 != 0xEE && b0 != 0xEF) continue;
    const auto b1 = static_cast<uint8_t>(text[i + 1]), b2 = static_cast<uint8_t>(text[i + 2]);
    if ((b1 & 0xC0) != 0x80 || (b2 & 0xC0) != 0x80) continue;
    const uint32_t cp = ((b0 & 0x0Fu) << 12) | ((b1 & 0x3Fu) << 6) | (b2 & 0x3Fu);
    if (cp >= kPuaFirst && cp <= kPuaLast) used[cp - kPuaFirst] = true;
  }
}

Status MarkPuaJson(const Json& j, std::vector<bool>& used, int depth) {
  if (depth > kMaxInputDepth) return InvalidArgument("chat prompt input nested deeper than " + std::to_string(kMaxInputDepth) + " levels");
  if (j.is_string()) {
    MarkPua(j.get_ref<const std::string&>(), used);
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      MarkPua(it.key(), used);
      SPOOL_TRY(MarkPuaJson(it.value(), used, depth + 1));
    }
  } else if (j.is_array()) {
    for (const Json& x : j) SPOOL_TRY(MarkPuaJson(x, used, depth + 1));
  }
  return Status::Ok();
}

std::string Utf8(uint32_t cp) {
  std::string s(3, '\0');
  s[0] = static_cast<char>(0xE0 | (cp >> 12));
  s[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  s[2] = static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

// Replaces special-token texts in strings with placeholders.
class Protector {
 public:
  Protector(const SpecialTexts& specials, std::string sentinel) : specials_(specials), sentinel_(std::move(sentinel)) {}

  std::string Protect(const std::string& s) {
    std::string out;
    size_t copied = 0;
    bool any = false;
    for (size_t pos = 0; pos < s.size();) {
      const auto& bucket = specials_.by_first_byte[static_cast<uint8_t>(s[pos])];
      const uint32_t* hit = nullptr;
      for (const uint32_t& idx : bucket)
        if (s.compare(pos, specials_.texts[idx].size(), specials_.texts[idx]) == 0) {
          hit = &idx;
          break;
        }
      if (!hit) {
        ++pos;
        continue;
      }
      out.append(s, copied, pos - copied);
      out += sentinel_ + std::to_string(*hit) + sentinel_;
      pos += specials_.texts[*hit].size();
      copied = pos;
      any = true;
      ++replaced_;
    }
    if (!any) return s;
    out.append(s, copied, std::string::npos);
    return out;
  }

  Status ProtectJson(Json& j, int depth) {
    if (depth > kMaxInputDepth) return InvalidArgument("chat prompt input nested deeper than " + std::to_string(kMaxInputDepth) + " levels");
    if (j.is_string()) {
      j = Protect(j.get_ref<const std::string&>());
    } else if (j.is_array()) {
      for (Json& x : j) SPOOL_TRY(ProtectJson(x, depth + 1));
    } else if (j.is_object()) {
      Json rebuilt = Json::object();
      for (auto it = j.begin(); it != j.end(); ++it) {
        SPOOL_TRY(ProtectJson(it.value(), depth + 1));
        rebuilt[Protect(it.key())] = std::move(it.value());
      }
      j = std::move(rebuilt);
    }
    return Status::Ok();
  }

  int64_t replaced() const { return replaced_; }

 private:
  const SpecialTexts& specials_;
  std::string sentinel_;
  int64_t replaced_ = 0;
};

// Placeholders back to token text; their byte ranges are the literal spans. A
// placeholder may also appear JSON-escaped (a template's tojson with ensure_ascii).
// A sentinel that is not part of a whole placeholder (the template sliced content)
// is dropped.
std::string Restore(const std::string& rendered, const SpecialTexts& specials, uint32_t sentinel_cp,
                    std::vector<tokenizer::ByteSpan>* spans) {
  const std::string raw = Utf8(sentinel_cp);
  char esc[8];
  std::snprintf(esc, sizeof esc, "\\u%04x", sentinel_cp);
  const std::string escaped = esc;
  std::string out;
  out.reserve(rendered.size());
  size_t i = 0;
  while (i < rendered.size()) {
    const size_t a = rendered.find(raw, i), b = rendered.find(escaped, i);
    const size_t pos = std::min(a, b);
    if (pos == std::string::npos) {
      out.append(rendered, i, std::string::npos);
      break;
    }
    const std::string& marker = pos == a ? raw : escaped;
    out.append(rendered, i, pos - i);
    size_t k = pos + marker.size();
    size_t digits_end = k;
    while (digits_end < rendered.size() && digits_end - k < 9 && rendered[digits_end] >= '0' && rendered[digits_end] <= '9') ++digits_end;
    if (digits_end > k && rendered.compare(digits_end, marker.size(), marker) == 0) {
      const size_t index = std::stoul(rendered.substr(k, digits_end - k));
      if (index < specials.texts.size()) {
        const size_t begin = out.size();
        out += specials.texts[index];
        spans->push_back({begin, out.size()});
        i = digits_end + marker.size();
        continue;
      }
    }
    i = k;  // a stray sentinel: dropped
  }
  return out;
}

}  // namespace

Result<std::vector<int32_t>> EncodeChatPrompt(const ChatTemplate& tmpl, const tokenizer::Tokenizer& tok,
                                              const ChatTemplateInputs& inputs, const ChatPromptOptions& options,
                                              std::string* rendered) {
  const SpecialTexts specials = options.special_in_content ? SpecialTexts{} : CollectSpecials(tok);
  if (specials.texts.empty()) {
    SPOOL_ASSIGN_OR_RETURN(std::string text, tmpl.Render(inputs));
    auto ids = tok.Encode(text, /*add_special=*/false, /*parse_special=*/true);
    if (rendered) *rendered = std::move(text);
    return ids;
  }
  // A sentinel no input contains, so every sentinel in the output is ours.
  std::vector<bool> used(kPuaLast - kPuaFirst + 1, false);
  for (const Json* j : {&inputs.messages, &inputs.tools, &inputs.documents, &inputs.extra_vars})
    SPOOL_TRY(MarkPuaJson(*j, used, 0));
  MarkPua(inputs.bos_token, used);
  MarkPua(inputs.eos_token, used);
  uint32_t sentinel = 0;
  for (uint32_t cp = kPuaFirst; cp <= kPuaLast && sentinel == 0; ++cp)
    if (!used[cp - kPuaFirst]) sentinel = cp;
  if (sentinel == 0) return InvalidArgument("the messages use every private-use character (U+E000..U+F8FF); cannot keep special-token text in them literal");

  ChatTemplateInputs protected_inputs = inputs;
  Protector protector(specials, Utf8(sentinel));
  for (Json* j : {&protected_inputs.messages, &protected_inputs.tools, &protected_inputs.documents})
    SPOOL_TRY(protector.ProtectJson(*j, 0));
  if (protector.replaced() == 0) {
    SPOOL_ASSIGN_OR_RETURN(std::string text, tmpl.Render(inputs));
    auto ids = tok.Encode(text, /*add_special=*/false, /*parse_special=*/true);
    if (rendered) *rendered = std::move(text);
    return ids;
  }
  SPOOL_ASSIGN_OR_RETURN(std::string with_placeholders, tmpl.Render(protected_inputs));
  std::vector<tokenizer::ByteSpan> spans;
  std::string text = Restore(with_placeholders, specials, sentinel, &spans);
  auto ids = tok.EncodeWithLiteralSpans(text, /*add_special=*/false, spans);
  if (rendered) *rendered = std::move(text);
  return ids;
}

}  // namespace spool::chat
