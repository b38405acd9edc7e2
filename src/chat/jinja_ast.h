// Syntax tree of a parsed Jinja template. Nodes own their children; a parsed
// Template owns the whole tree and must outlive every render that uses it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace spool::chat::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Type {
    kConst,    // constant
    kName,     // name
    kAttr,     // args[0].name
    kItem,     // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null = omitted)
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs); args[0] null inside {% filter %}
    kTest,     // args[0] is [not] name(args[1..], kwargs)
    kNot, kNeg, kPos,  // unary on args[0]
    kBinary,   // args[0] name args[1], name in + - * / // % **
    kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (Python chained comparison)
    kAnd, kOr,
    kCond,     // args[0] if args[1] else args[2] (args[2] null: undefined)
    kList, kTuple,
    kDict,     // args: key0, value0, key1, value1, ...
    kConcat,   // args joined with ~
  };
  Type type = Type::kConst;
  int line = 0, column = 0;
  Value constant;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Type {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // conds[i] → bodies[i]; bodies.size() == conds.size() + 1 when there is an else
    kFor,          // for targets in expr [if cond]: bodies[0], else bodies[1]
    kSet,          // set targets = expr; or set targets[0].attr = expr
    kSetBlock,     // set targets[0] [| filter chain in expr] %}bodies[0]{% endset
    kMacro,        // macro name(params): bodies[0]
    kCallBlock,    // call(params) expr: bodies[0] is the caller
    kFilterBlock,  // filter expr (chain with null innermost input): bodies[0]
    kBreak, kContinue,
    kGeneration,   // transformers' {% generation %}: renders bodies[0]
  };
  Type type = Type::kText;
  int line = 0, column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::string> targets;
  std::string attr;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default is null when absent
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  bool recursive = false;
};

}  // namespace spool::chat::jinja
