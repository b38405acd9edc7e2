// Request bodies of the HTTP API (OpenAI and Ollama), parsed and validated into one
// GenerationSpec. Bodies are untrusted: every field is type- and range-checked and a
// failure comes back as an ApiError that names the field and says expected vs actual.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "runtime/speculative.h"
#include "sampling/sampler.h"

namespace spool::server {

using Json = nlohmann::ordered_json;

// An error as OpenAI reports it: HTTP status + {"error": {message, type, param, code}}.
struct ApiError {
  ApiError() = default;
  ApiError(int status_, std::string message_, std::string type_ = "invalid_request_error", std::string param_ = "",
           std::string code_ = "")
      : status(status_), message(std::move(message_)), type(std::move(type_)), param(std::move(param_)), code(std::move(code_)) {}
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" → null
  std::string code;   // "" → null
  Json ToJson() const;
};

enum class ApiKind { kOpenAIChat, kOpenAICompletion, kOllamaChat, kOllamaGenerate };

struct SpeculativeRequest {
  bool given = false;        // the field was present (else: the server's default)
  bool use_default = false;  // `true`
  bool lookup = false, draft = false;
  std::optional<int64_t> max_draft;
  std::optional<int64_t> draft_tree;  // node budget of draft trees (0: chains)
};

struct GenerationSpec {
  ApiKind kind = ApiKind::kOpenAIChat;
  std::string model;                 // "" when the request names none
  bool chat = true;                  // true: render `messages` with the chat template
  Json messages = Json::array();     // [{role, content(string), ...}] (content parts joined)
  Json tools;                        // null or an array
  // Extra chat template variables: OpenAI `reasoning_effort` and `chat_template_kwargs`
  // (vLLM, llama-server), Ollama `think` (enable_thinking, or reasoning_effort when a
  // level string).
  Json template_vars = Json::object();
  std::string reasoning_format;      // per-request override of --reasoning-format ("" = the server's)
  std::string prompt_text;           // completion prompt (when !chat and !has_prompt_ids)
  std::vector<int32_t> prompt_ids;   // completion prompt given as token ids
  bool has_prompt_ids = false;
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  bool return_progress = false;      // llama-server's return_progress: prompt_progress chunks while prefilling (stream only)
  int64_t max_tokens = -1;           // -1: not given (up to the context)
  sampling::SamplingParams sampling;
  bool seed_given = false;
  std::vector<std::string> stop;
  std::string session;               // prefix-cache key: "session", else "user"
  bool cache_prompt = true;          // false: never start from a cached prefix
  bool ignore_eos = false;
  // "speculative" (top level, both APIs): false (off), true (the server's drafter, or
  // prompt lookup when it has none), or {"lookup": bool, "draft": bool, "max_draft": 1..64}
  // ("draft": the server's --draft model). Absent: the server's default (its flags).
  SpeculativeRequest speculative;
};

// Bounds of request fields (a value outside gets a 400 that states the range).
inline constexpr int64_t kMaxTokensLimit = INT32_MAX;   // max_tokens, max_completion_tokens, options.num_predict
inline constexpr size_t kMaxLogitBiasEntries = 1024;    // entries of logit_bias

// The drafter a request gets: its "speculative" field over the server's default
// (`spool serve --lookup | --draft MODEL`, --draft-max). A 400 naming the field when it
// asks for a draft model the server was not started with.
std::optional<ApiError> ResolveSpeculative(const SpeculativeRequest& request, const runtime::SpeculativeOptions& server_default,
                                           bool has_draft_model, bool ollama, runtime::SpeculativeOptions* out);

// OpenAI POST /v1/chat/completions and /v1/completions bodies.
std::optional<ApiError> ParseOpenAIRequest(const Json& body, ApiKind kind, GenerationSpec* out);
// Ollama POST /api/chat and /api/generate bodies (sampling fields under "options").
std::optional<ApiError> ParseOllamaRequest(const Json& body, ApiKind kind, GenerationSpec* out);

// logit_bias ids against the model's vocabulary (the parsers check only the form).
std::optional<ApiError> CheckLogitBias(const sampling::SamplingParams& params, int32_t n_vocab, bool ollama);

// A scheduler/engine error as the HTTP error a client sees: kInvalidArgument 400,
// kResourceExhausted (KV disk full / --kv-max-disk) 507 "insufficient_storage",
// kCancelled 503, anything else 500. 507 and 500 carry a fixed message (no server
// paths); the caller logs st.message().
ApiError ApiErrorFromStatus(const Status& st);

// Parses a request body (base/json_input.h limits: depth 128, 2^20 values; a body
// beyond them is a 400 "request_too_complex"); a malformed body or a non-object gives the ApiError.
std::optional<ApiError> ParseJsonBody(const std::string& text, Json* out);

// "JSON type name" of a value for error messages ("string", "number", "array", ...).
std::string JsonTypeName(const Json& v);

}  // namespace spool::server
