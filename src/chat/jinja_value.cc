#include "chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace spool::chat::jinja {

void Throw(std::string type, std::string message) {
  throw JinjaError{std::move(type), std::move(message), 0, 0};
}

Value Value::Undefined(std::string message, std::string error_type) {
  Value v;
  v.s = std::move(message);
  v.undefined_error = std::move(error_type);
  return v;
}
Value Value::None() { Value v; v.kind = Kind::kNone; return v; }
Value Value::Bool(bool x) { Value v; v.kind = Kind::kBool; v.b = x; return v; }
Value Value::Int(int64_t x) { Value v; v.kind = Kind::kInt; v.i = x; return v; }
Value Value::Float(double x) { Value v; v.kind = Kind::kFloat; v.f = x; return v; }
// ---- resource accounting ----

namespace {
thread_local RenderBudget* t_budget = nullptr;
thread_local int t_value_depth = 0;

int64_t ShallowBytes(const Value& v) { return static_cast<int64_t>(sizeof(Value) + v.s.size()); }
}  // namespace

RenderBudgetScope::RenderBudgetScope(RenderBudget* budget) : previous_(t_budget), previous_depth_(t_value_depth) {
  t_budget = budget;
  t_value_depth = 0;
}
RenderBudgetScope::~RenderBudgetScope() {
  t_budget = previous_;
  t_value_depth = previous_depth_;
}

void ChargeAlloc(int64_t bytes) {
  RenderBudget* b = t_budget;
  if (!b) return;
  b->allocated += bytes;
  if (b->allocated > b->max_alloc_bytes)
    Throw("LimitError", "template allocated more than " + std::to_string(b->max_alloc_bytes) +
                            " bytes of values during this render");
}

void CheckAlloc(int64_t bytes) {
  RenderBudget* b = t_budget;
  if (b && (bytes < 0 || bytes > b->max_alloc_bytes - b->allocated))
    Throw("LimitError", "template would allocate more than " + std::to_string(b->max_alloc_bytes) +
                            " bytes of values during this render");
}

void CheckBuiltString(size_t bytes) {
  RenderBudget* b = t_budget;
  if (b && static_cast<int64_t>(bytes) > b->max_string_bytes)
    Throw("LimitError", "template built a string larger than the output limit of " + std::to_string(b->max_string_bytes) + " bytes");
}

ValueDepthGuard::ValueDepthGuard() {
  RenderBudget* b = t_budget;
  const int max_depth = b ? b->max_value_depth : kDefaultMaxValueDepth;
  if (t_value_depth >= max_depth)
    Throw("LimitError", "value nested deeper than " + std::to_string(max_depth) + " levels (or it contains itself)");
  if (b && ++b->visits > b->max_value_visits)
    Throw("LimitError", "template visited more than " + std::to_string(b->max_value_visits) +
                            " values while printing or comparing");
  ++t_value_depth;
}
ValueDepthGuard::~ValueDepthGuard() { --t_value_depth; }

// Iterative teardown: children owned only by this container are moved to a local
// worklist and destroyed one level at a time, so the C++ stack stays flat.
namespace {
void TakeUnique(Value& v, std::vector<std::shared_ptr<ListData>>& lists, std::vector<std::shared_ptr<DictData>>& dicts) {
  if (v.list && v.list.use_count() == 1) lists.push_back(std::move(v.list));
  if (v.dict && v.dict.use_count() == 1) dicts.push_back(std::move(v.dict));
}
void DrainIteratively(std::vector<std::shared_ptr<ListData>>& lists, std::vector<std::shared_ptr<DictData>>& dicts) {
  while (!lists.empty() || !dicts.empty()) {
    if (!lists.empty()) {
      std::shared_ptr<ListData> l = std::move(lists.back());
      lists.pop_back();
      for (Value& x : l->items) TakeUnique(x, lists, dicts);
      l.reset();  // its children were taken: shallow
    } else {
      std::shared_ptr<DictData> d = std::move(dicts.back());
      dicts.pop_back();
      for (auto& [k, x] : d->entries) {
        TakeUnique(k, lists, dicts);
        TakeUnique(x, lists, dicts);
      }
      d.reset();
    }
  }
}
}  // namespace

ListData::~ListData() {
  std::vector<std::shared_ptr<ListData>> lists;
  std::vector<std::shared_ptr<DictData>> dicts;
  for (Value& x : items) TakeUnique(x, lists, dicts);
  DrainIteratively(lists, dicts);
}

