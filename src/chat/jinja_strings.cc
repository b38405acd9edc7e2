#include "chat/jinja_strings.h"

#include "chat/jinja_value.h"

namespace spool::chat::jinja {
namespace {

uint32_t Upper(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
uint32_t Lower(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
bool IsCased(uint32_t c) { return Upper(c) != c || Lower(c) != c || c == 0xDF; }

std::string Map(const std::string& s, uint32_t (*f)(uint32_t)) {
  std::string out;
  for (uint32_t c : DecodeUtf8(s)) AppendUtf8(out, f(c));
  return out;
}

}  // namespace

std::string PyStrip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
  auto cps = DecodeUtf8(s);
  std::vector<uint32_t> set;
  if (chars) set = DecodeUtf8(*chars);
  auto strip_it = [&](uint32_t c) {
    if (!chars) return IsPySpace(c);
    for (uint32_t x : set)
      if (x == c) return true;
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return EncodeUtf8(cps, b, e);
}

std::vector<std::string> PySplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) Throw("ValueError", "empty separator");
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t p = s.find(*sep, start);
      if (p == std::string::npos) break;
      out.push_back(s.substr(start, p - start));
      start = p + sep->size();
    }
    out.push_back(s.substr(start));
    return out;
  }
  auto cps = DecodeUtf8(s);
  size_t k = 0, n = cps.size();
  while (true) {
    while (k < n && IsPySpace(cps[k])) ++k;
    if (k >= n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t e = n;
      while (e > k && IsPySpace(cps[e - 1])) --e;
      out.push_back(EncodeUtf8(cps, k, e));
      break;
    }
    size_t b = k;
    while (k < n && !IsPySpace(cps[k])) ++k;
    out.push_back(EncodeUtf8(cps, b, k));
  }
  return out;
}

std::vector<std::string> PyRSplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return PySplit(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) Throw("ValueError", "empty separator");
    size_t end = s.size();
    while (static_cast<int64_t>(out.size()) < maxsplit && end >= sep->size()) {
      size_t p = s.rfind(*sep, end - sep->size());
      if (p == std::string::npos) break;
      out.insert(out.begin(), s.substr(p + sep->size(), end - p - sep->size()));
      end = p;
    }
    out.insert(out.begin(), s.substr(0, end));
    return out;
  }
  auto cps = DecodeUtf8(s);
  size_t e = cps.size();
  while (true) {
    while (e > 0 && IsPySpace(cps[e - 1])) --e;
    if (e == 0) break;
    if (static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t b = 0;
      while (b < e && IsPySpace(cps[b])) ++b;
      out.insert(out.begin(), EncodeUtf8(cps, b, e));
      break;
    }
    size_t b = e;
    while (b > 0 && !IsPySpace(cps[b - 1])) --b;
    out.insert(out.begin(), EncodeUtf8(cps, b, e));
    e = b;
  }
  return out;
}

std::vector<std::string> PySplitLines(const std::string& s, bool keepends) {
  auto cps = DecodeUtf8(s);
  std::vector<std::string> out;
  size_t b = 0, k = 0;
  while (k < cps.size()) {
    uint32_t c = cps[k];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      ++k;
      continue;
    }
    size_t e = k + 1;
    if (c == '\r' && e < cps.size() && cps[e] == '\n') ++e;
    out.push_back(EncodeUtf8(cps, b, keepends ? e : k));
    b = k = e;
  }
  if (b < cps.size()) out.push_back(EncodeUtf8(cps, b, cps.size()));
  return out;
}

std::string PyUpper(const std::string& s) { return Map(s, Upper); }
std::string PyLower(const std::string& s) { return Map(s, Lower); }

std::string PyTitle(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : DecodeUtf8(s)) {
    bool cased = IsCased(c);
    AppendUtf8(out, cased ? (prev_cased ? Lower(c) : Upper(c)) : c);
    prev_cased = cased;
  }
  return out;
}

std::string PyCapitalize(const std::string& s) {
  auto cps = DecodeUtf8(s);
  std::string out;
  for (size_t k = 0; k < cps.size(); ++k) AppendUtf8(out, k == 0 ? Upper(cps[k]) : Lower(cps[k]));
  return out;
}

std::string JinjaTitle(const std::string& s) {
  // Words begin after any run of [-\s({\[<].
  std::string out;
  bool word_start = true;
  for (uint32_t c : DecodeUtf8(s)) {
    bool sep = c == '-' || IsPySpace(c) || c == '(' || c == '{' || c == '[' || c == '<';
    AppendUtf8(out, sep ? c : (word_start ? Upper(c) : Lower(c)));
    word_start = sep;
  }
  return out;
}

std::string PyReplace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    auto cps = DecodeUtf8(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
        CheckBuiltString(out.size());
      }
      if (k < cps.size()) AppendUtf8(out, cps[k]);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += repl;
    CheckBuiltString(out.size());
    start = p + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

bool PyIsLower(const std::string& s) {
  bool any = false;
  for (uint32_t c : DecodeUtf8(s)) {
    if (Upper(c) != c) any = true;
    else if (Lower(c) != c) return false;
  }
  return any;
}

bool PyIsUpper(const std::string& s) {
  bool any = false;
  for (uint32_t c : DecodeUtf8(s)) {
    if (Lower(c) != c) any = true;
    else if (Upper(c) != c) return false;
  }
  return any;
}

}  // namespace spool::chat::jinja
