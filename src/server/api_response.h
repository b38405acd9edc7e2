// Response bodies of the HTTP API, shaped exactly as OpenAI and Ollama send them.
#pragma once

#include <cstdint>
#include <string>

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

// usage: {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details{cached_tokens}}.
Json OpenAIUsage(const runtime::Completion& c);
// Non-streamed chat.completion / text_completion object.
Json OpenAIResponse(const ResponseMeta& m, bool chat, const runtime::Completion& c);
// One streamed chunk. chat: delta = {"role":"assistant","content":""} when `role_chunk`,
// {"content": text} for text, {} with finish_reason at the end. Completions: text.
// include_usage adds "usage": null (OpenAI does, on every chunk but the last).
Json OpenAIChunk(const ResponseMeta& m, bool chat, const std::string& text, bool role_chunk,
                 const std::string& finish_reason, bool include_usage);
// The final usage chunk: choices [] and usage.
Json OpenAIUsageChunk(const ResponseMeta& m, bool chat, const runtime::Completion& c);

// Ollama /api/chat and /api/generate objects (streamed as NDJSON lines).
std::string IsoTimeNow();
Json OllamaChunk(const std::string& model, bool chat, const std::string& text);
Json OllamaFinal(const std::string& model, bool chat, const std::string& full_text, const runtime::Completion& c,
                 double total_seconds);

// SSE framing: "data: <json>\n\n".
std::string SseData(const Json& j);
// JSON text for the wire (invalid UTF-8 replaced, never throws).
std::string Dump(const Json& j);

}  // namespace spool::server
