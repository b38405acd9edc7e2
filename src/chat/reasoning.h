// Splitting generated text into reasoning, answer and tool calls, incrementally.
//
// Models that think write their reasoning into the same token stream as the answer.
// Clients expect it apart: OpenAI-style `reasoning_content` (llama-server, vLLM),
// Ollama's `thinking`, and tool calls as structured `tool_calls`. A
// ReasoningSplitter reads the text as it is generated, in chunks of any size (a tag
// may be split across chunks, even inside a UTF-8 character), and returns what each
// chunk adds to the three outputs. The result never depends on how the text was cut:
// pushing it whole or byte by byte gives the same reasoning, content and tool calls.
//
// Formats (see docs/parts/chat.md, "Reasoning output"):
// - kThink: Qwen3 / QwQ / DeepSeek-R1 `<think>…</think>` at the start of the answer
//   (leading whitespace allowed). A template that opens `<think>` in the prompt makes
//   the output start inside reasoning (SplitterOptions::start_in_reasoning).
// - kHarmony: gpt-oss messages `<|channel|>analysis<|message|>…<|end|>
//   <|start|>assistant<|channel|>final<|message|>…`, ending at `<|return|>` or `<|call|>`.
//   analysis → reasoning; final (and commentary without a recipient) → content; a
//   message with recipient `to=functions.NAME` → a tool call whose arguments are the
//   message body. The text must keep the special tokens (decode without skipping
//   control tokens).
// - kNone: everything is content.
// Tool calls in kNone and kThink: Qwen/Hermes `<tool_call>{"name":…,"arguments":…}
// </tool_call>`, parsed only when SplitterOptions::parse_tool_calls (the request
// offered tools).
//
// Malformed output is never an error: a `<tool_call>` whose body is not a JSON object
// with a string "name" (or an unterminated one) is given back as content, verbatim;
// an unterminated `<think>` leaves the rest as reasoning; a harmony header that never
// reaches `<|message|>` (or grows past kMaxHarmonyHeader bytes) becomes content.
//
// Cost: linear in the text; memory: the held-back tail (< 16 bytes), plus the open
// harmony header (≤ kMaxHarmonyHeader) or the open tool call's body (bounded only by
// the generated text, which max_tokens bounds). Not thread-safe; one per generation.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace spool::tokenizer {
class Tokenizer;
}

namespace spool::chat {

enum class ReasoningFormat { kAuto, kNone, kThink, kHarmony };

// "auto", "none", "think" (aliases "deepseek", "qwen3"), "harmony" (alias "gpt-oss");
// kInvalidArgument naming the accepted values otherwise.
Result<ReasoningFormat> ParseReasoningFormat(std::string_view name);
const char* ReasoningFormatName(ReasoningFormat format);

// The format a model's output uses, decided from its chat template and (optional)
// tokenizer:
//   1. harmony if the template writes "<|channel|>" and "<|message|>", or the
//      vocabulary has the tokens <|channel|>, <|message|> and <|return|> (o200k_harmony);
//   2. think if the template mentions "<think>" or "</think>", or the vocabulary has
//      both <think> and </think> tokens;
//   3. none otherwise.
// Never returns kAuto.
ReasoningFormat DetectReasoningFormat(std::string_view chat_template, const tokenizer::Tokenizer* tok);

// kThink: true when the rendered prompt, without trailing whitespace, ends with
// "<think>" (templates such as QwQ and DeepSeek-R1 open the reasoning block in the
// generation prompt, so the output starts inside it). False for other formats.
bool PromptOpensReasoning(ReasoningFormat format, std::string_view rendered_prompt);

struct ToolCall {
  std::string id;         // "<id_prefix><index>"
  std::string name;       // function name
  std::string arguments;  // JSON text of the arguments object (as OpenAI sends it)
};

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;  // calls completed by this chunk
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

struct SplitterOptions {
  bool start_in_reasoning = false;  // kThink: the prompt opened <think> (PromptOpensReasoning)
  bool parse_tool_calls = false;    // the request offered tools
  std::string id_prefix = "call_";  // tool call ids: prefix + index
};

class ReasoningSplitter {
 public:
  // kAuto is treated as kNone (decide with DetectReasoningFormat first).
  explicit ReasoningSplitter(ReasoningFormat format, SplitterOptions options = {});

  // Feeds the next chunk of generated text; returns what became certain.
  ReasoningDelta Push(std::string_view text);
  // The generation ended: returns what was held back (an open tool call or header
  // becomes content as above). Further Push calls return nothing.
  ReasoningDelta Finish();

  // Everything returned so far.
  const std::string& reasoning() const { return reasoning_; }
  const std::string& content() const { return content_; }
  const std::vector<ToolCall>& tool_calls() const { return tool_calls_; }

  static constexpr size_t kMaxHarmonyHeader = 512;

 private:
  enum class State {
    kContentStart,  // before any non-space content: <think> may open
    kContent,
    kReasoningStart,  // inside <think>, before any non-space reasoning
    kReasoning,
    kToolCall,        // inside <tool_call>…, body buffered
    kHarmonyHeader,   // harmony: between messages / in a header, buffered
    kHarmonyBody,
    kDone,
  };
  enum class Sink { kReasoning, kContent, kToolArgs, kDiscard };

  void Run(bool final, ReasoningDelta* out);
  void Emit(Sink sink, std::string_view text, ReasoningDelta* out);
  bool EndToolCall(bool terminated, ReasoningDelta* out);  // false: given back as content
  void StartHarmonyBody();
  void EndHarmonyMessage(ReasoningDelta* out);
  void AddToolCall(std::string name, std::string arguments, ReasoningDelta* out);

  ReasoningFormat format_;
  SplitterOptions options_;
  State state_;
  std::string pending_;         // text not yet consumed
  std::string held_space_;      // reasoning's trailing whitespace, emitted when more follows
  std::string buffer_;          // open tool call body / harmony header / tool-call body
  Sink body_sink_ = Sink::kContent;  // harmony: where the open message's body goes
  std::string recipient_;       // harmony: the open message's function name ("" = none)
  bool think_seen_ = false;     // kThink: a reasoning block was opened (only one is parsed)
  std::string reasoning_, content_;
  std::vector<ToolCall> tool_calls_;
};

// Whole text at once: Push(text) + Finish() of a fresh splitter.
struct SplitOutput {
  std::string reasoning, content;
  std::vector<ToolCall> tool_calls;
};
SplitOutput SplitReasoning(ReasoningFormat format, std::string_view text, const SplitterOptions& options = {});

}  // namespace spool::chat
