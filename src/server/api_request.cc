#include "server/api_request.h"

#include <cmath>
#include <random>

#include "base/json_input.h"
#include "chat/reasoning.h"

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
  JsonParseFailure failure = JsonParseFailure::kNone;
  auto parsed = ParseJsonBounded(text, "request body", JsonLimits{}, &failure);
  if (!parsed.ok() && failure != JsonParseFailure::kSyntax) {
    ApiError e{400, parsed.status().message() + " (this server's limit; flatten the request)"};
    e.code = "request_too_complex";
    return e;
  }
  if (parsed.ok()) *out = std::move(parsed).value();
  if (!parsed.ok())
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
  // The message shows the value as sent (no wrap or clamp of huge numbers).
  auto out_of_range = [&](bool below = false) {
    ApiError e = FieldError(field, "Invalid value for '" + field + "': expected an integer in [" + std::to_string(lo) + ", " +
                                       std::to_string(hi) + "], but got " + it->dump() + ".");
    e.code = below ? "integer_below_min_value" : "integer_above_max_value";
    return e;
  };
  int64_t v;
  if (it->is_number_integer() && !it->is_number_unsigned()) {
    v = it->get<int64_t>();
  } else if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return out_of_range();
    v = static_cast<int64_t>(u);
  } else if (it->is_number_float() && std::isfinite(it->get<double>()) &&
             std::nearbyint(it->get<double>()) == it->get<double>()) {
    const double d = it->get<double>();
    // [-2^63, 2^63): the doubles that convert to int64 without overflow.
    if (d < -9223372036854775808.0) return out_of_range(true);
    if (d >= 9223372036854775808.0) return out_of_range();
    v = static_cast<int64_t>(d);
  } else {
    return TypeError(field, "an integer", *it);
  }
  if (v < lo) return out_of_range(true);
  if (v > hi) return out_of_range();
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

// "logit_bias": {"<token id>": bias in [-100, 100], ...} (OpenAI). Ids are checked
// against the vocabulary later (CheckLogitBias), when the model is known.
std::optional<ApiError> ReadLogitBias(const Json& obj, const std::string& path, sampling::SamplingParams* out) {
  auto it = obj.find("logit_bias");
  if (it == obj.end() || it->is_null()) return std::nullopt;
  const std::string field = path + "logit_bias";
  if (!it->is_object()) return TypeError(field, "an object mapping token ids to biases", *it);
  if (it->size() > kMaxLogitBiasEntries)
    return FieldError(field, "Invalid '" + field + "': at most " + std::to_string(kMaxLogitBiasEntries) + " entries, got " +
                                 std::to_string(it->size()) + ".");
  out->logit_bias.clear();
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    const std::string& key = kv.key();
    const std::string kf = field + "." + key.substr(0, 32);
    bool digits = !key.empty() && key.size() <= 10;
    for (char c : key) digits = digits && c >= '0' && c <= '9';
    const long long id = digits ? std::stoll(key) : -1;
    if (!digits || id > INT32_MAX)
      return FieldError(field, "Invalid key in '" + field + "': expected a token id (a non-negative integer as a string), but got \"" +
                                   key.substr(0, 32) + "\".");
    const Json& b = kv.value();
    if (!b.is_number()) return TypeError(kf, "a number", b);
    const double bias = b.get<double>();
    if (!(bias >= -sampling::SamplingParams::kMaxLogitBias && bias <= sampling::SamplingParams::kMaxLogitBias))
      return FieldError(kf, "Invalid value for '" + kf + "': expected a number in [-100, 100], but got " + b.dump() + ".");
    out->logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
  }
  return std::nullopt;
}

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
  SPOOL_API_TRY(ReadInt(obj, path, "seed", INT64_MIN, INT64_MAX, &i));  // OpenAI: any int64
  if (i) s.seed = static_cast<uint64_t>(*i), out->seed_given = true, i.reset();
  SPOOL_API_TRY(ReadStop(obj, path, &out->stop));
  SPOOL_API_TRY(ReadBool(obj, path, "ignore_eos", &out->ignore_eos));
  SPOOL_API_TRY(ReadLogitBias(obj, path, &out->sampling));
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
    } else if (content == m.end() || content->is_null()) {
      // OpenAI allows null content (assistant turns with tool_calls, tool results).
      // Templates see "" so that `'...' + message['content']` renders; transformers
      // would pass None, which most templates treat like "" (`if message.content`).
      msg["content"] = "";
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

// reasoning_effort, chat_template_kwargs, reasoning_format (chat requests).
std::optional<ApiError> ReadTemplateFields(const Json& body, GenerationSpec* out) {
  auto kw = body.find("chat_template_kwargs");
  if (kw != body.end() && !kw->is_null()) {
    if (!kw->is_object()) return TypeError("chat_template_kwargs", "an object", *kw);
    for (auto& [k, v] : kw->items()) out->template_vars[k] = v;
  }
  std::string effort;
  SPOOL_API_TRY(ReadString(body, "", "reasoning_effort", &effort));
  if (!effort.empty()) out->template_vars["reasoning_effort"] = effort;
  SPOOL_API_TRY(ReadString(body, "", "reasoning_format", &out->reasoning_format));
  if (!out->reasoning_format.empty() && !chat::ParseReasoningFormat(out->reasoning_format).ok())
    return FieldError("reasoning_format", "Invalid value for 'reasoning_format': expected one of auto, none, think, harmony, but got \"" +
                                              out->reasoning_format.substr(0, 32) + "\".");
  return std::nullopt;
}

}  // namespace

