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

Json OpenAIResponse(const ResponseMeta& m, bool chat, const runtime::Completion& c) {
  Json choice;
  if (chat) {
    choice = Json{{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
                  {"logprobs", nullptr},
                  {"finish_reason", c.finish_reason}};
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

Json OllamaFinal(const std::string& model, bool chat, const std::string& full_text, const runtime::Completion& c,
                 double total_seconds) {
  auto ns = [](double s) { return static_cast<int64_t>(s * 1e9); };
  Json j{{"model", model}, {"created_at", IsoTimeNow()}};
  if (chat) j["message"] = Json{{"role", "assistant"}, {"content", full_text}};
  else j["response"] = full_text;
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
