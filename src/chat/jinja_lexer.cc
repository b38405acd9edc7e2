#include "chat/jinja_lexer.h"

#include <cstring>

namespace spool::chat::jinja {
namespace {

// Python's \s for the characters that can appear here (ASCII + common Unicode spaces).
size_t SpaceLenAt(const std::string& s, size_t k) {
  unsigned char c = static_cast<unsigned char>(s[k]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c < 0x80) return 0;
  std::string rest = s.substr(k, 4);
  auto cps = DecodeUtf8(rest);
  if (cps.empty() || !IsPySpace(cps[0])) return 0;
  std::string enc;
  AppendUtf8(enc, cps[0]);
  return enc.size();
}

std::string RStripPy(const std::string& s) {
  auto cps = DecodeUtf8(s);
  size_t end = cps.size();
  while (end > 0 && IsPySpace(cps[end - 1])) --end;
  if (end == cps.size()) return s;
  return EncodeUtf8(cps, 0, end);
}

bool AllPySpace(const std::string& s) {
  for (uint32_t cp : DecodeUtf8(s))
    if (!IsPySpace(cp)) return false;
  return !s.empty();
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t p = FindTagStart(pos_);
      std::string text = src_.substr(pos_, p == std::string::npos ? std::string::npos : p - pos_);
      if (p == std::string::npos) {
        Emit(TokType::kText, text, pos_);
        Advance(src_.size());
        break;
      }
      char kind = src_[p + 1];
      char sign = p + 2 < src_.size() ? src_[p + 2] : '\0';
      if (sign == '-') {
        text = RStripPy(text);
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && AllPySpace(text.substr(l_pos))) text.resize(l_pos);
      }
      if (!text.empty()) Emit(TokType::kText, text, pos_);
      Advance(p);
      size_t body = p + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        line_starting = LexComment(body);
      } else {
        Emit(kind == '{' ? TokType::kVarBegin : TokType::kBlockBegin, "", p);
        Advance(body);
        line_starting = LexTag(kind == '{');
      }
    }
    Emit(TokType::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    size_t k = from;
    while ((k = src_.find('{', k)) != std::string::npos) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
      ++k;
    }
    return std::string::npos;
  }

  // Moves pos_ to `to`, keeping line/column current.
  void Advance(size_t to) {
    for (; pos_ < to && pos_ < src_.size(); ++pos_) {
      if (src_[pos_] == '\n') {
        ++line_;
        col_ = 1;
      } else if ((static_cast<unsigned char>(src_[pos_]) & 0xC0) != 0x80) {
        ++col_;
      }
    }
  }

  void Emit(TokType t, std::string v, size_t at) {
    (void)at;
    tokens_.push_back(Token{t, std::move(v), line_, col_});
  }

  [[noreturn]] void Fail(const std::string& msg) const {
    throw JinjaError{"TemplateSyntaxError", msg, line_, col_};
  }

  // Skips Python \s* from pos_; returns true if the last skipped char was '\n'.
  bool SkipSpaces() {
    bool last_newline = false;
    while (pos_ < src_.size()) {
      size_t n = SpaceLenAt(src_, pos_);
      if (n == 0) break;
      last_newline = src_[pos_] == '\n';
      Advance(pos_ + n);
    }
    return last_newline;
  }

  // Handles what follows a block/comment end: '-' strips all whitespace, '+' nothing,
  // otherwise trim_blocks removes one newline. Returns whether the match ended in '\n'.
  bool AfterBlockEnd(char sign) {
    if (sign == '-') return SkipSpaces();
    if (sign == '+') return false;
    if (pos_ < src_.size() && src_[pos_] == '\n') {
      Advance(pos_ + 1);
      return true;
    }
    return false;
  }

  bool LexComment(size_t body) {
    size_t q = src_.find("#}", body);
    if (q == std::string::npos) Fail("Missing end of comment tag");
    char sign = (q > body && (src_[q - 1] == '-' || src_[q - 1] == '+')) ? src_[q - 1] : '\0';
    Advance(q + 2);
    return AfterBlockEnd(sign);
  }

  // Lexes expression tokens up to and including the closing delimiter.
  bool LexTag(bool is_var) {
    const char* close = is_var ? "}}" : "%}";
    int depth = 0;  // open ( [ {: a closing delimiter inside them is an operator
    while (true) {
      while (pos_ < src_.size() && SpaceLenAt(src_, pos_) > 0) Advance(pos_ + SpaceLenAt(src_, pos_));
      if (pos_ >= src_.size()) Fail(is_var ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      char c = src_[pos_];
      if (depth == 0 && (c == '-' || c == '+') && src_.compare(pos_ + 1, 2, close) == 0 && !(is_var && c == '+')) {
        Emit(is_var ? TokType::kVarEnd : TokType::kBlockEnd, "", pos_);
        Advance(pos_ + 3);
        if (is_var) return c == '-' ? SkipSpaces() : false;
        return AfterBlockEnd(c);
      }
      if (depth == 0 && src_.compare(pos_, 2, close) == 0) {
        Emit(is_var ? TokType::kVarEnd : TokType::kBlockEnd, "", pos_);
        Advance(pos_ + 2);
        if (is_var) return false;
        return AfterBlockEnd('\0');
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        Emit(TokType::kName, src_.substr(pos_, e - pos_), pos_);
        Advance(e);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        LexNumber();
      } else if (c == '\'' || c == '"') {
        LexString(c);
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                     ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        bool matched = false;
        for (const char* op : kOps) {
          size_t n = std::strlen(op);
          if (src_.compare(pos_, n, op) == 0) {
            Emit(TokType::kOp, op, pos_);
            if (n == 1 && std::strchr("([{", op[0])) ++depth;
            if (n == 1 && std::strchr(")]}", op[0]) && depth > 0) --depth;
            Advance(pos_ + n);
            matched = true;
            break;
          }
        }
        if (!matched) Fail(std::string("unexpected char '") + c + "'");
      }
    }
  }

  size_t Digits(size_t e) const {  // \d(_?\d)*
    while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) ||
                               (src_[e] == '_' && e + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e + 1])))))
      ++e;
    return e;
  }

  void LexNumber() {
    size_t e = Digits(pos_);
    bool is_float = false;
    bool after_dot = !tokens_.empty() && tokens_.back().type == TokType::kOp && tokens_.back().value == ".";
    if (!after_dot && e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = Digits(e + 1);
      is_float = true;
    }
    if (!after_dot && e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && std::isdigit(static_cast<unsigned char>(src_[x]))) {
        e = Digits(x);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = pos_; k < e; ++k)
      if (src_[k] != '_') text += src_[k];
    Emit(is_float ? TokType::kFloat : TokType::kInt, text, pos_);
    Advance(e);
  }

  static int HexVal(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Python's "unicode-escape" decoding of the string body.
  void LexString(char quote) {
    size_t k = pos_ + 1;
    std::string out;
    while (true) {
      if (k >= src_.size()) Fail("unexpected end of string");
      char c = src_[k];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++k;
        continue;
      }
      if (k + 1 >= src_.size()) Fail("unexpected end of string");
      char e = src_[k + 1];
      k += 2;
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int j = 0; j < n; ++j) {
            int h = k < src_.size() ? HexVal(src_[k]) : -1;
            if (h < 0) Fail("truncated \\" + std::string(1, e) + " escape in string");
            cp = cp * 16 + static_cast<uint32_t>(h);
            ++k;
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) Fail("invalid code point escape in string");
          AppendUtf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int j = 0; j < 2 && k < src_.size() && src_[k] >= '0' && src_[k] <= '7'; ++j, ++k)
              cp = cp * 8 + static_cast<uint32_t>(src_[k] - '0');
            AppendUtf8(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    Emit(TokType::kString, out, pos_);
    Advance(k + 1);
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1, col_ = 1;
  std::vector<Token> tokens_;
};

// Jinja 3: "\r\n" and "\r" become "\n"; one trailing newline is dropped.
std::string NormalizeNewlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '\r') {
      out += '\n';
      if (k + 1 < s.size() && s[k + 1] == '\n') ++k;
    } else {
      out += s[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> Tokenize(const std::string& source) {
  return Lexer(NormalizeNewlines(source)).Run();
}

}  // namespace spool::chat::jinja
