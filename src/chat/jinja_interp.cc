#include "chat/jinja_interp.h"

#include <cmath>
#include <limits>

#include "chat/jinja_builtins.h"

namespace spool::chat::jinja {

const Value* Scope::Lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

namespace {

bool IsNum(const Value& v) { return v.is_number(); }
bool IsFloatOp(const Value& a, const Value& b) { return a.kind == Kind::kFloat || b.kind == Kind::kFloat; }
double D(const Value& v) { return v.kind == Kind::kFloat ? v.f : v.kind == Kind::kInt ? static_cast<double>(v.i) : (v.b ? 1 : 0); }
int64_t I(const Value& v) { return v.kind == Kind::kInt ? v.i : (v.b ? 1 : 0); }

[[noreturn]] void Unsupported(const std::string& op, const Value& a, const Value& b) {
  Throw("TypeError", "unsupported operand type(s) for " + op + ": '" + PyTypeName(a) + "' and '" + PyTypeName(b) + "'");
}

Value IntResult(bool overflow, int64_t r) {
  if (overflow) Throw("OverflowError", "integer result out of the 64-bit range spool supports");
  return Value::Int(r);
}

// Python's printf-style `str % args` for the common conversions.
std::string PercentFormat(const std::string& fmt, const Value& args) {
  std::vector<Value> vals;
  if (args.kind == Kind::kList && args.list->type_name == "tuple") vals = args.list->items;
  else vals.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) Throw("ValueError", "incomplete format");
    if (fmt[k] == '%') {
      out += '%';
      continue;
    }
    if (next >= vals.size()) Throw("TypeError", "not enough arguments for format string");
    const Value& v = vals[next++];
    switch (fmt[k]) {
      case 's': out += ToStr(v); break;
      case 'r': out += Repr(v); break;
      case 'd': case 'i':
        if (!v.is_number()) Throw("TypeError", "%" + std::string(1, fmt[k]) + " format: a real number is required, not " + PyTypeName(v));
        out += std::to_string(v.kind == Kind::kFloat ? static_cast<int64_t>(v.f) : I(v));
        break;
      default: Throw("ValueError", std::string("unsupported format character '") + fmt[k] + "'");
    }
  }
  if (next < vals.size()) Throw("TypeError", "not all arguments converted during string formatting");
  return out;
}

}  // namespace