DictData::~DictData() {
  std::vector<std::shared_ptr<ListData>> lists;
  std::vector<std::shared_ptr<DictData>> dicts;
  for (auto& [k, x] : entries) {
    TakeUnique(k, lists, dicts);
    TakeUnique(x, lists, dicts);
  }
  DrainIteratively(lists, dicts);
}

Value Value::Str(std::string x) {
  ChargeAlloc(static_cast<int64_t>(sizeof(Value) + x.size()));
  Value v;
  v.kind = Kind::kString;
  v.s = std::move(x);
  return v;
}
Value Value::List(std::vector<Value> items, std::string type_name) {
  int64_t bytes = static_cast<int64_t>(sizeof(ListData));
  for (const Value& x : items) bytes += ShallowBytes(x);
  ChargeAlloc(bytes);
  Value v;
  v.kind = Kind::kList;
  v.list = std::make_shared<ListData>();
  v.list->items = std::move(items);
  v.list->type_name = std::move(type_name);
  return v;
}
Value Value::Dict() {
  ChargeAlloc(static_cast<int64_t>(sizeof(DictData)));
  Value v;
  v.kind = Kind::kDict;
  v.dict = std::make_shared<DictData>();
  return v;
}
Value Value::Namespace() {
  ChargeAlloc(static_cast<int64_t>(sizeof(DictData) + sizeof(std::weak_ptr<DictData>)));
  Value v;
  v.kind = Kind::kNamespace;
  v.dict = std::make_shared<DictData>();
  if (t_budget) t_budget->namespaces.push_back(v.dict);
  return v;
}

void BreakCycles(RenderBudget& budget) {
  for (auto& weak : budget.namespaces) {
    if (std::shared_ptr<DictData> ns = weak.lock()) {
      std::vector<std::pair<Value, Value>> entries = std::move(ns->entries);
      ns->entries.clear();
      // `entries` dies here, after the namespace no longer refers to it.
    }
  }
  budget.namespaces.clear();
}
Value Value::Function(std::string name, std::function<Value(Interp&, CallArgs&)> fn) {
  Value v;
  v.kind = Kind::kCallable;
  v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

bool Value::is_sequence_list() const {
  return kind == Kind::kList && (list->type_name == "list" || list->type_name == "tuple");
}

void Value::FailUndefined() const { Throw(undefined_error.empty() ? "UndefinedError" : undefined_error, s); }

const Value* DictData::Find(const Value& key) const {
  for (const auto& [k, v] : entries)
    if (Equal(k, key)) return &v;
  return nullptr;
}
Value* DictData::Find(const Value& key) {
  for (auto& [k, v] : entries)
    if (Equal(k, key)) return &v;
  return nullptr;
}
const Value* DictData::FindStr(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k.kind == Kind::kString && k.s == key) return &v;
  return nullptr;
}
void DictData::Set(const Value& key, Value v) {
  if (Value* existing = Find(key)) {
    *existing = std::move(v);
    return;
  }
  ChargeAlloc(ShallowBytes(key) + ShallowBytes(v));
  entries.emplace_back(key, std::move(v));
}

std::string PyTypeName(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return v.list->type_name;
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  if (v.kind == Kind::kNone) return "None";
  return PyTypeName(v) + " object";
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: case Kind::kNone: return false;
    case Kind::kBool: return v.b;
    case Kind::kInt: return v.i != 0;
    case Kind::kFloat: return v.f != 0.0;
    case Kind::kString: return !v.s.empty();
    case Kind::kList: return v.list->type_name == "generator" || !v.list->items.empty();
    case Kind::kDict: return !v.dict->entries.empty();
    case Kind::kNamespace: case Kind::kCallable: return true;
  }
  return false;
}

static double AsDouble(const Value& v) {
  return v.kind == Kind::kFloat ? v.f : v.kind == Kind::kInt ? static_cast<double>(v.i) : (v.b ? 1.0 : 0.0);
}
static int64_t AsInt(const Value& v) { return v.kind == Kind::kInt ? v.i : (v.b ? 1 : 0); }

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return AsDouble(a) == AsDouble(b);
    return AsInt(a) == AsInt(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined: case Kind::kNone: return true;
    case Kind::kString: return a.s == b.s;
    case Kind::kList: {
      if (a.list == b.list) return true;
      ValueDepthGuard guard;
      if (a.list->type_name != b.list->type_name || !a.is_sequence_list()) return false;
      if (a.list->items.size() != b.list->items.size()) return false;
      for (size_t k = 0; k < a.list->items.size(); ++k)
        if (!Equal(a.list->items[k], b.list->items[k])) return false;
      return true;
    }
    case Kind::kDict: {
      if (a.dict == b.dict) return true;
      ValueDepthGuard guard;
      if (a.dict->entries.size() != b.dict->entries.size()) return false;
      for (const auto& [k, v] : a.dict->entries) {
        const Value* other = b.dict->Find(k);
        if (!other || !Equal(v, *other)) return false;
      }
      return true;
    }
    case Kind::kNamespace: return a.dict == b.dict;
    case Kind::kCallable: return a.fn == b.fn;
    default: return false;
  }
}

