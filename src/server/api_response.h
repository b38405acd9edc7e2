// Response bodies of the HTTP API, shaped exactly as OpenAI and Ollama send them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chat/reasoning.h"
#include "runtime/scheduler.h"
#include "server/api_request.h"

namespace spool::server {

// What every chunk/response of one request shares.
struct ResponseMeta {
  std::string id;           // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;      // unix seconds
  std::string model;        // the id clients asked for
  std::string fingerprint;  // system_fingerprint
};

// A chat answer split by chat/reasoning.h (the production splitter, also when the
// model's format is none: then everything is content).
struct AssistantParts {
  std::string reasoning, content;
  std::vector<chat::ToolCall> tool_calls;
};
AssistantParts ToParts(chat::SplitOutput split);
// "tool_calls" when the answer called tools and ended normally, else the completion's.
std::string ChatFinishReason(const runtime::Completion& c, bool called_tools);

// usage: {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details{cached_tokens}}.
Json OpenAIUsage(const runtime::Completion& c);
// Non-streamed chat.completion / text_completion object. Chat: `parts` gives the
// message: content (null when empty and there are tool calls), reasoning_content
// (only when non-empty, as llama-server), tool_calls; nullptr: content = c.text.
Json OpenAIResponse(const ResponseMeta& m, bool chat, const runtime::Completion& c, const AssistantParts* parts = nullptr);
// One streamed chunk. chat: delta = {"role":"assistant","content":""} when `role_chunk`,
// {"content": text} for text, {} with finish_reason at the end. Completions: text.
// include_usage adds "usage": null (OpenAI does, on every chunk but the last).
Json OpenAIChunk(const ResponseMeta& m, bool chat, const std::string& text, bool role_chunk,
                 const std::string& finish_reason, bool include_usage);
// A streamed chat chunk carrying what a splitter delta added: {"reasoning_content"},
// {"content"}, {"tool_calls": [{index, id, type, function{name, arguments}}]} (each
// call whole, numbered from `first_tool_index`).
Json OpenAIDeltaChunk(const ResponseMeta& m, const chat::ReasoningDelta& d, size_t first_tool_index, bool include_usage);
// The final usage chunk: choices [] and usage.
Json OpenAIUsageChunk(const ResponseMeta& m, bool chat, const runtime::Completion& c);

// Ollama /api/chat and /api/generate objects (streamed as NDJSON lines).
std::string IsoTimeNow();
Json OllamaChunk(const std::string& model, bool chat, const std::string& text);
// /api/chat stream line from a splitter delta: message {role, content, thinking
// (when non-empty), tool_calls [{function: {name, arguments (an object)}}]}.
Json OllamaDeltaChunk(const std::string& model, const chat::ReasoningDelta& d);
// `parts` (chat only): message.content/thinking/tool_calls from it instead of full_text.
Json OllamaFinal(const std::string& model, bool chat, const std::string& full_text, const runtime::Completion& c,
                 double total_seconds, const AssistantParts* parts = nullptr);

// SSE framing: "data: <json>\n\n".
std::string SseData(const Json& j);
// JSON text for the wire (invalid UTF-8 replaced, never throws).
std::string Dump(const Json& j);

}  // namespace spool::server
