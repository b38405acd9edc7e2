#include "chat/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include "chat/jinja_parser.h"
#include "chat/jinja_strings.h"

namespace spool::chat::jinja {
namespace {

// Binds Python-style parameters: position `pos` (after the input) or keyword `name`.
class Params {
 public:
  Params(const std::string& fn, CallArgs& args) : fn_(fn), args_(args) {}
  Value Get(size_t pos, const char* name, Value def = Value::Undefined("")) {
    for (auto& [k, v] : args_.keyword)
      if (k == name) return v;
    if (pos < args_.positional.size()) return args_.positional[pos];
    return def;
  }
  bool Has(size_t pos, const char* name) {
    for (auto& [k, v] : args_.keyword)
      if (k == name) return true;
    return pos < args_.positional.size();
  }
  std::optional<std::string> OptStr(size_t pos, const char* name) {
    Value v = Get(pos, name, Value::None());
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_string()) Throw("TypeError", fn_ + "() argument '" + name + "' must be str or None, not " + PyTypeName(v));
    return v.s;
  }
  std::string Str(size_t pos, const char* name, std::string def) {
    Value v = Get(pos, name, Value::Str(def));
    if (!v.is_string()) Throw("TypeError", fn_ + "() argument '" + name + "' must be str, not " + PyTypeName(v));
    return v.s;
  }
  int64_t Int(size_t pos, const char* name, int64_t def) {
    Value v = Get(pos, name, Value::Int(def));
    if (v.kind != Kind::kInt && v.kind != Kind::kBool)
      Throw("TypeError", "'" + PyTypeName(v) + "' object cannot be interpreted as an integer");
    return v.kind == Kind::kBool ? v.b : v.i;
  }
  bool Bool(size_t pos, const char* name, bool def) { return Truthy(Get(pos, name, Value::Bool(def))); }

 private:
  std::string fn_;
  CallArgs& args_;
};

Value StrList(const std::vector<std::string>& parts) {
  std::vector<Value> items;
  for (const auto& p : parts) items.push_back(Value::Str(p));
  return Value::List(std::move(items));
}

Value Tuple2(Value a, Value b) {
  std::vector<Value> items;
  items.push_back(std::move(a));
  items.push_back(std::move(b));
  return Value::List(std::move(items), "tuple");
}

Value UndefinedAttr(const Value& obj, const std::string& name) {
  return Value::Undefined(PyStrRepr(ObjectTypeRepr(obj)) + " has no attribute " + PyStrRepr(name));
}

bool StartsOrEnds(const std::string& s, const Value& what, bool starts) {
  auto one = [&](const Value& p) {
    if (!p.is_string()) Throw("TypeError", std::string(starts ? "startswith" : "endswith") + " first arg must be str or a tuple of str, not " + PyTypeName(p));
    if (p.s.size() > s.size()) return false;
    return starts ? s.compare(0, p.s.size(), p.s) == 0 : s.compare(s.size() - p.s.size(), p.s.size(), p.s) == 0;
  };
  if (what.kind == Kind::kList && what.list->type_name == "tuple") {
    for (const auto& p : what.list->items)
      if (one(p)) return true;
    return false;
  }
  return one(what);
}

// Python str.format with positional {} / {0} and named {name} fields, no format specs.
std::string StrFormat(const std::string& fmt, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '{' && k + 1 < fmt.size() && fmt[k + 1] == '{') { out += '{'; ++k; continue; }
    if (c == '}' && k + 1 < fmt.size() && fmt[k + 1] == '}') { out += '}'; ++k; continue; }
    if (c == '}') Throw("ValueError", "Single '}' encountered in format string");
    if (c != '{') { out += c; continue; }
    size_t e = fmt.find('}', k);
    if (e == std::string::npos) Throw("ValueError", "Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, e - k - 1);
    if (field.find_first_of(":!") != std::string::npos) Throw("ValueError", "format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty() || std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t idx = auto_index;
      if (field.empty()) {
        ++auto_index;
      } else {
        idx = 0;
        for (char d : field) {
          if (!std::isdigit(static_cast<unsigned char>(d)) || idx > args.positional.size()) break;
          idx = idx * 10 + static_cast<size_t>(d - '0');
        }
      }
      if (idx >= args.positional.size()) Throw("IndexError", "Replacement index " + std::to_string(idx) + " out of range for positional args tuple");
      v = &args.positional[idx];
    } else {
      for (auto& [key, val] : args.keyword)
        if (key == field) v = &val;
      if (!v) Throw("KeyError", PyStrRepr(field));
    }
    out += ToStr(*v);
    CheckBuiltString(out.size());
    k = e;
  }
  return out;
}