bool Less(const Value& a, const Value& b) {
  ValueDepthGuard guard;
  if (a.is_undefined()) a.FailUndefined();
  if (b.is_undefined()) b.FailUndefined();
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return AsDouble(a) < AsDouble(b);
    return AsInt(a) < AsInt(b);
  }
  if (a.is_string() && b.is_string()) return a.s < b.s;  // UTF-8 byte order == code point order
  if (a.is_sequence_list() && b.is_sequence_list() && a.list->type_name == b.list->type_name) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (Equal(x[k], y[k])) continue;
      return Less(x[k], y[k]);
    }
    return x.size() < y.size();
  }
  Throw("TypeError", "'<' not supported between instances of '" + PyTypeName(a) + "' and '" +
                         PyTypeName(b) + "'");
}

// ---- printing ----

std::string PyFloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+17" (shortest round-trip digits)
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (size_t k = 0; k < e; ++k)
    if (sci[k] != '.') digits += sci[k];
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else {
    size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return neg ? "-" + out : out;
}

std::vector<uint32_t> DecodeUtf8(const std::string& s) {
  // Invalid or truncated sequences decode as U+FFFD, one per bad byte.
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t k = 0;
  while (k < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[k]);
    if (c < 0x80) {
      out.push_back(c);
      ++k;
      continue;
    }
    size_t n = (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 0;
    bool ok = n > 0 && k + n < s.size();
    uint32_t cp = c & (0x3Fu >> n);
    for (size_t j = 1; ok && j <= n; ++j) {
      unsigned char cc = static_cast<unsigned char>(s[k + j]);
      if ((cc >> 6) != 2) ok = false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++k;
      continue;
    }
    out.push_back(cp);
    k += n + 1;
  }
  return out;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string EncodeUtf8(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t k = begin; k < end && k < cps.size(); ++k) AppendUtf8(out, cps[k]);
  return out;
}

bool IsPySpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Python's str.isprintable() for the characters templates meet; others print as-is.
static bool IsPyPrintable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
  if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
      (cp >= 0x205F && cp <= 0x2064) || cp == 0x3000 || cp == 0xFEFF || (cp >= 0xE000 && cp <= 0xF8FF))
    return false;
  return true;
}

std::string PyStrRepr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (uint32_t cp : DecodeUtf8(s)) {
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!IsPyPrintable(cp)) {
      char buf[16];
      if (cp < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      else std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      out += buf;
    } else {
      AppendUtf8(out, cp);
    }
  }
  out += quote;
  return out;
}

static std::string ReprSeq(const std::vector<Value>& items, const char* open, const char* close, bool tuple) {
  std::string out = open;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += ", ";
    out += Repr(items[k]);
    CheckBuiltString(out.size());
  }
  if (tuple && items.size() == 1) out += ",";
  return out + close;
}

static std::string ReprDictEntries(const DictData& d) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : d.entries) {
    if (!first) out += ", ";
    first = false;
    out += Repr(k) + ": " + Repr(v);
    CheckBuiltString(out.size());
  }
  return out + "}";
}

std::string Repr(const Value& v) {
  ValueDepthGuard guard;
  switch (v.kind) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "None";
    case Kind::kBool: return v.b ? "True" : "False";
    case Kind::kInt: return std::to_string(v.i);
    case Kind::kFloat: return PyFloatRepr(v.f);
    case Kind::kString: return PyStrRepr(v.s);
    case Kind::kList: {
      const std::string& t = v.list->type_name;
      if (t == "list") return ReprSeq(v.list->items, "[", "]", false);
      if (t == "tuple") return ReprSeq(v.list->items, "(", ")", true);
      if (t == "dict_items" || t == "dict_keys" || t == "dict_values")
        return t + "(" + ReprSeq(v.list->items, "[", "]", false) + ")";
      return "<" + t + " object>";
    }
    case Kind::kDict: return ReprDictEntries(*v.dict);
    case Kind::kNamespace: return "<Namespace " + ReprDictEntries(*v.dict) + ">";
    case Kind::kCallable: return "<function " + v.fn->name + ">";
  }
  return "";
}

std::string ToStr(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "";
    case Kind::kString: return v.s;
    default: return Repr(v);
  }
}

// ---- json.dumps ----

