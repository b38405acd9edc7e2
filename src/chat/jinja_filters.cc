// Filters, tests and global functions (jinja2 builtins + transformers' overrides).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <set>

#include "chat/jinja_builtins.h"
#include "chat/jinja_parser.h"
#include "chat/jinja_strings.h"

namespace spool::chat::jinja {
namespace {

Value Arg(CallArgs& a, size_t pos, const char* name, Value def) {
  for (auto& [k, v] : a.keyword)
    if (k == name) return v;
  if (pos < a.positional.size()) return a.positional[pos];
  return def;
}

int64_t IntArg(CallArgs& a, size_t pos, const char* name, int64_t def) {
  Value v = Arg(a, pos, name, Value::Int(def));
  if (v.kind == Kind::kBool) return v.b;
  if (v.kind != Kind::kInt) Throw("TypeError", "'" + PyTypeName(v) + "' object cannot be interpreted as an integer");
  return v.i;
}

// jinja2's make_attrgetter: "a.b.0" looks up each part with getitem semantics.
Value AttrPath(const Value& item, const Value& attribute) {
  if (attribute.kind == Kind::kInt) return GetItem(item, attribute);
  if (!attribute.is_string()) Throw("TypeError", "attribute must be a string or integer");
  Value cur = item;
  size_t start = 0;
  const std::string& path = attribute.s;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (cur.is_undefined()) cur.FailUndefined();
    cur = GetItem(cur, digits ? Value::Int(std::strtoll(part.c_str(), nullptr, 10)) : Value::Str(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value Generator(std::vector<Value> items) { return Value::List(std::move(items), "generator"); }

// Sort key used by dictsort/sort/unique/min/max when case_sensitive is false.
Value FoldCase(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value::Str(PyLower(v.s)) : v;
}

std::string Indent(const std::string& input, const Value& width, bool first, bool blank) {
  const int64_t n_spaces = std::max<int64_t>(width.kind == Kind::kInt ? width.i : 4, 0);
  if (!width.is_string()) CheckBuiltString(static_cast<size_t>(std::min<int64_t>(n_spaces, INT64_MAX / 2)));
  std::string indention = width.is_string() ? width.s : std::string(static_cast<size_t>(n_spaces), ' ');
  std::string s = input + "\n";
  std::vector<std::string> lines = PySplitLines(s, false);
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) {
      rv += (k ? "\n" + indention : "") + lines[k];
      CheckBuiltString(rv.size());
    }
  } else if (!lines.empty()) {
    rv = lines[0];
    for (size_t k = 1; k < lines.size(); ++k) {
      rv += "\n" + (lines[k].empty() ? "" : indention + lines[k]);
      CheckBuiltString(rv.size());
    }
  }
  if (first) rv = indention + rv;
  return rv;
}

Value ToJson(const Value& v, CallArgs& a) {
  JsonDumpOptions opt;
  opt.ensure_ascii = Truthy(Arg(a, 0, "ensure_ascii", Value::Bool(false)));
  Value indent = Arg(a, 1, "indent", Value::None());
  if (indent.kind == Kind::kInt) opt.indent = static_cast<int>(std::clamp<int64_t>(indent.i, -1, 64));
  else if (indent.is_string()) opt.indent_str = indent.s;
  else if (!indent.is_none()) Throw("TypeError", "tojson indent must be an int, a str or None");
  if (indent.is_string() && indent.s.empty()) opt.indent = 0;
  Value seps = Arg(a, 2, "separators", Value::None());
  if (!seps.is_none()) {
    if (!seps.is_sequence_list() || seps.list->items.size() != 2 || !seps.list->items[0].is_string() || !seps.list->items[1].is_string())
      Throw("TypeError", "tojson separators must be a pair of strings");
    opt.has_separators = true;
    opt.item_sep = seps.list->items[0].s;
    opt.key_sep = seps.list->items[1].s;
  }
  opt.sort_keys = Truthy(Arg(a, 3, "sort_keys", Value::Bool(false)));
  return Value::Str(JsonDumps(v, opt));
}

bool ParsePyInt(std::string s, int64_t base, int64_t& out) {
  s = PyStrip(s, std::nullopt, true, true);
  std::string clean;
  for (size_t k = 0; k < s.size(); ++k)
    if (s[k] != '_' || (k > 0 && k + 1 < s.size() && std::isalnum(static_cast<unsigned char>(s[k - 1])) && std::isalnum(static_cast<unsigned char>(s[k + 1])))) clean += s[k];
  if (clean.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(clean.c_str(), &end, static_cast<int>(base));
  if (errno || *end) return false;
  out = v;
  return true;
}

bool ParsePyFloat(const std::string& raw, double& out) {
  std::string s = PyStrip(raw, std::nullopt, true, true);
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

// select/reject/selectattr/rejectattr.
Value SelectOrReject(Interp& interp, const Value& seq, CallArgs& a, bool use_attr, bool keep_if) {
  if (!Truthy(seq)) return Generator({});  // jinja2: `if value:` before iterating
  size_t off = use_attr ? 1 : 0;
  Value attr = use_attr ? Arg(a, 0, "attribute", Value::Undefined("")) : Value();
  std::string test;
  CallArgs test_args;
  if (a.positional.size() > off) {
    const Value& t = a.positional[off];
    if (!t.is_string()) Throw("TypeError", "test name must be a string");
    test = t.s;
    if (!IsKnownTest(test)) Throw("TemplateRuntimeError", "No test named '" + test + "'.");
    test_args.positional.assign(a.positional.begin() + static_cast<long>(off) + 1, a.positional.end());
  }
  std::vector<Value> out;
  for (const auto& item : Iterate(seq)) {
    Value v = use_attr ? AttrPath(item, attr) : item;
    CallArgs copy = test_args;
    bool pass = test.empty() ? Truthy(v) : ApplyTest(interp, test, v, copy);
    if (pass == keep_if) out.push_back(item);
  }
  return Generator(std::move(out));
}

Value MapFilter(Interp& interp, const Value& seq, CallArgs& a) {
  std::vector<Value> out;
  if (!Truthy(seq)) return Generator({});  // jinja2: `if value:` before iterating
  if (a.positional.empty()) {
    Value attr = Arg(a, 99, "attribute", Value::Undefined(""));
    if (attr.is_undefined()) Throw("FilterArgumentError", "map requires a filter argument");
    bool has_default = false;
    Value def;
    for (auto& [k, v] : a.keyword)
      if (k == "default") { has_default = true; def = v; }
    for (const auto& item : Iterate(seq)) {
      Value v = AttrPath(item, attr);
      out.push_back(has_default && v.is_undefined() ? def : v);
    }
    return Generator(std::move(out));
  }
  if (!a.positional[0].is_string()) Throw("TypeError", "map filter name must be a string");
  std::string name = a.positional[0].s;
  if (!IsKnownFilter(name)) Throw("TemplateRuntimeError", "No filter named '" + name + "'.");
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const auto& item : Iterate(seq)) {
    CallArgs copy = rest;
    out.push_back(ApplyFilter(interp, name, item, copy));
  }
  return Generator(std::move(out));
}

Value SortedList(std::vector<Value> items, bool reverse, bool case_sensitive, const Value& attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) keyed.emplace_back(FoldCase(attribute.is_undefined() || attribute.is_none() ? v : AttrPath(v, attribute), case_sensitive), v);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? Less(y.first, x.first) : Less(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::List(std::move(out));
}

const std::set<std::string> kFilters = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
    "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr",
    "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
    "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount",
    "wordwrap", "xmlattr"};
const std::set<std::string> kTests = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
    "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping",
    "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper",
    "==", "!=", "<", "<=", ">", ">="};

}  // namespace

bool IsKnownFilter(const std::string& name) { return kFilters.count(name) > 0; }
bool IsKnownTest(const std::string& name) { return kTests.count(name) > 0; }

Value ApplyFilter(Interp& interp, const std::string& name, const Value& v, CallArgs& a) {
  if (name == "tojson") return ToJson(v, a);
  if (name == "safe") {
    Value out = Value::Str(ToStr(v));
    out.markup = true;
    return out;
  }
  if (name == "string") return Value::Str(ToStr(v));
  if (name == "length" || name == "count") return Value::Int(Length(v));
  if (name == "list") return Value::List(Iterate(v));
  if (name == "trim") {
    Value chars = Arg(a, 0, "chars", Value::None());
    return Value::Str(PyStrip(ToStr(v), chars.is_string() ? std::optional<std::string>(chars.s) : std::nullopt, true, true));
  }
  if (name == "upper") return Value::Str(PyUpper(ToStr(v)));
  if (name == "lower") return Value::Str(PyLower(ToStr(v)));
  if (name == "title") return Value::Str(JinjaTitle(ToStr(v)));
  if (name == "capitalize") return Value::Str(PyCapitalize(ToStr(v)));
  if (name == "escape" || name == "e" || name == "forceescape") {
    if (v.is_string() && v.markup && name != "forceescape") return v;
    Value out = Value::Str(HtmlEscape(ToStr(v)));
    out.markup = true;
    return out;
  }
  if (name == "default" || name == "d") {
    Value def = Arg(a, 0, "default_value", Value::Str(""));
    bool boolean = Truthy(Arg(a, 1, "boolean", Value::Bool(false)));
    if (v.is_undefined() || (boolean && !Truthy(v))) return def;
    return v;
  }
  if (name == "join") {
    Value sep = Arg(a, 0, "d", Value::Str(""));
    Value attr = Arg(a, 1, "attribute", Value::None());
    std::string out;
    bool first = true;
    for (const auto& item : Iterate(v)) {
      if (!first) out += ToStr(sep);
      first = false;
      out += ToStr(attr.is_none() ? item : AttrPath(item, attr));
      interp.CheckStringSize(out.size());
    }
    return Value::Str(out);
  }
  if (name == "items") {
    if (v.is_undefined()) return Generator({});
    if (!v.is_dict()) Throw("TypeError", "Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, x] : v.dict->entries) out.push_back(Value::List({k, x}, "tuple"));
    return Generator(std::move(out));
  }
  if (name == "first") {
    auto items = Iterate(v);
    return items.empty() ? Value::Undefined("No first item, sequence was empty.") : items.front();
  }
  if (name == "last") {
    if (v.is_list() && !v.is_sequence_list()) Throw("TypeError", "'" + PyTypeName(v) + "' object is not reversible");
    auto items = Iterate(v);
    return items.empty() ? Value::Undefined("No last item, sequence was empty.") : items.back();
  }
  if (name == "replace") {
    Value old = Arg(a, 0, "old", Value::Str("")), repl = Arg(a, 1, "new", Value::Str(""));
    Value count = Arg(a, 2, "count", Value::None());
    std::string out = PyReplace(ToStr(v), ToStr(old), ToStr(repl), count.kind == Kind::kInt ? count.i : -1);
    interp.CheckStringSize(out.size());
    return Value::Str(out);
  }
  if (name == "indent") {
    return Value::Str(Indent(ToStr(v), Arg(a, 0, "width", Value::Int(4)), Truthy(Arg(a, 1, "first", Value::Bool(false))),
                             Truthy(Arg(a, 2, "blank", Value::Bool(false)))));
  }
  if (name == "int") {
    int64_t def = IntArg(a, 0, "default", 0), base = IntArg(a, 1, "base", 10);
    if (v.kind == Kind::kInt) return v;
    if (v.kind == Kind::kBool) return Value::Int(v.b);
    if (v.kind == Kind::kFloat) return std::isfinite(v.f) ? Value::Int(static_cast<int64_t>(v.f)) : Value::Int(def);
    if (v.is_string()) {
      int64_t out;
      if (ParsePyInt(v.s, base, out)) return Value::Int(out);
      double d;
      if (ParsePyFloat(v.s, d) && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::Int(static_cast<int64_t>(d));
    }
    return Value::Int(def);
  }
  if (name == "float") {
    Value def = Arg(a, 0, "default", Value::Float(0.0));
    if (v.kind == Kind::kFloat) return v;
    if (v.kind == Kind::kInt || v.kind == Kind::kBool) return Value::Float(v.kind == Kind::kInt ? static_cast<double>(v.i) : v.b);
    double d;
    if (v.is_string() && ParsePyFloat(v.s, d)) return Value::Float(d);
    return def;
  }
  if (name == "abs") {
    if (v.kind == Kind::kFloat) return Value::Float(std::fabs(v.f));
    if (v.kind == Kind::kInt && v.i != INT64_MIN) return Value::Int(v.i < 0 ? -v.i : v.i);
    if (v.kind == Kind::kBool) return Value::Int(v.b);
    Throw("TypeError", "bad operand type for abs(): '" + PyTypeName(v) + "'");
  }
  if (name == "round") {
    int64_t precision = IntArg(a, 0, "precision", 0);
    std::string method = ToStr(Arg(a, 1, "method", Value::Str("common")));
    if (!v.is_number()) Throw("TypeError", "type " + PyTypeName(v) + " doesn't define __round__ method");
    double x = v.kind == Kind::kFloat ? v.f : static_cast<double>(v.kind == Kind::kInt ? v.i : v.b);
    double m = std::pow(10.0, static_cast<double>(precision));
    double r = method == "ceil" ? std::ceil(x * m) / m : method == "floor" ? std::floor(x * m) / m : std::nearbyint(x * m) / m;
    if (v.kind != Kind::kFloat && method == "common") return v.kind == Kind::kInt ? v : Value::Int(v.b);
    return Value::Float(r);
  }
  if (name == "sum") {
    Value attr = Arg(a, 0, "attribute", Value::None());
    Value total = Arg(a, 1, "start", Value::Int(0));
    for (const auto& item : Iterate(v)) total = BinaryOp("+", total, attr.is_none() ? item : AttrPath(item, attr), interp);
    return total;
  }
  if (name == "min" || name == "max") {
    bool cs = Truthy(Arg(a, 0, "case_sensitive", Value::Bool(false)));
    Value attr = Arg(a, 1, "attribute", Value::None());
    auto items = Iterate(v);
    if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (size_t k = 1; k < items.size(); ++k) {
      Value kb = FoldCase(attr.is_none() ? best : AttrPath(best, attr), cs);
      Value kx = FoldCase(attr.is_none() ? items[k] : AttrPath(items[k], attr), cs);
      if (name == "min" ? Less(kx, kb) : Less(kb, kx)) best = items[k];
    }
    return best;
  }
  if (name == "sort") {
    return SortedList(Iterate(v), Truthy(Arg(a, 0, "reverse", Value::Bool(false))),
                      Truthy(Arg(a, 1, "case_sensitive", Value::Bool(false))), Arg(a, 2, "attribute", Value::None()));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) Throw("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
    bool cs = Truthy(Arg(a, 0, "case_sensitive", Value::Bool(false)));
    std::string by = ToStr(Arg(a, 1, "by", Value::Str("key")));
    bool reverse = Truthy(Arg(a, 2, "reverse", Value::Bool(false)));
    std::vector<Value> pairs;
    for (const auto& [k, x] : v.dict->entries) pairs.push_back(Value::List({k, x}, "tuple"));
    Value idx = Value::Int(by == "value" ? 1 : 0);
    Value sorted = SortedList(std::move(pairs), reverse, cs, idx);
    return sorted;
  }
  if (name == "unique") {
    bool cs = Truthy(Arg(a, 0, "case_sensitive", Value::Bool(false)));
    Value attr = Arg(a, 1, "attribute", Value::None());
    std::vector<Value> seen, out;
    for (const auto& item : Iterate(v)) {
      Value key = FoldCase(attr.is_none() ? item : AttrPath(item, attr), cs);
      bool dup = false;
      for (const auto& s : seen) dup |= Equal(s, key);
      if (!dup) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Generator(std::move(out));
  }
  if (name == "reverse") {
    if (v.is_string()) return Slice(v, Value::None(), Value::None(), Value::Int(-1));
    auto items = Iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items), v.is_sequence_list() ? "list_reverseiterator" : "list");
  }
  if (name == "map") return MapFilter(interp, v, a);
  if (name == "select") return SelectOrReject(interp, v, a, false, true);
  if (name == "reject") return SelectOrReject(interp, v, a, false, false);
  if (name == "selectattr") return SelectOrReject(interp, v, a, true, true);
  if (name == "rejectattr") return SelectOrReject(interp, v, a, true, false);
  if (name == "attr") {
    Value n = Arg(a, 0, "name", Value::Str(""));
    return GetAttr(v, ToStr(n));
  }
  if (name == "format") {
    Value args = Value::List(a.positional, "tuple");
    return BinaryOp("%", Value::Str(ToStr(v)), args, interp);
  }
  if (name == "center") {
    int64_t width = IntArg(a, 0, "width", 80);
    std::string s = ToStr(v);
    int64_t n = static_cast<int64_t>(DecodeUtf8(s).size());
    if (width <= n) return Value::Str(s);
    int64_t total = std::min<int64_t>(width, 1 << 20) - n;
    int64_t left = total / 2 + (total & width & 1);
    return Value::Str(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(total - left), ' '));
  }
  if (name == "wordcount") return Value::Int(static_cast<int64_t>(PySplit(ToStr(v), std::nullopt, -1).size()));
  if (name == "pprint") return Value::Str(Repr(v));
  Throw("TemplateRuntimeError", "the '" + name + "' filter is not supported by spool");
}

bool ApplyTest(Interp& interp, const std::string& name, const Value& v, CallArgs& a) {
  auto other = [&]() { return Arg(a, 0, "other", Value::Undefined("")); };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Kind::kBool;
  if (name == "false") return v.kind == Kind::kBool && !v.b;
  if (name == "true") return v.kind == Kind::kBool && v.b;
  if (name == "integer") return v.kind == Kind::kInt;
  if (name == "float") return v.kind == Kind::kFloat;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_sequence_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.kind == Kind::kCallable;
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && PyIsLower(v.s);
  if (name == "upper") return v.is_string() && PyIsUpper(v.s);
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (v.kind != Kind::kInt && v.kind != Kind::kBool) Throw("TypeError", "unsupported operand type(s) for %: '" + PyTypeName(v) + "' and 'int'");
    int64_t x = v.kind == Kind::kInt ? v.i : v.b;
    if (name == "odd") return (x % 2) != 0;
    if (name == "even") return x % 2 == 0;
    int64_t d = IntArg(a, 0, "num", 1);
    if (d == 0) Throw("ZeroDivisionError", "integer modulo by zero");
    return x % d == 0;
  }
  if (name == "sameas") {
    Value o = other();
    if (v.kind != o.kind) return false;
    switch (v.kind) {
      case Kind::kNone: case Kind::kUndefined: return true;
      case Kind::kBool: return v.b == o.b;
      case Kind::kInt: return v.i == o.i && v.i >= -5 && v.i <= 256;
      case Kind::kList: return v.list == o.list;
      case Kind::kDict: case Kind::kNamespace: return v.dict == o.dict;
      case Kind::kCallable: return v.fn == o.fn;
      default: return false;
    }
  }
  if (name == "eq" || name == "equalto" || name == "==") return CompareOp("==", v, other());
  if (name == "ne" || name == "!=") return CompareOp("!=", v, other());
  if (name == "lt" || name == "lessthan" || name == "<") return CompareOp("<", v, other());
  if (name == "le" || name == "<=") return CompareOp("<=", v, other());
  if (name == "gt" || name == "greaterthan" || name == ">") return CompareOp(">", v, other());
  if (name == "ge" || name == ">=") return CompareOp(">=", v, other());
  if (name == "in") return Contains(Arg(a, 0, "seq", Value::Undefined("")), v);
  if (name == "filter") return v.is_string() && IsKnownFilter(v.s);
  if (name == "test") return v.is_string() && IsKnownTest(v.s);
  (void)interp;
  Throw("TemplateRuntimeError", "the '" + name + "' test is not supported by spool");
}