static std::optional<ApiError> ReadSpeculative(const Json& body, SpeculativeRequest* out) {
  auto it = body.find("speculative");
  if (it == body.end() || it->is_null()) return std::nullopt;
  out->given = true;
  if (it->is_boolean()) {
    out->use_default = it->get<bool>();
    return std::nullopt;
  }
  if (!it->is_object()) return TypeError("speculative", "a boolean or an object", *it);
  for (auto f = it->begin(); f != it->end(); ++f)
    if (f.key() != "lookup" && f.key() != "draft" && f.key() != "max_draft" && f.key() != "draft_tree")
      return FieldError("speculative." + f.key(), "Unknown field 'speculative." + f.key() +
                                                      "': expected lookup, draft, max_draft or draft_tree.");
  SPOOL_API_TRY(ReadBool(*it, "speculative.", "lookup", &out->lookup));
  SPOOL_API_TRY(ReadBool(*it, "speculative.", "draft", &out->draft));
  SPOOL_API_TRY(ReadInt(*it, "speculative.", "max_draft", 1, 64, &out->max_draft));
  SPOOL_API_TRY(ReadInt(*it, "speculative.", "draft_tree", 0, 64, &out->draft_tree));
  if (out->lookup && out->draft)
    return FieldError("speculative", "Invalid 'speculative': 'lookup' and 'draft' exclude each other.");
  return std::nullopt;
}

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
    SPOOL_API_TRY(ReadTemplateFields(body, out));
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
  SPOOL_API_TRY(ReadBool(body, "", "return_progress", &out->return_progress));
  auto so = body.find("stream_options");
  if (so != body.end() && !so->is_null()) {
    if (!so->is_object()) return TypeError("stream_options", "an object", *so);
    if (!out->stream) return FieldError("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    SPOOL_API_TRY(ReadBool(*so, "stream_options.", "include_usage", &out->include_usage));
  }
  std::optional<int64_t> i;
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    SPOOL_API_TRY(ReadInt(body, "", name, 1, kMaxTokensLimit, &i));
    if (!i) continue;
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
  SPOOL_API_TRY(ReadSpeculative(body, &out->speculative));
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
  // think: true/false (enable_thinking, Qwen3 templates) or "low"/"medium"/"high"
  // (gpt-oss: reasoning_effort), as Ollama accepts it.
  auto think = body.find("think");
  if (think != body.end() && !think->is_null()) {
    if (think->is_boolean()) {
      out->template_vars["enable_thinking"] = think->get<bool>();
    } else if (think->is_string() && (*think == "low" || *think == "medium" || *think == "high")) {
      out->template_vars["enable_thinking"] = true;
      out->template_vars["reasoning_effort"] = *think;
    } else {
      return FieldError("think", "Invalid value for 'think': expected true, false, \"low\", \"medium\" or \"high\", but got " +
                                     think->dump().substr(0, 64) + ".");
    }
  }
  auto opts = body.find("options");
  if (opts != body.end() && !opts->is_null()) {
    if (!opts->is_object()) return TypeError("options", "an object", *opts);
    SPOOL_API_TRY(ReadSampling(*opts, "options.", out));
    std::optional<int64_t> n;
    // Ollama: -1 means "until the context is full".
    SPOOL_API_TRY(ReadInt(*opts, "options.", "num_predict", -1, kMaxTokensLimit, &n));
    if (n) out->max_tokens = *n;
  }
  SPOOL_API_TRY(ReadString(body, "", "session", &out->session));
  SPOOL_API_TRY(ReadSpeculative(body, &out->speculative));
  return std::nullopt;
}