Value BinaryOp(const std::string& op, const Value& a, const Value& b, Interp& interp) {
  if (a.is_undefined()) a.FailUndefined();
  if (b.is_undefined()) b.FailUndefined();
  if (op == "+") {
    if (IsNum(a) && IsNum(b)) {
      if (IsFloatOp(a, b)) return Value::Float(D(a) + D(b));
      int64_t r = 0;
      bool overflow = __builtin_add_overflow(I(a), I(b), &r);
      return IntResult(overflow, r);
    }
    if (a.is_string() && b.is_string()) {
      interp.CheckStringSize(a.s.size() + b.s.size());
      if (!a.markup && !b.markup) return Value::Str(a.s + b.s);
      // Markup + str (either order) HTML-escapes the plain side, as markupsafe does.
      Value out = Value::Str((a.markup ? a.s : HtmlEscape(a.s)) + (b.markup ? b.s : HtmlEscape(b.s)));
      out.markup = true;
      return out;
    }
    if (a.is_sequence_list() && b.is_sequence_list() && a.list->type_name == b.list->type_name) {
      CheckAlloc(static_cast<int64_t>((a.list->items.size() + b.list->items.size()) * sizeof(Value)));
      std::vector<Value> items = a.list->items;
      items.insert(items.end(), b.list->items.begin(), b.list->items.end());
      return Value::List(std::move(items), a.list->type_name);
    }
    if (a.is_string() || a.is_sequence_list()) {
      std::string t = PyTypeName(a);
      Throw("TypeError", "can only concatenate " + t + " (not \"" + PyTypeName(b) + "\") to " + t);
    }
    Unsupported("+", a, b);
  }
  if (op == "-") {
    if (!IsNum(a) || !IsNum(b)) Unsupported("-", a, b);
    if (IsFloatOp(a, b)) return Value::Float(D(a) - D(b));
    int64_t r = 0;
    bool overflow = __builtin_sub_overflow(I(a), I(b), &r);
      return IntResult(overflow, r);
  }
  if (op == "*") {
    if (IsNum(a) && IsNum(b)) {
      if (IsFloatOp(a, b)) return Value::Float(D(a) * D(b));
      int64_t r = 0;
      bool overflow = __builtin_mul_overflow(I(a), I(b), &r);
      return IntResult(overflow, r);
    }
    const Value* seq = (a.is_string() || a.is_sequence_list()) ? &a : (b.is_string() || b.is_sequence_list()) ? &b : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq && (count->kind == Kind::kInt || count->kind == Kind::kBool)) {
      int64_t n = std::max<int64_t>(I(*count), 0);
      const size_t unit = seq->is_string() ? seq->s.size() : seq->list->items.size() * sizeof(Value);
      // n * unit without overflow: a count past the limit fails before multiplying.
      if (unit > 0 && static_cast<uint64_t>(n) > static_cast<uint64_t>(INT64_MAX) / unit)
        Throw("LimitError", "template built a sequence larger than its memory limit");
      if (seq->is_string()) {
        interp.CheckStringSize(static_cast<size_t>(n) * seq->s.size());
        std::string out;
        for (int64_t k = 0; k < n; ++k) out += seq->s;
        return Value::Str(std::move(out));
      }
      CheckAlloc(static_cast<int64_t>(static_cast<size_t>(n) * unit));
      std::vector<Value> items;
      for (int64_t k = 0; k < n; ++k) items.insert(items.end(), seq->list->items.begin(), seq->list->items.end());
      return Value::List(std::move(items), seq->list->type_name);
    }
    if (seq) Throw("TypeError", "can't multiply sequence by non-int of type '" + PyTypeName(*count) + "'");
    Unsupported("*", a, b);
  }
  if (op == "/") {
    if (!IsNum(a) || !IsNum(b)) Unsupported("/", a, b);
    if (D(b) == 0) Throw("ZeroDivisionError", "division by zero");
    return Value::Float(D(a) / D(b));
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return Value::Str(PercentFormat(a.s, b));
    if (!IsNum(a) || !IsNum(b)) Unsupported(op, a, b);
    if (IsFloatOp(a, b)) {
      double x = D(a), y = D(b);
      if (y == 0) Throw("ZeroDivisionError", op == "//" ? "float floor division by zero" : "float modulo");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      if (op == "%") return Value::Float(m);
      return Value::Float(std::floor(x / y));
    }
    int64_t x = I(a), y = I(b);
    if (y == 0) Throw("ZeroDivisionError", op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) {
      if (op == "%") return Value::Int(0);
      Throw("OverflowError", "integer result out of the 64-bit range spool supports");
    }
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      --q;
      m += y;
    }
    return Value::Int(op == "//" ? q : m);
  }
  if (op == "**") {
    if (!IsNum(a) || !IsNum(b)) Unsupported("** or pow()", a, b);
    if (!IsFloatOp(a, b) && I(b) >= 0) {
      int64_t base = I(a), e = I(b), r = 1;
      while (e-- > 0)
        if (__builtin_mul_overflow(r, base, &r)) Throw("OverflowError", "integer result out of the 64-bit range spool supports");
      return Value::Int(r);
    }
    if (D(a) == 0 && D(b) < 0) Throw("ZeroDivisionError", "0.0 cannot be raised to a negative power");
    return Value::Float(std::pow(D(a), D(b)));
  }
  Throw("TypeError", "unknown operator " + op);
}

