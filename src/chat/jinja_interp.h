// Tree-walking evaluator for parsed templates. One Interp renders one template
// once; it is not thread-safe and holds per-render counters for the safety limits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace spool::chat::jinja {

// Bounds that make rendering untrusted templates safe (LimitError when exceeded).
struct Limits {
  int64_t max_output_bytes = 16 << 20;       // also caps any single string built
  int64_t max_loop_iterations = 1'000'000;   // summed over all loops of one render
  int max_call_depth = 100;                  // nested macro / caller calls
  int max_nesting = 256;                     // parser nesting of blocks and expressions
  // Bytes of strings, list items and dict entries created during one render
  // (cumulative, inputs included; see RenderBudget). Real chat templates use a few MB.
  int64_t max_alloc_bytes = 256 << 20;
  int max_value_depth = kDefaultMaxValueDepth;  // nesting of values printed/compared (cycles end here)
  int64_t max_value_visits = 5'000'000;         // values visited by str/repr/tojson/==/< in one render
};

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
  const Value* Lookup(const std::string& name) const;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interp {
 public:
  // `now_unix_seconds` < 0 means the real clock (local time, as Python's datetime.now()).
  Interp(const Limits& limits, int64_t now_unix_seconds) : limits_(limits), now_(now_unix_seconds) {
    budget_.max_alloc_bytes = limits.max_alloc_bytes;
    budget_.max_string_bytes = limits.max_output_bytes;
    budget_.max_value_depth = limits.max_value_depth;
    budget_.max_value_visits = limits.max_value_visits;
  }

  // The render's allocation budget: Render installs it; callers that build input
  // values before rendering install it around that too (RenderBudgetScope).
  RenderBudget* budget() { return &budget_; }

  // Renders `body` with `globals` as the outermost scope. Throws JinjaError.
  std::string Render(const Body& body, const ScopePtr& globals);

  Value Eval(const Expr& e, const ScopePtr& scope);
  Value Call(const Value& callee, CallArgs& args);

  // Safety accounting used by builtins.
  void CountIterations(int64_t n);
  void CheckStringSize(size_t bytes) const;
  int64_t now_unix_seconds() const { return now_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  Flow ExecBody(const Body& body, const ScopePtr& scope, std::string& out);
  Flow Exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  void Append(std::string& out, const std::string& text);
  Value EvalInner(const Expr& e, const ScopePtr& scope);
  Value ApplyFilterChain(const Expr& chain, const Value& hole, const ScopePtr& scope);
  Value MakeMacro(const Stmt& s, const ScopePtr& scope, const std::string& name);
  void BindTargets(const std::vector<std::string>& targets, const Value& v, Scope& scope);
  CallArgs EvalArgs(const Expr& e, size_t first_positional, const ScopePtr& scope);

  const Limits& limits_;
  int64_t now_;
  RenderBudget budget_;
  int64_t output_bytes_ = 0;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  ScopePtr globals_;
};

// Python operators used by the evaluator and by filters (sum, ...).
Value BinaryOp(const std::string& op, const Value& a, const Value& b, Interp& interp);
bool CompareOp(const std::string& op, const Value& a, const Value& b);
bool Contains(const Value& container, const Value& item);

}  // namespace spool::chat::jinja