Value StrMethod(const std::string& s, const std::string& name, CallArgs& a) {
  Params p("str." + name, a);
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return Value::Str(PyStrip(s, p.OptStr(0, "chars"), name != "rstrip", name != "lstrip"));
  if (name == "split") return StrList(PySplit(s, p.OptStr(0, "sep"), p.Int(1, "maxsplit", -1)));
  if (name == "rsplit") return StrList(PyRSplit(s, p.OptStr(0, "sep"), p.Int(1, "maxsplit", -1)));
  if (name == "splitlines") return StrList(PySplitLines(s, p.Bool(0, "keepends", false)));
  if (name == "startswith" || name == "endswith") return Value::Bool(StartsOrEnds(s, p.Get(0, "prefix"), name == "startswith"));
  if (name == "upper") return Value::Str(PyUpper(s));
  if (name == "lower") return Value::Str(PyLower(s));
  if (name == "title") return Value::Str(PyTitle(s));
  if (name == "capitalize") return Value::Str(PyCapitalize(s));
  if (name == "replace") return Value::Str(PyReplace(s, p.Str(0, "old", ""), p.Str(1, "new", ""), p.Int(2, "count", -1)));
  if (name == "format") return Value::Str(StrFormat(s, a));
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const auto& v : Iterate(p.Get(0, "iterable"))) {
      if (!v.is_string()) Throw("TypeError", "sequence item: expected str instance, " + PyTypeName(v) + " found");
      if (!first) out += s;
      first = false;
      out += v.s;
    }
    return Value::Str(out);
  }
  if (name == "find" || name == "rfind" || name == "count") {
    std::string sub = p.Str(0, "sub", "");
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(DecodeUtf8(s).size()) + 1);
      int64_t n = 0;
      for (size_t k = s.find(sub); k != std::string::npos; k = s.find(sub, k + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
    if (at == std::string::npos) return Value::Int(-1);
    return Value::Int(static_cast<int64_t>(DecodeUtf8(s.substr(0, at)).size()));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    std::string x = p.Str(0, name == "removeprefix" ? "prefix" : "suffix", "");
    if (name == "removeprefix") return Value::Str(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    bool ends = x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return Value::Str(ends ? s.substr(0, s.size() - x.size()) : s);
  }
  auto all = [&](auto pred) {
    auto cps = DecodeUtf8(s);
    if (cps.empty()) return false;
    for (uint32_t c : cps)
      if (!pred(c)) return false;
    return true;
  };
  if (name == "isdigit") return Value::Bool(all([](uint32_t c) { return c >= '0' && c <= '9'; }));
  if (name == "isspace") return Value::Bool(all([](uint32_t c) { return IsPySpace(c); }));
  if (name == "isalpha") return Value::Bool(all([](uint32_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }));
  if (name == "isalnum") return Value::Bool(all([](uint32_t c) { return ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9'); }));
  if (name == "islower") return Value::Bool(PyIsLower(s));
  if (name == "isupper") return Value::Bool(PyIsUpper(s));
  Throw("AttributeError", "str has no method " + name);
}

const std::set<std::string> kStrMethods = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                                           "endswith", "upper", "lower", "title", "capitalize", "replace", "format",
                                           "join", "find", "rfind", "count", "removeprefix", "removesuffix", "isdigit",
                                           "isspace", "isalpha", "isalnum", "islower", "isupper"};
const std::set<std::string> kListUnsafe = {"append", "pop", "insert", "extend", "remove", "sort", "reverse", "clear"};
const std::set<std::string> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};

Value DictItems(const Value& d, const std::string& type_name) {
  std::vector<Value> items;
  for (const auto& [k, v] : d.dict->entries) {
    if (type_name == "dict_keys") items.push_back(k);
    else if (type_name == "dict_values") items.push_back(v);
    else items.push_back(Tuple2(k, v));
  }
  return Value::List(std::move(items), type_name);
}

Value Method(const Value& obj, const std::string& name) {
  return Value::Function(name, [obj, name](Interp&, CallArgs& a) -> Value {
    if (obj.is_string()) return StrMethod(obj.s, name, a);
    Params p(name, a);
    if (obj.is_dict()) {
      if (name == "get") {
        const Value* v = obj.dict->Find(p.Get(0, "key"));
        return v ? *v : p.Get(1, "default", Value::None());
      }
      if (name == "items") return DictItems(obj, "dict_items");
      if (name == "keys") return DictItems(obj, "dict_keys");
      if (name == "values") return DictItems(obj, "dict_values");
      if (name == "copy") {
        Value d = Value::Dict();
        d.dict->entries = obj.dict->entries;
        return d;
      }
    }
    if (obj.is_list()) {
      Value x = p.Get(0, "value");
      if (name == "count") {
        int64_t n = 0;
        for (const auto& v : obj.list->items) n += Equal(v, x);
        return Value::Int(n);
      }
      if (name == "index") {
        for (size_t k = 0; k < obj.list->items.size(); ++k)
          if (Equal(obj.list->items[k], x)) return Value::Int(static_cast<int64_t>(k));
        Throw("ValueError", Repr(x) + " is not in list");
      }
    }
    Throw("AttributeError", "no method " + name);
  });
}

}  // namespace

Value GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::kUndefined: obj.FailUndefined();
    case Kind::kString:
      if (kStrMethods.count(name)) return Method(obj, name);
      break;
    case Kind::kDict:
      if (name == "get" || name == "items" || name == "keys" || name == "values" || name == "copy") return Method(obj, name);
      if (kDictUnsafe.count(name))
        return Value::Undefined("access to attribute '" + name + "' of 'dict' object is unsafe.", "SecurityError");
      if (const Value* v = obj.dict->FindStr(name)) return *v;
      break;
    case Kind::kList:
      if (obj.is_sequence_list()) {
        if (name == "count" || name == "index") return Method(obj, name);
        if (kListUnsafe.count(name) && obj.list->type_name == "list")
          return Value::Undefined("access to attribute '" + name + "' of 'list' object is unsafe.", "SecurityError");
      }
      break;
    case Kind::kNamespace:
      if (const Value* v = obj.dict->FindStr(name)) return *v;
      break;
    default:
      break;
  }
  return UndefinedAttr(obj, name);
}