static void JsonString(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (uint32_t cp : DecodeUtf8(s)) {
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        char buf[16];
        if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
          if (cp >= 0x10000) {
            uint32_t x = cp - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (x >> 10), 0xDC00 + (x & 0x3FF));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
          }
          out += buf;
        } else {
          AppendUtf8(out, cp);
        }
      }
    }
  }
  out += '"';
}

static std::string JsonFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return PyFloatRepr(d);
}

static void JsonDump(std::string& out, const Value& v, const JsonDumpOptions& opt, int depth) {
  ValueDepthGuard guard;  // also ends cycles (Python: "Circular reference detected")
  CheckBuiltString(out.size());
  bool indented = opt.indent >= 0 || !opt.indent_str.empty();
  std::string item_sep = opt.has_separators ? opt.item_sep : (indented ? "," : ", ");
  std::string key_sep = opt.has_separators ? opt.key_sep : ": ";
  std::string unit = !opt.indent_str.empty() ? opt.indent_str : std::string(static_cast<size_t>(std::max(opt.indent, 0)), ' ');
  CheckBuiltString(unit.size());
  auto newline = [&](int level) {
    out += '\n';
    for (int k = 0; k < level; ++k) {
      out += unit;
      CheckBuiltString(out.size());
    }
  };
  switch (v.kind) {
    case Kind::kNone: out += "null"; return;
    case Kind::kBool: out += v.b ? "true" : "false"; return;
    case Kind::kInt: out += std::to_string(v.i); return;
    case Kind::kFloat: out += JsonFloat(v.f); return;
    case Kind::kString: JsonString(out, v.s, opt.ensure_ascii); return;
    case Kind::kList: {
      if (!v.is_sequence_list())
        Throw("TypeError", "Object of type " + v.list->type_name + " is not JSON serializable");
      if (v.list->items.empty()) { out += "[]"; return; }
      out += '[';
      for (size_t k = 0; k < v.list->items.size(); ++k) {
        if (k) out += item_sep;
        if (indented) newline(depth + 1);
        JsonDump(out, v.list->items[k], opt, depth + 1);
      }
      if (indented) newline(depth);
      out += ']';
      return;
    }
    case Kind::kDict: {
      if (v.dict->entries.empty()) { out += "{}"; return; }
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& e : v.dict->entries) entries.push_back(&e);
      if (opt.sort_keys)
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* a, const auto* b) { return Less(a->first, b->first); });
      out += '{';
      bool first = true;
      for (const auto* e : entries) {
        if (!first) out += item_sep;
        first = false;
        if (indented) newline(depth + 1);
        const Value& key = e->first;
        if (key.is_string()) JsonString(out, key.s, opt.ensure_ascii);
        else if (key.kind == Kind::kInt) out += "\"" + std::to_string(key.i) + "\"";
        else if (key.kind == Kind::kBool) out += key.b ? "\"true\"" : "\"false\"";
        else if (key.kind == Kind::kFloat) out += "\"" + JsonFloat(key.f) + "\"";
        else if (key.is_none()) out += "\"null\"";
        else Throw("TypeError", "keys must be str, int, float, bool or None, not " + PyTypeName(key));
        out += key_sep;
        JsonDump(out, e->second, opt, depth + 1);
      }
      if (indented) newline(depth);
      out += '}';
      return;
    }
    default:
      Throw("TypeError", "Object of type " + PyTypeName(v) + " is not JSON serializable");
  }
}

std::string JsonDumps(const Value& v, const JsonDumpOptions& opt) {
  std::string out;
  JsonDump(out, v, opt, 0);
  return out;
}

std::vector<Value> Iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return {};
    case Kind::kString: {
      std::vector<Value> out;
      for (uint32_t cp : DecodeUtf8(v.s)) {
        std::string c;
        AppendUtf8(c, cp);
        out.push_back(Value::Str(std::move(c)));
      }
      return out;
    }
    case Kind::kList: return v.list->items;
    case Kind::kDict: {
      std::vector<Value> out;
      for (const auto& e : v.dict->entries) out.push_back(e.first);
      return out;
    }
    default: Throw("TypeError", "'" + PyTypeName(v) + "' object is not iterable");
  }
}

int64_t Length(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(DecodeUtf8(v.s).size());
    case Kind::kList:
      if (v.list->type_name == "generator") Throw("TypeError", "object of type 'generator' has no len()");
      return static_cast<int64_t>(v.list->items.size());
    case Kind::kDict: return static_cast<int64_t>(v.dict->entries.size());
    default: Throw("TypeError", "object of type '" + PyTypeName(v) + "' has no len()");
  }
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace spool::chat::jinja
