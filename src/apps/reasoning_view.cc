#include "apps/reasoning_view.h"

#include "base/json_input.h"
#include "chat/chat_template.h"

namespace spool::apps {

ReasoningFlags AddReasoningFlags(ArgParser& p) {
  ReasoningFlags f;
  f.format = &p.String("--reasoning-format", "auto", "chat: split reasoning from the answer: auto (from the chat template), "
                                                      "none, think (<think>), harmony (gpt-oss)");
  f.hide = &p.Flag("--hide-reasoning", "chat: do not print the model's reasoning");
  f.vars = &p.List("--var", "chat template variable KEY=JSON (e.g. reasoning_effort=\"high\", enable_thinking=false)");
  return f;
}

Result<chat::ReasoningFormat> ReasoningFlags::Resolve(const runtime::Engine& engine) const {
  auto format = chat::ParseReasoningFormat(*this->format);
  if (!format.ok()) return InvalidArgument("--reasoning-format: " + format.status().message());
  if (*format != chat::ReasoningFormat::kAuto) return *format;
  auto source = chat::LoadChatTemplate(engine.source().root);
  return chat::DetectReasoningFormat(source.ok() ? *source : std::string(), engine.tokenizer());
}

Result<nlohmann::ordered_json> ReasoningFlags::TemplateVars() const {
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  for (const std::string& kv : *this->vars) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("--var expects KEY=JSON, got '" + kv + "'");
    auto value = ParseJsonBounded(kv.substr(eq + 1), "--var " + kv.substr(0, eq));
    // A bare word is a string (--var reasoning_effort=high).
    vars[kv.substr(0, eq)] = value.ok() ? *value : nlohmann::ordered_json(kv.substr(eq + 1));
  }
  return vars;
}

ReasoningPrinter::ReasoningPrinter(chat::ReasoningFormat format, const chat::SplitterOptions& options, bool hide, bool ansi,
                                   std::FILE* out)
    : splitter_(format, options), hide_(hide), ansi_(ansi), out_(out) {}

void ReasoningPrinter::Push(const std::string& text) { Print(splitter_.Push(text)); }

void ReasoningPrinter::Finish() {
  Print(splitter_.Finish());
  if (in_reasoning_ && !hide_) std::fputs(ansi_ ? "\x1b[0m\n" : "\n...done thinking.\n", out_);
  in_reasoning_ = false;
  std::fflush(out_);
}

void ReasoningPrinter::Print(const chat::ReasoningDelta& d) {
  if (!d.reasoning.empty() && !hide_) {
    if (!in_reasoning_) std::fputs(ansi_ ? "\x1b[2m" : "Thinking...\n", out_);
    in_reasoning_ = true;
    std::fwrite(d.reasoning.data(), 1, d.reasoning.size(), out_);
  }
  if ((!d.content.empty() || !d.tool_calls.empty()) && in_reasoning_) {
    std::fputs(ansi_ ? "\x1b[0m\n\n" : "\n...done thinking.\n\n", out_);
    in_reasoning_ = false;
  }
  std::fwrite(d.content.data(), 1, d.content.size(), out_);
  for (const chat::ToolCall& t : d.tool_calls) std::fprintf(out_, "\n[tool call] %s(%s)\n", t.name.c_str(), t.arguments.c_str());
  std::fflush(out_);
}

}  // namespace spool::apps