bool CompareOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equal(a, b);
  if (op == "!=") return !Equal(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") return !Contains(b, a);
  if (a.is_undefined()) a.FailUndefined();
  if (b.is_undefined()) b.FailUndefined();
  bool comparable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                    (a.is_sequence_list() && b.is_sequence_list() && a.list->type_name == b.list->type_name);
  if (!comparable)
    Throw("TypeError", "'" + op + "' not supported between instances of '" + PyTypeName(a) + "' and '" + PyTypeName(b) + "'");
  if (op == "<") return Less(a, b);
  if (op == ">") return Less(b, a);
  if (op == "<=") return !Less(b, a);
  return !Less(a, b);  // ">="
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::kUndefined: return false;
    case Kind::kString:
      if (!item.is_string()) Throw("TypeError", "'in <string>' requires string as left operand, not " + PyTypeName(item));
      return container.s.find(item.s) != std::string::npos;
    case Kind::kList:
      for (const auto& x : container.list->items)
        if (Equal(x, item)) return true;
      return false;
    case Kind::kDict: return container.dict->Find(item) != nullptr;
    default: Throw("TypeError", "argument of type '" + PyTypeName(container) + "' is not iterable");
  }
}

void Interp::CountIterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations)
    Throw("LimitError", "template ran more than " + std::to_string(limits_.max_loop_iterations) + " loop iterations");
}

