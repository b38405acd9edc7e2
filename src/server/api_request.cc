#include "server/api_request.h"

#include <cmath>
#include <random>

namespace spool::server {

Json ApiError::ToJson() const {
  Json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return Json{{"error", e}};
}

std::string JsonTypeName(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

std::optional<ApiError> ParseJsonBody(const std::string& text, Json* out) {
  *out = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded())
    return ApiError{400,
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                    "HTTP library correctly. The OpenAI API expects a JSON payload.)"};
  if (!out->is_object())
    return ApiError{400, "The request body must be a JSON object, got " + JsonTypeName(*out)};
  return std::nullopt;
}

namespace {

ApiError FieldError(const std::string& field, const std::string& message) {
  ApiError e{400, message};
  e.param = field;
  return e;
}

ApiError TypeError(const std::string& field, const std::string& expected, const Json& got) {
  return FieldError(field, "Invalid type for '" + field + "': expected " + expected + ", but got " + JsonTypeName(got) + ".");
}

// Field readers: absent or null leaves *out unchanged and returns nullopt.
std::optional<ApiError> ReadNumber(const Json& obj, const std::string& path, const char* name, double lo, double hi,
                                   std::optional<double>* out) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  const std::string field = path + name;
  if (!it->is_number()) return TypeError(field, "a number", *it);
  double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return FieldError(field, "Invalid value for '" + field + "': expected a number in [" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + "], but got " + it->dump() + ".");
  *out = v;
  return std::nullopt;
}

std::optional<ApiError> ReadInt(const Json& obj, const std::string& path, const char* name, int64_t lo, int64_t hi,
                                std::optional<int64_t>* out) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  const std::string field = path + name;
  int64_t v;
  if (it->is_number_integer()) {
    v = it->get<int64_t>();
  } else if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    v = u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  } else if (it->is_number_float() && std::nearbyint(it->get<double>()) == it->get<double>() &&
             std::fabs(it->get<double>()) < 9e18) {
    v = static_cast<int64_t>(it->get<double>());
  } else {
    return TypeError(field, "an integer", *it);
  }
  if (v < lo || v > hi)
    return FieldError(field, "Invalid value for '" + field + "': expected an integer in [" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + "], but got " + std::to_string(v) + ".");
  *out = v;
  return std::nullopt;
}

std::optional<ApiError> ReadBool(const Json& obj, const std::string& path, const char* name, bool* out) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return TypeError(path + name, "a boolean", *it);
  *out = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> ReadString(const Json& obj, const std::string& path, const char* name, std::string* out) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return TypeError(path + name, "a string", *it);
  *out = it->get<std::string>();
  return std::nullopt;
}

// "stop": a string or an array of at most 16 strings.
std::optional<ApiError> ReadStop(const Json& obj, const std::string& path, std::vector<std::string>* out) {
  auto it = obj.find("stop");
  if (it == obj.end() || it->is_null()) return std::nullopt;
  const std::string field = path + "stop";
  if (it->is_string()) {
    if (!it->get<std::string>().empty()) out->push_back(it->get<std::string>());
    return std::nullopt;
  }
  if (!it->is_array()) return TypeError(field, "a string or an array of strings", *it);
  if (it->size() > 16) return FieldError(field, "Invalid value for '" + field + "': at most 16 stop sequences, got " + std::to_string(it->size()) + ".");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& s = (*it)[i];
    if (!s.is_string()) return TypeError(field + "[" + std::to_string(i) + "]", "a string", s);
    if (!s.get<std::string>().empty()) out->push_back(s.get<std::string>());
  }
  return std::nullopt;
}

#define SPOOL_API_TRY(expr)      \
  do {                           \
    if (auto _e = (expr)) return _e; \
  } while (0)

// Sampling defaults of the OpenAI API: temperature 1, top_p 1, nothing else.
sampling::SamplingParams ApiDefaults() {
  sampling::SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.penalty_last_n = -1;
  p.seed = std::random_device{}();
  return p;
}

