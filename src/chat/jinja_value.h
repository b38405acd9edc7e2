// Values of the Jinja interpreter, with Python's semantics where templates can see them.
//
// A Value is one of: undefined, none, bool, int, float, string, list (also tuple,
// generator and dict views, told apart by ListData::type_name), dict (ordered, as
// Python dicts are), namespace, callable. Lists, dicts and namespaces are shared by
// reference (as in Python); strings and scalars are copied.
//
// Errors inside the interpreter are thrown as JinjaError and converted to a Status at
// the public API (jinja.h); no exception leaves the chat part.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace spool::chat::jinja {

// A template failure. `type` is the Python exception class jinja2 would raise
// (TemplateError for raise_exception, UndefinedError, TypeError, SecurityError,
// TemplateSyntaxError, ...; LimitError for spool's own safety limits).
struct JinjaError {
  std::string type;
  std::string message;
  int line = 0;  // 1-based template line, 0 if unknown
  int column = 0;
};
[[noreturn]] void Throw(std::string type, std::string message);

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

struct Value;
struct ListData;
struct DictData;
class Interp;

// Arguments of a call: positional then keyword (in call order).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::string name;
  std::function<Value(Interp&, CallArgs&)> fn;
};

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                   // string; for undefined: the error message raised on use
  bool markup = false;             // string marked safe (markupsafe.Markup): `+` escapes the other side
  std::string undefined_error;     // for undefined: error type raised on use ("UndefinedError")
  std::shared_ptr<ListData> list;  // kList
  std::shared_ptr<DictData> dict;  // kDict and kNamespace
  std::shared_ptr<Callable> fn;    // kCallable

  static Value Undefined(std::string message, std::string error_type = "UndefinedError");
  static Value None();
  static Value Bool(bool v);
  static Value Int(int64_t v);
  static Value Float(double v);
  static Value Str(std::string v);
  static Value List(std::vector<Value> items, std::string type_name = "list");
  static Value Dict();
  static Value Namespace();
  static Value Function(std::string name, std::function<Value(Interp&, CallArgs&)> fn);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_list() const { return kind == Kind::kList; }
  bool is_dict() const { return kind == Kind::kDict; }
  // True for list/tuple (indexable sequences), false for generators and views.
  bool is_sequence_list() const;

  // Raises the error an undefined value carries (call when the operation needs a value).
  [[noreturn]] void FailUndefined() const;
};

// Containers free their children iteratively (a 100,000-deep chain of namespaces or
// lists must not overflow the stack when it dies).
struct ListData {
  ListData() = default;
  ListData(const ListData&) = default;
  ListData& operator=(const ListData&) = default;
  ~ListData();
  std::vector<Value> items;
  // "list", "tuple", "generator", "dict_items", "dict_keys", "dict_values": decides
  // printing, len() and JSON serialisability as in Python.
  std::string type_name = "list";
};

struct DictData {
  DictData() = default;
  DictData(const DictData&) = default;
  DictData& operator=(const DictData&) = default;
  ~DictData();
  std::vector<std::pair<Value, Value>> entries;  // insertion order
  const Value* Find(const Value& key) const;
  Value* Find(const Value& key);
  const Value* FindStr(const std::string& key) const;
  void Set(const Value& key, Value v);
};

// ---- per-render resource accounting ----
// Interp::Render installs a RenderBudget for its thread (RenderBudgetScope). Creating
// values charges it (Value::Str/List/Dict, DictData::Set: cumulative bytes, never
// refunded), and every recursion over values (Repr/ToStr, JsonDumps, Equal, Less)
// holds a ValueDepthGuard, which bounds depth (cycles such as a namespace holding
// itself end there) and the total number of values visited (shared sub-lists make
// a small value print exponentially large). All failures are LimitError.
// Outside a render nothing is charged and the depth bound is kDefaultMaxValueDepth.
struct RenderBudget {
  int64_t max_alloc_bytes = 0;
  int64_t max_string_bytes = 0;  // one string being built (str/repr/tojson of a container)
  int max_value_depth = 0;
  int64_t max_value_visits = 0;
  int64_t allocated = 0;
  int64_t visits = 0;
  // Namespaces created during the render: the only mutable containers, so every
  // reference cycle (`{% set ns.me = ns %}`) passes through one. BreakCycles clears them.
  std::vector<std::weak_ptr<DictData>> namespaces;
};

// Empties every namespace of `budget` that is still alive, so that values in reference
// cycles are freed. Call once the render's values are no longer used.
void BreakCycles(RenderBudget& budget);
inline constexpr int kDefaultMaxValueDepth = 256;

class RenderBudgetScope {
 public:
  explicit RenderBudgetScope(RenderBudget* budget);
  ~RenderBudgetScope();
  RenderBudgetScope(const RenderBudgetScope&) = delete;
  RenderBudgetScope& operator=(const RenderBudgetScope&) = delete;

 private:
  RenderBudget* previous_;
  int previous_depth_;
};

// Adds `bytes` to the render's allocation total; LimitError past max_alloc_bytes.
void ChargeAlloc(int64_t bytes);
// LimitError if `bytes` more would pass max_alloc_bytes (before building a big value).
void CheckAlloc(int64_t bytes);
// LimitError if a string being built is larger than max_string_bytes.
void CheckBuiltString(size_t bytes);

class ValueDepthGuard {
 public:
  ValueDepthGuard();  // LimitError past the depth or visit bound
  ~ValueDepthGuard();
  ValueDepthGuard(const ValueDepthGuard&) = delete;
  ValueDepthGuard& operator=(const ValueDepthGuard&) = delete;
};

// Python's type(x).__name__ (NoneType, bool, int, float, str, list, dict, ...).
std::string PyTypeName(const Value& v);
// jinja2's object_type_repr: "None", "dict object", "list object", ...
std::string ObjectTypeRepr(const Value& v);

bool Truthy(const Value& v);
// Python ==. Undefined equals only undefined.
bool Equal(const Value& a, const Value& b);
// Python <; throws TypeError for unorderable types.
bool Less(const Value& a, const Value& b);

// Python str() and repr(); undefined prints as "".
std::string ToStr(const Value& v);
std::string Repr(const Value& v);
std::string PyFloatRepr(double d);
std::string PyStrRepr(const std::string& s);

// Python json.dumps(v, ensure_ascii, indent, separators, sort_keys). `indent` < 0
// means None; `indent_str` overrides spaces when non-empty.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  int indent = -1;
  std::string indent_str;
  bool has_separators = false;
  std::string item_sep, key_sep;
  bool sort_keys = false;
};
std::string JsonDumps(const Value& v, const JsonDumpOptions& opt);

// Iterates as Python's iter() would (string → characters, dict → keys); throws
// TypeError for non-iterables; undefined iterates as empty.
std::vector<Value> Iterate(const Value& v);
// len(); throws TypeError where Python has no len().
int64_t Length(const Value& v);

// UTF-8 helpers: strings are indexed by code point, as Python strings are.
std::vector<uint32_t> DecodeUtf8(const std::string& s);
std::string EncodeUtf8(const std::vector<uint32_t>& cps, size_t begin, size_t end);
void AppendUtf8(std::string& out, uint32_t cp);
bool IsPySpace(uint32_t cp);
// markupsafe.escape: & < > " ' as &amp; &lt; &gt; &#34; &#39;.
std::string HtmlEscape(const std::string& s);

}  // namespace spool::chat::jinja
