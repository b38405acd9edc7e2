#include "chat/jinja_parser.h"

#include <cerrno>
#include <cstdlib>
#include <set>

#include "chat/jinja_lexer.h"

namespace spool::chat::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, int max_depth) : toks_(std::move(tokens)), max_depth_(max_depth) {}

  Body ParseAll() {
    Body body = ParseBody({});
    if (Cur().type != TokType::kEof) {
      // ParseBody stopped at an end tag that nothing opened.
      Fail("Encountered unknown tag '" + Peek(1).value + "'.", Peek(1));
    }
    return body;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t n) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }

  [[noreturn]] void Fail(const std::string& msg, const Token& at) const {
    throw JinjaError{"TemplateSyntaxError", msg, at.line, at.column};
  }
  [[noreturn]] void Fail(const std::string& msg) const { Fail(msg, Cur()); }

  static std::string Describe(const Token& t) {
    switch (t.type) {
      case TokType::kEof: return "end of template";
      case TokType::kBlockEnd: return "end of statement block";
      case TokType::kVarEnd: return "end of print statement";
      case TokType::kName: return "'" + t.value + "'";
      case TokType::kOp: return "'" + t.value + "'";
      case TokType::kString: return "string";
      default: return "token";
    }
  }

  bool IsOp(const char* op) const { return Cur().type == TokType::kOp && Cur().value == op; }
  bool IsName(const char* n) const { return Cur().type == TokType::kName && Cur().value == n; }
  void ExpectOp(const char* op) {
    if (!IsOp(op)) Fail(std::string("expected '") + op + "', got " + Describe(Cur()));
    Next();
  }
  void ExpectBlockEnd() {
    if (Cur().type != TokType::kBlockEnd) Fail("expected end of statement block, got " + Describe(Cur()));
    Next();
  }
  std::string ExpectName() {
    if (Cur().type != TokType::kName) Fail("expected name, got " + Describe(Cur()));
    std::string n = Cur().value;
    Next();
    return n;
  }

  struct DepthGuard {
    Parser* p;
    explicit DepthGuard(Parser* parser) : p(parser) {
      if (++p->depth_ > p->max_depth_) p->Fail("template nesting too deep (limit " + std::to_string(p->max_depth_) + ")");
    }
    ~DepthGuard() { --p->depth_; }
  };

  ExprPtr Node(Expr::Type t, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->type = t;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // ---- statements ----

  // Parses until EOF or a block tag whose name is in `stops` (left unconsumed,
  // Cur() is then its kBlockBegin).
  Body ParseBody(const std::set<std::string>& stops) {
    DepthGuard guard(this);
    Body body;
    while (true) {
      const Token& t = Cur();
      if (t.type == TokType::kEof) {
        if (!stops.empty()) {
          std::string names;
          for (const auto& s : stops) names += (names.empty() ? "'" : " or '") + s + "'";
          Fail("Unexpected end of template. Jinja was looking for the following tags: " + names + ".");
        }
        return body;
      }
      if (t.type == TokType::kText) {
        auto s = std::make_unique<Stmt>();
        s->type = Stmt::Type::kText;
        s->text = t.value;
        body.push_back(std::move(s));
        Next();
      } else if (t.type == TokType::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->type = Stmt::Type::kOutput;
        s->line = t.line;
        s->column = t.column;
        Next();
        s->expr = ParseTuple(true, false);
        if (Cur().type != TokType::kVarEnd) Fail("expected end of print statement, got " + Describe(Cur()));
        Next();
        body.push_back(std::move(s));
      } else if (t.type == TokType::kBlockBegin) {
        const Token& name = Peek(1);
        if (name.type != TokType::kName) Fail("tag name expected", name);
        if (stops.count(name.value)) return body;
        if (name.value.rfind("end", 0) == 0 || name.value == "else" || name.value == "elif") {
          if (stops.empty()) Fail("Encountered unknown tag '" + name.value + "'.", name);
          std::string names;
          for (const auto& s : stops) names += (names.empty() ? "'" : " or '") + s + "'";
          Fail("Encountered unknown tag '" + name.value + "'. Jinja was looking for the following tags: " + names + ".", name);
        }
        Next();
        body.push_back(ParseStatement());
      } else {
        Fail("unexpected " + Describe(t));
      }
    }
  }

  // Consumes "{% name" of an end/else tag (Cur() is its kBlockBegin).
  std::string TakeTagName() {
    Next();
    std::string n = Cur().value;
    Next();
    return n;
  }

  StmtPtr ParseStatement() {
    const Token tag = Cur();
    Next();
    auto s = std::make_unique<Stmt>();
    s->line = tag.line;
    s->column = tag.column;
    const std::string& kw = tag.value;
    if (kw == "if") {
      s->type = Stmt::Type::kIf;
      s->conds.push_back(ParseTuple(false, false));
      ExpectBlockEnd();
      while (true) {
        s->bodies.push_back(ParseBody({"elif", "else", "endif"}));
        std::string n = TakeTagName();
        if (n == "elif") {
          s->conds.push_back(ParseTuple(false, false));
          ExpectBlockEnd();
        } else if (n == "else") {
          ExpectBlockEnd();
          s->bodies.push_back(ParseBody({"endif"}));
          TakeTagName();
          ExpectBlockEnd();
          break;
        } else {
          ExpectBlockEnd();
          break;
        }
      }
    } else if (kw == "for") {
      s->type = Stmt::Type::kFor;
      s->targets = ParseTargetNames();
      if (!IsName("in")) Fail("expected 'in', got " + Describe(Cur()));
      Next();
      s->expr = ParseTuple(false, true);
      if (IsName("if")) {
        Next();
        s->cond = ParseExpression(true);
      }
      if (IsName("recursive")) Fail("recursive for loops are not supported");
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endfor", "else"}));
      if (TakeTagName() == "else") {
        ExpectBlockEnd();
        s->bodies.push_back(ParseBody({"endfor"}));
        TakeTagName();
      }
      ExpectBlockEnd();
    } else if (kw == "set") {
      std::string first = ExpectName();
      if (IsOp(".")) {
        Next();
        s->type = Stmt::Type::kSet;
        s->targets = {first};
        s->attr = ExpectName();
        ExpectOp("=");
        s->expr = ParseTuple(true, false);
        ExpectBlockEnd();
        return s;
      }
      s->targets = {first};
      while (IsOp(",")) {
        Next();
        s->targets.push_back(ExpectName());
      }
      if (IsOp("=")) {
        Next();
        s->type = Stmt::Type::kSet;
        s->expr = ParseTuple(true, false);
        ExpectBlockEnd();
      } else {
        if (s->targets.size() != 1) Fail("expected '=', got " + Describe(Cur()));
        s->type = Stmt::Type::kSetBlock;
        if (IsOp("|")) s->expr = ParseFilter(nullptr);
        ExpectBlockEnd();
        s->bodies.push_back(ParseBody({"endset"}));
        TakeTagName();
        ExpectBlockEnd();
      }
    } else if (kw == "macro") {
      s->type = Stmt::Type::kMacro;
      s->name = ExpectName();
      ParseParams(s->params);
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endmacro"}));
      TakeTagName();
      ExpectBlockEnd();
    } else if (kw == "call") {
      s->type = Stmt::Type::kCallBlock;
      if (IsOp("(")) ParseParams(s->params);
      s->expr = ParseExpression(true);
      if (s->expr->type != Expr::Type::kCall) Fail("expected call", tag);
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endcall"}));
      TakeTagName();
      ExpectBlockEnd();
    } else if (kw == "filter") {
      s->type = Stmt::Type::kFilterBlock;
      s->expr = ParseFilter(nullptr, /*start_inline=*/true);
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endfilter"}));
      TakeTagName();
      ExpectBlockEnd();
    } else if (kw == "break" || kw == "continue") {
      s->type = kw == "break" ? Stmt::Type::kBreak : Stmt::Type::kContinue;
      ExpectBlockEnd();
    } else if (kw == "generation") {
      s->type = Stmt::Type::kGeneration;
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endgeneration"}));
      TakeTagName();
      ExpectBlockEnd();
    } else if (kw == "include" || kw == "import" || kw == "from" || kw == "extends" || kw == "block" ||
               kw == "raw") {
      Fail("the '" + kw + "' tag is not supported in chat templates", tag);
    } else {
      Fail("Encountered unknown tag '" + kw + "'.", tag);
    }
    return s;
  }

  std::vector<std::string> ParseTargetNames() {
    std::vector<std::string> names;
    bool paren = IsOp("(");
    if (paren) Next();
    names.push_back(ExpectName());
    while (IsOp(",")) {
      Next();
      if (paren && IsOp(")")) break;
      names.push_back(ExpectName());
    }
    if (paren) ExpectOp(")");
    return names;
  }

  void ParseParams(std::vector<std::pair<std::string, ExprPtr>>& params) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!params.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      std::string n = ExpectName();
      ExprPtr def;
      if (IsOp("=")) {
        Next();
        def = ParseExpression(true);
      }
      params.emplace_back(n, std::move(def));
    }
    Next();
  }

  // ---- expressions ----

  bool IsTupleEnd(bool for_iterable) const {
    const Token& t = Cur();
    if (t.type == TokType::kVarEnd || t.type == TokType::kBlockEnd || t.type == TokType::kEof) return true;
    if (t.type == TokType::kOp && t.value == ")") return true;
    if (for_iterable && t.type == TokType::kName && (t.value == "if" || t.value == "recursive")) return true;
    if (t.type == TokType::kOp && t.value == "=") return true;
    return false;
  }

  ExprPtr ParseTuple(bool with_condexpr, bool for_iterable, bool explicit_parens = false) {
    const Token start = Cur();
    std::vector<ExprPtr> items;
    bool saw_comma = false;
    while (true) {
      if (!items.empty()) {
        if (!IsOp(",")) break;
        Next();
        saw_comma = true;
      }
      if (IsTupleEnd(for_iterable)) break;
      items.push_back(ParseExpression(with_condexpr));
    }
    if (!saw_comma) {
      if (items.size() == 1) return std::move(items[0]);
      if (!explicit_parens) Fail("Expected an expression, got " + Describe(Cur()));
    }
    auto e = Node(Expr::Type::kTuple, start);
    e->args = std::move(items);
    return e;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(this);
    if (!with_condexpr) return ParseOr();
    const Token start = Cur();
    ExprPtr e = ParseOr();
    while (IsName("if")) {
      Next();
      ExprPtr cond = ParseOr();
      ExprPtr other;
      if (IsName("else")) {
        Next();
        other = ParseExpression(true);
      }
      auto c = Node(Expr::Type::kCond, start);
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr Binary(Expr::Type t, const Token& at, ExprPtr l, ExprPtr r, std::string op = "") {
    auto e = Node(t, at);
    e->name = std::move(op);
    e->args.push_back(std::move(l));
    e->args.push_back(std::move(r));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr e = ParseAnd();
    while (IsName("or")) {
      Token t = Cur();
      Next();
      e = Binary(Expr::Type::kOr, t, std::move(e), ParseAnd());
    }
    return e;
  }
  ExprPtr ParseAnd() {
    ExprPtr e = ParseNot();
    while (IsName("and")) {
      Token t = Cur();
      Next();
      e = Binary(Expr::Type::kAnd, t, std::move(e), ParseNot());
    }
    return e;
  }
  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(this);
      Token t = Cur();
      Next();
      auto e = Node(Expr::Type::kNot, t);
      e->args.push_back(ParseNot());
      return e;
    }
    return ParseCompare();
  }
  ExprPtr ParseCompare() {
    const Token start = Cur();
    ExprPtr first = ParseMath1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> rest;
    while (true) {
      const Token& t = Cur();
      if (t.type == TokType::kOp && (t.value == "==" || t.value == "!=" || t.value == "<" || t.value == "<=" ||
                                     t.value == ">" || t.value == ">=")) {
        ops.push_back(t.value);
        Next();
      } else if (IsName("in")) {
        ops.push_back("in");
        Next();
      } else if (IsName("not") && Peek(1).type == TokType::kName && Peek(1).value == "in") {
        ops.push_back("notin");
        Next();
        Next();
      } else {
        break;
      }
      rest.push_back(ParseMath1());
    }
    if (ops.empty()) return first;
    auto e = Node(Expr::Type::kCompare, start);
    e->args.push_back(std::move(first));
    for (auto& r : rest) e->args.push_back(std::move(r));
    e->ops = std::move(ops);
    return e;
  }
  ExprPtr ParseMath1() {
    ExprPtr e = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      Token t = Cur();
      Next();
      e = Binary(Expr::Type::kBinary, t, std::move(e), ParseConcat(), t.value);
    }
    return e;
  }
  ExprPtr ParseConcat() {
    const Token start = Cur();
    ExprPtr e = ParseMath2();
    if (!IsOp("~")) return e;
    auto c = Node(Expr::Type::kConcat, start);
    c->args.push_back(std::move(e));
    while (IsOp("~")) {
      Next();
      c->args.push_back(ParseMath2());
    }
    return c;
  }
  ExprPtr ParseMath2() {
    ExprPtr e = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      Token t = Cur();
      Next();
      e = Binary(Expr::Type::kBinary, t, std::move(e), ParsePow(), t.value);
    }
    return e;
  }
  ExprPtr ParsePow() {
    ExprPtr e = ParseUnary(true);
    while (IsOp("**")) {
      Token t = Cur();
      Next();
      e = Binary(Expr::Type::kBinary, t, std::move(e), ParseUnary(true), "**");
    }
    return e;
  }
  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    const Token start = Cur();
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      Next();
      e = Node(start.value == "-" ? Expr::Type::kNeg : Expr::Type::kPos, start);
      e->args.push_back(ParseUnary(false));
    } else {
      e = ParsePrimary();
    }
    e = ParsePostfix(std::move(e));
    if (with_filter) e = ParseFilterExpr(std::move(e));
    return e;
  }

  ExprPtr ParsePrimary() {
    const Token t = Cur();
    switch (t.type) {
      case TokType::kName: {
        Next();
        auto e = Node(Expr::Type::kConst, t);
        if (t.value == "true" || t.value == "True") e->constant = Value::Bool(true);
        else if (t.value == "false" || t.value == "False") e->constant = Value::Bool(false);
        else if (t.value == "none" || t.value == "None") e->constant = Value::None();
        else {
          e->type = Expr::Type::kName;
          e->name = t.value;
        }
        return e;
      }
      case TokType::kString: {
        std::string s;
        while (Cur().type == TokType::kString) {
          s += Cur().value;
          Next();
        }
        auto e = Node(Expr::Type::kConst, t);
        e->constant = Value::Str(std::move(s));
        return e;
      }
      case TokType::kInt: {
        Next();
        auto e = Node(Expr::Type::kConst, t);
        errno = 0;
        long long v = std::strtoll(t.value.c_str(), nullptr, 10);
        if (errno == ERANGE) Fail("integer literal out of range", t);
        e->constant = Value::Int(v);
        return e;
      }
      case TokType::kFloat: {
        Next();
        auto e = Node(Expr::Type::kConst, t);
        e->constant = Value::Float(std::strtod(t.value.c_str(), nullptr));
        return e;
      }
      case TokType::kOp:
        if (t.value == "(") {
          Next();
          ExprPtr e = ParseTuple(true, false, true);
          ExpectOp(")");
          return e;
        }
        if (t.value == "[") {
          Next();
          auto e = Node(Expr::Type::kList, t);
          while (!IsOp("]")) {
            if (!e->args.empty()) ExpectOp(",");
            if (IsOp("]")) break;
            e->args.push_back(ParseExpression(true));
          }
          Next();
          return e;
        }
        if (t.value == "{") {
          Next();
          auto e = Node(Expr::Type::kDict, t);
          while (!IsOp("}")) {
            if (!e->args.empty()) ExpectOp(",");
            if (IsOp("}")) break;
            e->args.push_back(ParseExpression(true));
            ExpectOp(":");
            e->args.push_back(ParseExpression(true));
          }
          Next();
          return e;
        }
        break;
      default:
        break;
    }
    Fail("unexpected " + Describe(t));
  }

  ExprPtr ParsePostfix(ExprPtr e) {
    while (true) {
      const Token t = Cur();
      if (IsOp(".")) {
        Next();
        const Token a = Cur();
        if (a.type == TokType::kName) {
          Next();
          auto n = Node(Expr::Type::kAttr, a);
          n->name = a.value;
          n->args.push_back(std::move(e));
          e = std::move(n);
        } else if (a.type == TokType::kInt) {
          Next();
          auto n = Node(Expr::Type::kItem, a);
          n->args.push_back(std::move(e));
          auto k = Node(Expr::Type::kConst, a);
          k->constant = Value::Int(std::strtoll(a.value.c_str(), nullptr, 10));
          n->args.push_back(std::move(k));
          e = std::move(n);
        } else {
          Fail("expected name or number", a);
        }
      } else if (IsOp("[")) {
        Next();
        e = ParseSubscript(std::move(e), t);
      } else if (IsOp("(")) {
        e = ParseCall(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr obj, const Token& at) {
    ExprPtr parts[3];
    bool is_slice = false;
    int idx = 0;
    while (true) {
      if (IsOp(":")) {
        is_slice = true;
        if (++idx > 2) Fail("invalid slice");
        Next();
        continue;
      }
      if (IsOp("]")) break;
      if (parts[idx]) Fail("expected ']', got " + Describe(Cur()));
      parts[idx] = ParseExpression(true);
    }
    Next();
    if (!is_slice) {
      if (!parts[0]) Fail("expected subscript expression", at);
      auto n = Node(Expr::Type::kItem, at);
      n->args.push_back(std::move(obj));
      n->args.push_back(std::move(parts[0]));
      return n;
    }
    auto n = Node(Expr::Type::kSlice, at);
    n->args.push_back(std::move(obj));
    for (auto& p : parts) n->args.push_back(std::move(p));
    return n;
  }

  void ParseCallArgs(Expr& e) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) ExpectOp(",");
      first = false;
      if (IsOp(")")) break;
      if (IsOp("*") || IsOp("**")) Fail("*args and **kwargs in calls are not supported");
      if (Cur().type == TokType::kName && Peek(1).type == TokType::kOp && Peek(1).value == "=") {
        std::string key = Cur().value;
        Next();
        Next();
        e.kwargs.emplace_back(key, ParseExpression(true));
      } else {
        if (!e.kwargs.empty()) Fail("positional argument follows keyword argument");
        e.args.push_back(ParseExpression(true));
      }
    }
    Next();
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto n = Node(Expr::Type::kCall, Cur());
    n->args.push_back(std::move(callee));
    ParseCallArgs(*n);
    return n;
  }

  std::string ParseDottedName() {
    std::string n = ExpectName();
    while (IsOp(".") && Peek(1).type == TokType::kName) {
      Next();
      n += "." + Cur().value;
      Next();
    }
    return n;
  }

  // `| name(args)` chains; with start_inline the first '|' is absent ({% filter %}).
  ExprPtr ParseFilter(ExprPtr input, bool start_inline = false) {
    while (IsOp("|") || start_inline) {
      if (!start_inline) Next();
      start_inline = false;
      const Token t = Cur();
      std::string name = ParseDottedName();
      if (!IsKnownFilter(name)) throw JinjaError{"TemplateAssertionError", "No filter named '" + name + "'.", t.line, t.column};
      auto n = Node(Expr::Type::kFilter, t);
      n->name = name;
      n->args.push_back(std::move(input));
      if (IsOp("(")) ParseCallArgs(*n);
      input = std::move(n);
    }
    return input;
  }

  ExprPtr ParseTest(ExprPtr input) {
    Next();  // 'is'
    bool negated = false;
    if (IsName("not")) {
      negated = true;
      Next();
    }
    const Token t = Cur();
    std::string name = ParseDottedName();
    if (!IsKnownTest(name)) throw JinjaError{"TemplateAssertionError", "No test named '" + name + "'.", t.line, t.column};
    auto n = Node(Expr::Type::kTest, t);
    n->name = name;
    n->negated = negated;
    n->args.push_back(std::move(input));
    const Token& c = Cur();
    if (IsOp("(")) {
      ParseCallArgs(*n);
    } else if ((c.type == TokType::kName || c.type == TokType::kString || c.type == TokType::kInt ||
                c.type == TokType::kFloat || IsOp("[") || IsOp("{")) &&
               !(c.type == TokType::kName && (c.value == "else" || c.value == "or" || c.value == "and"))) {
      if (IsName("is")) Fail("You cannot chain multiple tests with is");
      n->args.push_back(ParsePostfix(ParsePrimary()));
    }
    return n;
  }

  ExprPtr ParseFilterExpr(ExprPtr e) {
    while (true) {
      if (IsOp("|")) e = ParseFilter(std::move(e));
      else if (IsName("is")) e = ParseTest(std::move(e));
      else if (IsOp("(")) e = ParseCall(std::move(e));
      else return e;
    }
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int max_depth_;
};

}  // namespace

Body ParseTemplate(const std::string& source, int max_depth) {
  return Parser(Tokenize(source), max_depth).ParseAll();
}

}  // namespace spool::chat::jinja