void Interp::CheckStringSize(size_t bytes) const {
  if (static_cast<int64_t>(bytes) > limits_.max_output_bytes)
    Throw("LimitError", "template built a string larger than the output limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
}

void Interp::Append(std::string& out, const std::string& text) {
  output_bytes_ += static_cast<int64_t>(text.size());
  if (output_bytes_ > limits_.max_output_bytes)
    Throw("LimitError", "template output exceeded the limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
  out += text;
}

std::string Interp::Render(const Body& body, const ScopePtr& globals) {
  RenderBudgetScope budget_scope(&budget_);
  globals_ = globals;
  std::string out;
  ExecBody(body, globals, out);
  return out;
}

Interp::Flow Interp::ExecBody(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = Exec(*s, scope, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

void Interp::BindTargets(const std::vector<std::string>& targets, const Value& v, Scope& scope) {
  if (targets.size() == 1) {
    scope.vars[targets[0]] = v;
    return;
  }
  std::vector<Value> items = Iterate(v);
  if (items.size() < targets.size())
    Throw("ValueError", "not enough values to unpack (expected " + std::to_string(targets.size()) + ", got " + std::to_string(items.size()) + ")");
  if (items.size() > targets.size())
    Throw("ValueError", "too many values to unpack (expected " + std::to_string(targets.size()) + ")");
  for (size_t k = 0; k < targets.size(); ++k) scope.vars[targets[k]] = items[k];
}

Value Interp::ApplyFilterChain(const Expr& chain, const Value& hole, const ScopePtr& scope) {
  Value input = chain.args[0] ? ApplyFilterChain(*chain.args[0], hole, scope) : hole;
  CallArgs args = EvalArgs(chain, 1, scope);
  return ApplyFilter(*this, chain.name, input, args);
}

Interp::Flow Interp::Exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  try {
    switch (s.type) {
      case Stmt::Type::kText: Append(out, s.text); return Flow::kNormal;
      case Stmt::Type::kOutput: Append(out, ToStr(Eval(*s.expr, scope))); return Flow::kNormal;
      case Stmt::Type::kIf:
        for (size_t k = 0; k < s.conds.size(); ++k)
          if (Truthy(Eval(*s.conds[k], scope))) return ExecBody(s.bodies[k], scope, out);
        if (s.bodies.size() > s.conds.size()) return ExecBody(s.bodies.back(), scope, out);
        return Flow::kNormal;
      case Stmt::Type::kFor: {
        Value iterable = Eval(*s.expr, scope);
        std::vector<Value> items = Iterate(iterable);
        CountIterations(static_cast<int64_t>(items.size()) / 16);
        if (s.cond) {
          std::vector<Value> kept;
          for (auto& item : items) {
            auto probe = std::make_shared<Scope>();
            probe->parent = scope;
            BindTargets(s.targets, item, *probe);
            if (Truthy(Eval(*s.cond, probe))) kept.push_back(std::move(item));
          }
          items = std::move(kept);
        }
        const int64_t n = static_cast<int64_t>(items.size());
        for (int64_t k = 0; k < n; ++k) {
          CountIterations(1);
          auto iter = std::make_shared<Scope>();
          iter->parent = scope;
          BindTargets(s.targets, items[static_cast<size_t>(k)], *iter);
          Value loop = Value::Dict();
          auto set = [&](const char* key, Value v) { loop.dict->entries.emplace_back(Value::Str(key), std::move(v)); };
          set("index", Value::Int(k + 1));
          set("index0", Value::Int(k));
          set("revindex", Value::Int(n - k));
          set("revindex0", Value::Int(n - k - 1));
          set("first", Value::Bool(k == 0));
          set("last", Value::Bool(k == n - 1));
          set("length", Value::Int(n));
          set("depth", Value::Int(1));
          set("depth0", Value::Int(0));
          set("previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value::Undefined("there is no previous item"));
          set("nextitem", k + 1 < n ? items[static_cast<size_t>(k + 1)] : Value::Undefined("there is no next item"));
          set("cycle", Value::Function("cycle", [k](Interp&, CallArgs& a) {
                if (a.positional.empty()) Throw("TypeError", "no items for cycling given");
                return a.positional[static_cast<size_t>(k) % a.positional.size()];
              }));
          iter->vars["loop"] = loop;
          if (ExecBody(s.bodies[0], iter, out) == Flow::kBreak) break;
        }
        if (n == 0 && s.bodies.size() > 1) {
          auto else_scope = std::make_shared<Scope>();
          else_scope->parent = scope;
          ExecBody(s.bodies[1], else_scope, out);
        }
        return Flow::kNormal;
      }
      case Stmt::Type::kSet: {
        Value v = Eval(*s.expr, scope);
        if (!s.attr.empty()) {
          const Value* ns = scope->Lookup(s.targets[0]);
          if (!ns || ns->kind != Kind::kNamespace)
            Throw("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
          if (s.attr[0] == '_')
            Throw("SecurityError", "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + s.attr + "'. Please rename the attribute.");
          ns->dict->Set(Value::Str(s.attr), std::move(v));
          return Flow::kNormal;
        }
        BindTargets(s.targets, v, *scope);
        return Flow::kNormal;
      }
      case Stmt::Type::kSetBlock: {
        std::string captured;
        ExecBody(s.bodies[0], scope, captured);
        Value v = Value::Str(std::move(captured));
        if (s.expr) v = ApplyFilterChain(*s.expr, v, scope);
        scope->vars[s.targets[0]] = std::move(v);
        return Flow::kNormal;
      }
      case Stmt::Type::kMacro:
        scope->vars[s.name] = MakeMacro(s, scope, s.name);
        return Flow::kNormal;
      case Stmt::Type::kCallBlock: {
        const Expr& call = *s.expr;
        Value callee = Eval(*call.args[0], scope);
        CallArgs args = EvalArgs(call, 1, scope);
        args.keyword.emplace_back("caller", MakeMacro(s, scope, "caller"));
        Append(out, ToStr(Call(callee, args)));
        return Flow::kNormal;
      }
      case Stmt::Type::kFilterBlock: {
        std::string captured;
        ExecBody(s.bodies[0], scope, captured);
        Append(out, ToStr(ApplyFilterChain(*s.expr, Value::Str(std::move(captured)), scope)));
        return Flow::kNormal;
      }
      case Stmt::Type::kBreak: return Flow::kBreak;
      case Stmt::Type::kContinue: return Flow::kContinue;
      case Stmt::Type::kGeneration: return ExecBody(s.bodies[0], scope, out);
    }
  } catch (JinjaError& e) {
    if (e.line == 0 && s.line > 0) {
      e.line = s.line;
      e.column = s.column;
    }
    throw;
  }
  return Flow::kNormal;
}

Value Interp::MakeMacro(const Stmt& s, const ScopePtr& scope, const std::string& name) {
  // The closure holds its defining scope weakly (a macro stored in that scope would
  // otherwise keep it alive forever); if the scope is gone, globals are used.
  std::weak_ptr<Scope> defining = scope;
  const Stmt* macro = &s;
  return Value::Function(name, [macro, defining, name](Interp& interp, CallArgs& args) -> Value {
    ScopePtr parent = defining.lock();
    if (!parent) parent = interp.globals_;
    if (++interp.call_depth_ > interp.limits_.max_call_depth) {
      --interp.call_depth_;
      Throw("LimitError", "macro calls nested deeper than " + std::to_string(interp.limits_.max_call_depth) + " (infinite recursion?)");
    }
    struct DepthRelease {
      Interp* i;
      ~DepthRelease() { --i->call_depth_; }
    } release{&interp};
    auto frame = std::make_shared<Scope>();
    frame->parent = parent;
    std::vector<Value> varargs;
    for (size_t k = 0; k < args.positional.size(); ++k) {
      if (k < macro->params.size()) frame->vars[macro->params[k].first] = args.positional[k];
      else varargs.push_back(args.positional[k]);
    }
    Value kwargs = Value::Dict();
    for (auto& [key, v] : args.keyword) {
      bool is_param = false;
      for (const auto& p : macro->params) is_param |= p.first == key;
      if (is_param) frame->vars[key] = v;
      else if (key == "caller") frame->vars["caller"] = v;
      else kwargs.dict->Set(Value::Str(key), v);
    }
    for (const auto& [pname, def] : macro->params) {
      if (frame->vars.count(pname)) continue;
      frame->vars[pname] = def ? interp.Eval(*def, frame) : Value::Undefined("parameter '" + pname + "' was not provided");
    }
    frame->vars["varargs"] = Value::List(std::move(varargs), "tuple");
    frame->vars["kwargs"] = kwargs;
    std::string out;
    interp.ExecBody(macro->bodies[0], frame, out);
    return Value::Str(std::move(out));
  });
}

CallArgs Interp::EvalArgs(const Expr& e, size_t first_positional, const ScopePtr& scope) {
  CallArgs args;
  for (size_t k = first_positional; k < e.args.size(); ++k) args.positional.push_back(Eval(*e.args[k], scope));
  for (const auto& [key, expr] : e.kwargs) args.keyword.emplace_back(key, Eval(*expr, scope));
  return args;
}

Value Interp::Call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) callee.FailUndefined();
  if (callee.kind != Kind::kCallable) Throw("TypeError", "'" + PyTypeName(callee) + "' object is not callable");
  return callee.fn->fn(*this, args);
}

Value Interp::Eval(const Expr& e, const ScopePtr& scope) {
  if (++eval_depth_ > limits_.max_nesting * 4) {
    --eval_depth_;
    Throw("LimitError", "expression evaluation nested too deep");
  }
  struct Release {
    int* d;
    ~Release() { --*d; }
  } release{&eval_depth_};
  try {
    return EvalInner(e, scope);
  } catch (JinjaError& err) {
    if (err.line == 0 && e.line > 0) {
      err.line = e.line;
      err.column = e.column;
    }
    throw;
  }
}

Value Interp::EvalInner(const Expr& e, const ScopePtr& scope) {
  switch (e.type) {
    case Expr::Type::kConst: return e.constant;
    case Expr::Type::kName: {
      const Value* v = scope->Lookup(e.name);
      return v ? *v : Value::Undefined("'" + e.name + "' is undefined");
    }
    case Expr::Type::kAttr: {
      Value obj = Eval(*e.args[0], scope);
      if (obj.is_undefined()) obj.FailUndefined();
      return GetAttr(obj, e.name);
    }
    case Expr::Type::kItem: {
      Value obj = Eval(*e.args[0], scope);
      if (obj.is_undefined()) obj.FailUndefined();
      return GetItem(obj, Eval(*e.args[1], scope));
    }
    case Expr::Type::kSlice: {
      Value obj = Eval(*e.args[0], scope);
      if (obj.is_undefined()) obj.FailUndefined();
      Value parts[3];
      for (int k = 0; k < 3; ++k) parts[k] = e.args[static_cast<size_t>(k) + 1] ? Eval(*e.args[static_cast<size_t>(k) + 1], scope) : Value::None();
      return Slice(obj, parts[0], parts[1], parts[2]);
    }
    case Expr::Type::kCall: {
      Value callee = Eval(*e.args[0], scope);
      CallArgs args = EvalArgs(e, 1, scope);
      return Call(callee, args);
    }
    case Expr::Type::kFilter: {
      Value input = Eval(*e.args[0], scope);
      CallArgs args = EvalArgs(e, 1, scope);
      return ApplyFilter(*this, e.name, input, args);
    }
    case Expr::Type::kTest: {
      Value input = Eval(*e.args[0], scope);
      CallArgs args = EvalArgs(e, 1, scope);
      return Value::Bool(ApplyTest(*this, e.name, input, args) != e.negated);
    }
    case Expr::Type::kNot: return Value::Bool(!Truthy(Eval(*e.args[0], scope)));
    case Expr::Type::kNeg:
    case Expr::Type::kPos: {
      Value v = Eval(*e.args[0], scope);
      if (v.is_undefined()) v.FailUndefined();
      bool neg = e.type == Expr::Type::kNeg;
      if (v.kind == Kind::kFloat) return Value::Float(neg ? -v.f : v.f);
      if (v.kind == Kind::kInt || v.kind == Kind::kBool) {
        int64_t x = I(v);
        if (neg && x == std::numeric_limits<int64_t>::min()) Throw("OverflowError", "integer result out of the 64-bit range spool supports");
        return Value::Int(neg ? -x : x);
      }
      Throw("TypeError", std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" + PyTypeName(v) + "'");
    }
    case Expr::Type::kBinary:
      return BinaryOp(e.name, Eval(*e.args[0], scope), Eval(*e.args[1], scope), *this);
    case Expr::Type::kCompare: {
      Value left = Eval(*e.args[0], scope);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = Eval(*e.args[k + 1], scope);
        if (!CompareOp(e.ops[k], left, right)) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
    case Expr::Type::kAnd: {
      Value l = Eval(*e.args[0], scope);
      return Truthy(l) ? Eval(*e.args[1], scope) : l;
    }
    case Expr::Type::kOr: {
      Value l = Eval(*e.args[0], scope);
      return Truthy(l) ? l : Eval(*e.args[1], scope);
    }
    case Expr::Type::kCond:
      if (Truthy(Eval(*e.args[1], scope))) return Eval(*e.args[0], scope);
      if (e.args[2]) return Eval(*e.args[2], scope);
      return Value::Undefined("the inline if-expression on line " + std::to_string(e.line) + " evaluated to false and no else section was defined.");
    case Expr::Type::kList:
    case Expr::Type::kTuple: {
      std::vector<Value> items;
      for (const auto& a : e.args) items.push_back(Eval(*a, scope));
      return Value::List(std::move(items), e.type == Expr::Type::kList ? "list" : "tuple");
    }
    case Expr::Type::kDict: {
      Value d = Value::Dict();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        Value key = Eval(*e.args[k], scope);
        if (key.kind == Kind::kList && key.list->type_name != "tuple") Throw("TypeError", "unhashable type: 'list'");
        if (key.kind == Kind::kDict) Throw("TypeError", "unhashable type: 'dict'");
        d.dict->Set(key, Eval(*e.args[k + 1], scope));
      }
      return d;
    }
    case Expr::Type::kConcat: {
      std::string out;
      for (const auto& a : e.args) {
        out += ToStr(Eval(*a, scope));
        CheckStringSize(out.size());
      }
      return Value::Str(std::move(out));
    }
  }
  return Value::None();
}

}  // namespace spool::chat::jinja
