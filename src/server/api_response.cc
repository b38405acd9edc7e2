#include "server/api_response.h"

#include <ctime>

namespace spool::server {

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string SseData(const Json& j) { return "data: " + Dump(j) + "\n\n"; }

Json OpenAIUsage(const runtime::Completion& c) {
  const int64_t completion = static_cast<int64_t>(c.ids.size());
  return Json{{"prompt_tokens", c.prompt_tokens},
              {"completion_tokens", completion},
              {"total_tokens", c.prompt_tokens + completion},
              {"prompt_tokens_details", {{"cached_tokens", c.cached_prompt_tokens}}}};
}

AssistantParts ToParts(chat::SplitOutput split) {
  return AssistantParts{std::move(split.reasoning), std::move(split.content), std::move(split.tool_calls)};
}

std::string ChatFinishReason(const runtime::Completion& c, bool called_tools) {
  return called_tools && c.finish_reason == "stop" ? "tool_calls" : c.finish_reason;
}

namespace {

Json OpenAIToolCall(const chat::ToolCall& t) {
  return Json{{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}};
}

// Ollama sends arguments as an object; the splitter checked that they parse as one.
Json OllamaToolCall(const chat::ToolCall& t) {
  Json args = Json::parse(t.arguments, nullptr, /*allow_exceptions=*/false);
  if (args.is_discarded()) args = Json::object();
  return Json{{"function", {{"name", t.name}, {"arguments", args}}}};
}

}  // namespace

Json OpenAIResponse(const ResponseMeta& m, bool chat, const runtime::Completion& c, const AssistantParts* parts) {
  Json choice;
  if (chat) {
    Json message{{"role", "assistant"}, {"content", parts ? parts->content : c.text}};
    if (parts && !parts->reasoning.empty()) message["reasoning_content"] = parts->reasoning;
    if (parts && !parts->tool_calls.empty()) {
      if (parts->content.empty()) message["content"] = nullptr;
      Json calls = Json::array();
      for (const chat::ToolCall& t : parts->tool_calls) calls.push_back(OpenAIToolCall(t));
      message["tool_calls"] = calls;
    }
    message["refusal"] = nullptr;
    choice = Json{{"index", 0},
                  {"message", message},
                  {"logprobs", nullptr},
                  {"finish_reason", ChatFinishReason(c, parts && !parts->tool_calls.empty())}};
  } else {
    choice = Json{{"text", c.text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", c.finish_reason}};
  }
  return Json{{"id", m.id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", m.created},
              {"model", m.model},
              {"system_fingerprint", m.fingerprint},
              {"choices", Json::array({choice})},
              {"usage", OpenAIUsage(c)}};
}

Json OpenAIChunk(const ResponseMeta& m, bool chat, const std::string& text, bool role_chunk,
                 const std::string& finish_reason, bool include_usage) {
  Json finish = finish_reason.empty() ? Json(nullptr) : Json(finish_reason);
  Json choice;
  if (chat) {
    Json delta = Json::object();
    if (role_chunk) delta = Json{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}};
    else if (finish_reason.empty()) delta = Json{{"content", text}};
    choice = Json{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}};
  } else {
    choice = Json{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  }
  Json j{{"id", m.id},
         {"object", chat ? "chat.completion.chunk" : "text_completion"},
         {"created", m.created},
         {"model", m.model},
         {"system_fingerprint", m.fingerprint},
         {"choices", Json::array({choice})}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

Json OpenAIDeltaChunk(const ResponseMeta& m, const chat::ReasoningDelta& d, size_t first_tool_index, bool include_usage) {
  Json j = OpenAIChunk(m, true, d.content, false, "", include_usage);
  Json delta = Json::object();
  if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) delta["content"] = d.content;
  if (!d.tool_calls.empty()) {
    Json calls = Json::array();
    for (size_t i = 0; i < d.tool_calls.size(); ++i) {
      Json call = OpenAIToolCall(d.tool_calls[i]);
      call["index"] = first_tool_index + i;
      calls.push_back(call);
    }
    delta["tool_calls"] = calls;
  }
  j["choices"][0]["delta"] = delta;
  return j;
}

Json OpenAIUsageChunk(const ResponseMeta& m, bool chat, const runtime::Completion& c) {
  return Json{{"id", m.id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", m.created},
              {"model", m.model},
              {"system_fingerprint", m.fingerprint},
              {"choices", Json::array()},
              {"usage", OpenAIUsage(c)}};
}

std::string IsoTimeNow() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof out, "%s.%06ldZ", buf, ts.tv_nsec / 1000);
  return out;
}

Json OllamaChunk(const std::string& model, bool chat, const std::string& text) {
  Json j{{"model", model}, {"created_at", IsoTimeNow()}};
  if (chat) j["message"] = Json{{"role", "assistant"}, {"content", text}};
  else j["response"] = text;
  j["done"] = false;
  return j;
}

Json OllamaDeltaChunk(const std::string& model, const chat::ReasoningDelta& d) {
  Json j = OllamaChunk(model, true, d.content);
  if (!d.reasoning.empty()) j["message"]["thinking"] = d.reasoning;
  if (!d.tool_calls.empty()) {
    Json calls = Json::array();
    for (const chat::ToolCall& t : d.tool_calls) calls.push_back(OllamaToolCall(t));
    j["message"]["tool_calls"] = calls;
  }
  return j;
}

Json OllamaFinal(const std::string& model, bool chat, const std::string& full_text, const runtime::Completion& c,
                 double total_seconds, const AssistantParts* parts) {
  auto ns = [](double s) { return static_cast<int64_t>(s * 1e9); };
  Json j{{"model", model}, {"created_at", IsoTimeNow()}};
  if (chat) {
    j["message"] = Json{{"role", "assistant"}, {"content", parts ? parts->content : full_text}};
    if (parts && !parts->reasoning.empty()) j["message"]["thinking"] = parts->reasoning;
    if (parts && !parts->tool_calls.empty()) {
      Json calls = Json::array();
      for (const chat::ToolCall& t : parts->tool_calls) calls.push_back(OllamaToolCall(t));
      j["message"]["tool_calls"] = calls;
    }
  } else {
    j["response"] = full_text;
  }
  j["done"] = true;
  j["done_reason"] = c.finish_reason;
  j["total_duration"] = ns(total_seconds);
  j["load_duration"] = 0;
  j["prompt_eval_count"] = c.prompt_tokens;
  j["prompt_eval_duration"] = ns(c.prefill_seconds);
  j["eval_count"] = static_cast<int64_t>(c.ids.size());
  j["eval_duration"] = ns(c.decode_seconds);
  return j;
}

}  // namespace spool::server