Value GetItem(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Kind::kUndefined: obj.FailUndefined();
    case Kind::kDict:
      if (const Value* v = obj.dict->Find(key)) return *v;
      break;
    case Kind::kList:
    case Kind::kString:
      if ((key.kind == Kind::kInt || key.kind == Kind::kBool) && (obj.is_string() || obj.is_sequence_list())) {
        int64_t idx = key.kind == Kind::kBool ? key.b : key.i;
        if (obj.is_string()) {
          auto cps = DecodeUtf8(obj.s);
          int64_t n = static_cast<int64_t>(cps.size());
          if (idx < 0) idx += n;
          if (idx >= 0 && idx < n) return Value::Str(EncodeUtf8(cps, static_cast<size_t>(idx), static_cast<size_t>(idx) + 1));
        } else {
          int64_t n = static_cast<int64_t>(obj.list->items.size());
          if (idx < 0) idx += n;
          if (idx >= 0 && idx < n) return obj.list->items[static_cast<size_t>(idx)];
        }
      }
      break;
    default:
      break;
  }
  if (key.is_string()) return GetAttr(obj, key.s);
  return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + Repr(key));
}

Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto idx = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (v.kind == Kind::kInt) return v.i;
    if (v.kind == Kind::kBool) return v.b ? 1 : 0;
    Throw("TypeError", std::string("slice indices must be integers or None or have an __index__ method (") + what + ")");
  };
  auto st = idx(step, "step");
  int64_t s = st.value_or(1);
  if (s == 0) Throw("ValueError", "slice step cannot be zero");
  std::vector<uint32_t> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = DecodeUtf8(obj.s);
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_sequence_list()) {
    n = static_cast<int64_t>(obj.list->items.size());
  } else {
    Throw("TypeError", "'" + PyTypeName(obj) + "' object is not subscriptable");
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) x += n;
    if (s > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(idx(start, "start"), s > 0 ? 0 : n - 1);
  int64_t e = clamp(idx(stop, "stop"), s > 0 ? n : -1);
  std::vector<size_t> picks;
  for (int64_t k = b; s > 0 ? k < e : k > e; k += s) picks.push_back(static_cast<size_t>(k));
  if (obj.is_string()) {
    std::string out;
    for (size_t k : picks) AppendUtf8(out, cps[k]);
    return Value::Str(out);
  }
  std::vector<Value> items;
  for (size_t k : picks) items.push_back(obj.list->items[k]);
  return Value::List(std::move(items), obj.list->type_name);
}

}  // namespace spool::chat::jinja
