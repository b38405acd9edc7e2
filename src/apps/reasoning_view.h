// How `spool run --chat` and `spool chat` show a thinking model's answer: the text is
// split as it streams (chat/reasoning.h); reasoning is printed dimmed on a terminal,
// between "Thinking..." and "...done thinking." lines otherwise (as Ollama's CLI), or
// not at all with --hide-reasoning; tool calls are printed as one line each.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/args.h"
#include "chat/reasoning.h"
#include "runtime/engine.h"

namespace spool::apps {

struct ReasoningFlags {
  std::string* format;               // --reasoning-format
  bool* hide;                        // --hide-reasoning
  std::vector<std::string>* vars;    // --var KEY=JSON (chat template variables)
  // The format for this model (auto: chat::DetectReasoningFormat on its template and
  // vocabulary); InvalidArgument naming the flag on a bad value.
  Result<chat::ReasoningFormat> Resolve(const runtime::Engine& engine) const;
  // --var KEY=JSON... as a JSON object; InvalidArgument naming the bad one.
  Result<nlohmann::ordered_json> TemplateVars() const;
};
ReasoningFlags AddReasoningFlags(ArgParser& p);

class ReasoningPrinter {
 public:
  // `out`: where the answer goes; `ansi`: dim with escape codes (a terminal).
  ReasoningPrinter(chat::ReasoningFormat format, const chat::SplitterOptions& options, bool hide, bool ansi,
                   std::FILE* out = stdout);
  void Push(const std::string& text);
  void Finish();
  const chat::ReasoningSplitter& splitter() const { return splitter_; }

 private:
  void Print(const chat::ReasoningDelta& d);
  chat::ReasoningSplitter splitter_;
  bool hide_, ansi_;
  std::FILE* out_;
  bool in_reasoning_ = false;
};

}  // namespace spool::apps