std::optional<ApiError> ResolveSpeculative(const SpeculativeRequest& r, const runtime::SpeculativeOptions& server_default,
                                           bool has_draft_model, bool ollama, runtime::SpeculativeOptions* out) {
  (void)ollama;  // the field is top-level in both APIs
  *out = server_default;
  if (!r.given) return std::nullopt;
  if (!r.use_default && !r.lookup && !r.draft) {  // false, or an object asking for neither
    out->lookup = out->draft_model = false;
    return std::nullopt;
  }
  if (r.use_default) {
    if (!out->enabled()) out->lookup = true;
    return std::nullopt;
  }
  out->lookup = r.lookup;
  out->draft_model = r.draft;
  if (r.max_draft) out->max_draft = *r.max_draft;
  if (r.draft_tree) out->tree_nodes = *r.draft_tree;
  if (!out->draft_model) out->sample_drafts = false;  // sampled drafts are a draft model's
  if (out->sample_drafts && out->tree_nodes > 0)
    return FieldError("speculative.draft_tree", "Invalid 'speculative.draft_tree': the server samples its drafts "
                                                "(--draft-sample), which checks chains only; use 0.");
  if (r.draft && !has_draft_model)
    return FieldError("speculative.draft", "Invalid 'speculative.draft': this server has no draft model (start it "
                                           "with --draft MODEL); use {\"lookup\": true} instead.");
  return std::nullopt;
}

std::optional<ApiError> CheckLogitBias(const sampling::SamplingParams& params, int32_t n_vocab, bool ollama) {
  const char* field = ollama ? "options.logit_bias" : "logit_bias";
  for (const auto& [id, bias] : params.logit_bias)
    if (id < 0 || id >= n_vocab)
      return FieldError(field, std::string("Invalid key in '") + field + "': token id " + std::to_string(id) +
                                   " is outside the vocabulary [0, " + std::to_string(n_vocab) + ").");
  return std::nullopt;
}

ApiError ApiErrorFromStatus(const Status& st) {
  switch (st.code()) {
    case ErrorCode::kInvalidArgument:
      return ApiError{400, st.message()};
    case ErrorCode::kResourceExhausted:
      // During generation this is the KV cache's disk (full, or --kv-max-disk reached):
      // the server's storage, not the request. The message names no server path.
      return ApiError{507,
                      "The server ran out of storage for this request's KV cache (its KV disk is full or at its "
                      "--kv-max-disk limit). Retry later or with a shorter request.",
                      "server_error", "", "insufficient_storage"};
    case ErrorCode::kCancelled:
      return ApiError{503, st.message(), "server_error"};
    default:
      // I/O and internal failures carry file paths: the details go to the server's log.
      return ApiError{500, "The server failed while processing this request (details are in the server's log).",
                      "server_error"};
  }
}

}  // namespace spool::server