// Sampling fields shared by both APIs (names as OpenAI and llama.cpp spell them).
std::optional<ApiError> ReadSampling(const Json& obj, const std::string& path, GenerationSpec* out) {
  std::optional<double> d;
  std::optional<int64_t> i;
  auto& s = out->sampling;
  SPOOL_API_TRY(ReadNumber(obj, path, "temperature", 0, 2, &d));
  if (d) s.temperature = static_cast<float>(*d), d.reset();
  SPOOL_API_TRY(ReadNumber(obj, path, "top_p", 0, 1, &d));
  if (d) s.top_p = static_cast<float>(*d), d.reset();
  SPOOL_API_TRY(ReadNumber(obj, path, "min_p", 0, 1, &d));
  if (d) s.min_p = static_cast<float>(*d), d.reset();
  SPOOL_API_TRY(ReadNumber(obj, path, "presence_penalty", -2, 2, &d));
  if (d) s.presence_penalty = static_cast<float>(*d), d.reset();
  SPOOL_API_TRY(ReadNumber(obj, path, "frequency_penalty", -2, 2, &d));
  if (d) s.frequency_penalty = static_cast<float>(*d), d.reset();
  SPOOL_API_TRY(ReadNumber(obj, path, "repeat_penalty", 1e-3, 100, &d));
  if (d) s.repeat_penalty = static_cast<float>(*d), d.reset();
  SPOOL_API_TRY(ReadInt(obj, path, "top_k", 0, 1 << 30, &i));
  if (i) s.top_k = static_cast<int32_t>(*i), i.reset();
  SPOOL_API_TRY(ReadInt(obj, path, "repeat_last_n", -1, 1 << 30, &i));
  if (i) s.penalty_last_n = static_cast<int32_t>(*i), i.reset();
  SPOOL_API_TRY(ReadInt(obj, path, "seed", INT64_MIN, INT64_MAX, &i));
  if (i) s.seed = static_cast<uint64_t>(*i), out->seed_given = true, i.reset();
  SPOOL_API_TRY(ReadStop(obj, path, &out->stop));
  SPOOL_API_TRY(ReadBool(obj, path, "ignore_eos", &out->ignore_eos));
  return std::nullopt;
}

// Chat messages: a non-empty array of {role: string, content: string | [parts] | null}.
// Content parts of type "text" are joined; other part types are rejected.
std::optional<ApiError> ReadMessages(const Json& body, Json* out) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return FieldError("messages", "Missing required parameter: 'messages'.");
  if (!it->is_array()) return TypeError("messages", "an array", *it);
  if (it->empty()) return FieldError("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.");
  *out = Json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string field = "messages[" + std::to_string(i) + "]";
    const Json& m = (*it)[i];
    if (!m.is_object()) return TypeError(field, "an object", m);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return FieldError(field + ".role", "Missing or invalid '" + field + ".role': expected a string.");
    Json msg = m;
    auto content = m.find("content");
    if (content != m.end() && content->is_array()) {
      std::string joined;
      for (size_t k = 0; k < content->size(); ++k) {
        const Json& part = (*content)[k];
        const std::string pf = field + ".content[" + std::to_string(k) + "]";
        if (!part.is_object()) return TypeError(pf, "an object", part);
        auto type = part.find("type");
        auto text = part.find("text");
        if (type == part.end() || !type->is_string() || type->get<std::string>() != "text")
          return FieldError(pf + ".type", "Unsupported content part in '" + pf + "': only type 'text' is supported.");
        if (text == part.end() || !text->is_string()) return FieldError(pf + ".text", "Missing or invalid '" + pf + ".text': expected a string.");
        joined += text->get<std::string>();
      }
      msg["content"] = joined;
    } else if (content != m.end() && !content->is_string() && !content->is_null()) {
      return TypeError(field + ".content", "a string or an array of content parts", *content);
    }
    out->push_back(std::move(msg));
  }
  return std::nullopt;
}

// Completion prompt: a string, [string], [int...] or [[int...]]; one prompt per request.
std::optional<ApiError> ReadPrompt(const Json& body, GenerationSpec* out) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return FieldError("prompt", "Missing required parameter: 'prompt'.");
  const Json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    out->prompt_text = p->get<std::string>();
    return std::nullopt;
  }
  if (p->is_array()) {
    if (p->empty()) return FieldError("prompt", "Invalid 'prompt': empty array.");
    for (size_t i = 0; i < p->size(); ++i) {
      const Json& v = (*p)[i];
      if (v.is_string() || v.is_array())
        return FieldError("prompt", "Invalid 'prompt': only one prompt per request is supported (n=1).");
      if (!v.is_number_integer() && !v.is_number_unsigned())
        return TypeError("prompt[" + std::to_string(i) + "]", "an integer token id", v);
      int64_t id = v.is_number_unsigned() ? INT64_MAX : v.get<int64_t>();
      if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT32_MAX)) id = static_cast<int64_t>(v.get<uint64_t>());
      if (id < 0 || id > INT32_MAX) return FieldError("prompt[" + std::to_string(i) + "]", "Invalid token id " + v.dump() + ".");
      out->prompt_ids.push_back(static_cast<int32_t>(id));
    }
    out->has_prompt_ids = true;
    return std::nullopt;
  }
  return TypeError("prompt", "a string, an array of strings or an array of token ids", *p);
}

}  // namespace