void AddGlobalFunctions(Scope& globals) {
  globals.vars["range"] = Value::Function("range", [](Interp& interp, CallArgs& a) {
    if (!a.keyword.empty()) Throw("TypeError", "range() takes no keyword arguments");
    auto as_int = [](const Value& v) {
      if (v.kind == Kind::kBool) return static_cast<int64_t>(v.b);
      if (v.kind != Kind::kInt) Throw("TypeError", "'" + PyTypeName(v) + "' object cannot be interpreted as an integer");
      return v.i;
    };
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) {
      stop = as_int(a.positional[0]);
    } else if (a.positional.size() == 2 || a.positional.size() == 3) {
      start = as_int(a.positional[0]);
      stop = as_int(a.positional[1]);
      if (a.positional.size() == 3) step = as_int(a.positional[2]);
    } else {
      Throw("TypeError", "range expected at most 3 arguments, got " + std::to_string(a.positional.size()));
    }
    if (step == 0) Throw("ValueError", "range() arg 3 must not be zero");
    // Python's len(range(...)), computed without overflow.
    long double span = step > 0 ? static_cast<long double>(stop) - start : static_cast<long double>(start) - stop;
    long double n = span <= 0 ? 0 : std::ceil(span / std::fabs(static_cast<long double>(step)));
    if (n > 100000) Throw("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    interp.CountIterations(static_cast<int64_t>(n) / 16);
    std::vector<Value> out;
    for (int64_t k = 0; k < static_cast<int64_t>(n); ++k) out.push_back(Value::Int(start + k * step));
    return Value::List(std::move(out), "range");
  });
  auto make_dict = [](Value d, CallArgs& a, bool is_namespace) {
    if (a.positional.size() > 1) Throw("TypeError", "expected at most 1 argument, got " + std::to_string(a.positional.size()));
    if (!a.positional.empty()) {
      const Value& src = a.positional[0];
      if (src.is_dict()) {
        for (const auto& [k, v] : src.dict->entries) d.dict->Set(k, v);
      } else {
        for (const auto& pair : Iterate(src)) {
          auto kv = Iterate(pair);
          if (kv.size() != 2) Throw("ValueError", "dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
          d.dict->Set(kv[0], kv[1]);
        }
      }
    }
    for (auto& [k, v] : a.keyword) d.dict->Set(Value::Str(k), v);
    if (is_namespace)
      for (const auto& [k, v] : d.dict->entries)
        if (k.is_string() && !k.s.empty() && k.s[0] == '_')
          Throw("SecurityError", "Chat templates cannot store underscore-prefixed attributes on a namespace, but got " + PyStrRepr(k.s) + ". Please rename the attribute.");
    return d;
  };
  globals.vars["dict"] = Value::Function("dict", [make_dict](Interp&, CallArgs& a) { return make_dict(Value::Dict(), a, false); });
  globals.vars["namespace"] = Value::Function("namespace", [make_dict](Interp&, CallArgs& a) { return make_dict(Value::Namespace(), a, true); });
  globals.vars["raise_exception"] = Value::Function("raise_exception", [](Interp&, CallArgs& a) -> Value {
    Value msg = Arg(a, 0, "message", Value::Undefined(""));
    if (msg.is_undefined() && a.positional.empty()) Throw("TypeError", "raise_exception() missing 1 required positional argument: 'message'");
    Throw("TemplateError", ToStr(msg));
  });
  globals.vars["strftime_now"] = Value::Function("strftime_now", [](Interp& interp, CallArgs& a) {
    Value fmt = Arg(a, 0, "format", Value::Undefined(""));
    if (!fmt.is_string()) Throw("TypeError", "strftime() argument 1 must be str, not " + PyTypeName(fmt));
    std::tm tm{};
    std::time_t t = interp.now_unix_seconds() >= 0 ? static_cast<std::time_t>(interp.now_unix_seconds()) : std::time(nullptr);
    if (interp.now_unix_seconds() >= 0) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    if (fmt.s.size() > 1024) Throw("ValueError", "strftime format too long");
    std::string buf(4096, '\0');
    size_t n = fmt.s.empty() ? 0 : std::strftime(buf.data(), buf.size(), fmt.s.c_str(), &tm);
    buf.resize(n);
    return Value::Str(buf);
  });
}

}  // namespace spool::chat::jinja