std::optional<ApiError> ParseOpenAIRequest(const Json& body, ApiKind kind, GenerationSpec* out) {
  *out = GenerationSpec{};
  out->kind = kind;
  out->sampling = ApiDefaults();
  SPOOL_API_TRY(ReadString(body, "", "model", &out->model));
  if (kind == ApiKind::kOpenAIChat) {
    out->chat = true;
    SPOOL_API_TRY(ReadMessages(body, &out->messages));
    auto tools = body.find("tools");
    if (tools != body.end() && !tools->is_null()) {
      if (!tools->is_array()) return TypeError("tools", "an array", *tools);
      out->tools = *tools;
    }
  } else {
    out->chat = false;
    SPOOL_API_TRY(ReadPrompt(body, out));
    bool echo = false;
    SPOOL_API_TRY(ReadBool(body, "", "echo", &echo));
    if (echo) return FieldError("echo", "'echo' is not supported by this server.");
    std::string suffix;
    SPOOL_API_TRY(ReadString(body, "", "suffix", &suffix));
    if (!suffix.empty()) return FieldError("suffix", "'suffix' is not supported by this server.");
    std::optional<int64_t> best_of;
    SPOOL_API_TRY(ReadInt(body, "", "best_of", 1, 1, &best_of));
  }
  SPOOL_API_TRY(ReadBool(body, "", "stream", &out->stream));
  auto so = body.find("stream_options");
  if (so != body.end() && !so->is_null()) {
    if (!so->is_object()) return TypeError("stream_options", "an object", *so);
    if (!out->stream) return FieldError("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    SPOOL_API_TRY(ReadBool(*so, "stream_options.", "include_usage", &out->include_usage));
  }
  std::optional<int64_t> i;
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    SPOOL_API_TRY(ReadInt(body, "", name, INT64_MIN, INT64_MAX, &i));
    if (!i) continue;
    if (*i < 1) {
      ApiError e = FieldError(name, std::string("Invalid '") + name + "': integer below minimum value. Expected a value >= 1, but got " +
                                        std::to_string(*i) + " instead.");
      e.code = "integer_below_min_value";
      return e;
    }
    out->max_tokens = *i;
    i.reset();
  }
  SPOOL_API_TRY(ReadInt(body, "", "n", 1, 1, &i));
  auto lp = body.find("logprobs");
  if (lp != body.end() && !lp->is_null() && !(lp->is_boolean() && !lp->get<bool>()))
    return FieldError("logprobs", "'logprobs' is not supported by this server.");
  SPOOL_API_TRY(ReadSampling(body, "", out));
  SPOOL_API_TRY(ReadString(body, "", "user", &out->session));
  SPOOL_API_TRY(ReadString(body, "", "session", &out->session));
  SPOOL_API_TRY(ReadBool(body, "", "cache_prompt", &out->cache_prompt));
  return std::nullopt;
}

std::optional<ApiError> ParseOllamaRequest(const Json& body, ApiKind kind, GenerationSpec* out) {
  *out = GenerationSpec{};
  out->kind = kind;
  // Ollama's defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1 over 64).
  out->sampling.temperature = 0.8f;
  out->sampling.top_k = 40;
  out->sampling.top_p = 0.9f;
  out->sampling.min_p = 0.0f;
  out->sampling.repeat_penalty = 1.1f;
  out->sampling.penalty_last_n = 64;
  out->sampling.seed = std::random_device{}();
  out->stream = true;  // Ollama streams unless told not to
  SPOOL_API_TRY(ReadString(body, "", "model", &out->model));
  SPOOL_API_TRY(ReadBool(body, "", "stream", &out->stream));
  if (kind == ApiKind::kOllamaChat) {
    out->chat = true;
    SPOOL_API_TRY(ReadMessages(body, &out->messages));
    auto tools = body.find("tools");
    if (tools != body.end() && !tools->is_null()) {
      if (!tools->is_array()) return TypeError("tools", "an array", *tools);
      out->tools = *tools;
    }
  } else {
    std::string prompt, system;
    SPOOL_API_TRY(ReadString(body, "", "prompt", &prompt));
    SPOOL_API_TRY(ReadString(body, "", "system", &system));
    bool raw = false;
    SPOOL_API_TRY(ReadBool(body, "", "raw", &raw));
    if (raw) {
      out->chat = false;
      out->prompt_text = prompt;
    } else {
      out->chat = true;
      if (!system.empty()) out->messages.push_back({{"role", "system"}, {"content", system}});
      out->messages.push_back({{"role", "user"}, {"content", prompt}});
    }
  }
  auto opts = body.find("options");
  if (opts != body.end() && !opts->is_null()) {
    if (!opts->is_object()) return TypeError("options", "an object", *opts);
    SPOOL_API_TRY(ReadSampling(*opts, "options.", out));
    std::optional<int64_t> n;
    SPOOL_API_TRY(ReadInt(*opts, "options.", "num_predict", INT64_MIN, INT64_MAX, &n));
    // Ollama: -1 means "until the context is full".
    if (n) {
      if (*n < -1) return FieldError("options.num_predict", "Invalid value for 'options.num_predict': expected -1 or an integer >= 0, but got " + std::to_string(*n) + ".");
      out->max_tokens = *n;
    }
  }
  SPOOL_API_TRY(ReadString(body, "", "session", &out->session));
  return std::nullopt;
}

}  // namespace spool::server
