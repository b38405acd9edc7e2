#include "chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_parser.h"
#include "formats/gguf.h"

namespace spool::chat {
namespace {

using jinja::JinjaError;
using jinja::Value;

Value FromJson(const nlohmann::ordered_json& j, int depth = 0) {
  if (depth > 256) jinja::Throw("ValueError", "input JSON nested deeper than 256 levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::None();
    case nlohmann::ordered_json::value_t::boolean: return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      for (const auto& x : j) items.push_back(FromJson(x, depth + 1));
      return Value::List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Value::Dict();
      for (auto it = j.begin(); it != j.end(); ++it) d.dict->entries.emplace_back(Value::Str(it.key()), FromJson(it.value(), depth + 1));
      return d;
    }
    default: return Value::None();
  }
}

ErrorCode CodeFor(const std::string& type) {
  if (type == "TemplateSyntaxError" || type == "TemplateAssertionError") return ErrorCode::kInvalidFile;
  if (type == "LimitError") return ErrorCode::kResourceExhausted;
  return ErrorCode::kInvalidArgument;
}

Status ToStatus(const JinjaError& e, TemplateErrorDetail* detail) {
  if (detail) *detail = TemplateErrorDetail{e.type, e.message, e.line, e.column};
  std::string msg = e.type + ": " + e.message;
  if (e.line > 0) msg += " (line " + std::to_string(e.line) + ", column " + std::to_string(e.column) + ")";
  return Status(CodeFor(e.type), msg);
}

bool IsRegularFile(const std::string& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidFile(path + ": not valid JSON");
  return j;
}

bool LooksLikeGguf(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  return f.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Parse(const std::string& source, const jinja::Limits& limits, TemplateErrorDetail* error) {
  try {
    ChatTemplate t;
    t.body_ = std::make_shared<const jinja::Body>(jinja::ParseTemplate(source, limits.max_nesting));
    return t;
  } catch (const JinjaError& e) {
    return ToStatus(e, error);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("chat template: out of memory while parsing");
  } catch (const std::exception& e) {  // no exception leaves the chat part
    return InternalError(std::string("chat template: unexpected error while parsing: ") + e.what());
  }
}

namespace {

// transformers' `_alias_reasoning_fields` (render_jinja_template): a message's reasoning,
// the first non-null of `reasoning_content`, `thinking`, `reasoning`, is seen by the template
// under both `thinking` (what gpt-oss's template reads) and `reasoning_content` (Qwen3's and
// most others'). Key order as Python's {"thinking": r, **message, "reasoning_content": r}.
nlohmann::ordered_json AliasReasoningFields(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) return messages;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    const nlohmann::ordered_json* reasoning = nullptr;
    if (m.is_object()) {
      for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
        auto it = m.find(key);
        if (it != m.end() && !it->is_null()) {
          reasoning = &*it;
          break;
        }
      }
    }
    if (!reasoning) {
      out.push_back(m);
      continue;
    }
    nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
    aliased["thinking"] = *reasoning;
    for (auto it = m.begin(); it != m.end(); ++it) aliased[it.key()] = it.value();
    aliased["reasoning_content"] = *reasoning;
    out.push_back(std::move(aliased));
  }
  return out;
}

}  // namespace

Result<std::string> ChatTemplate::Render(const ChatTemplateInputs& in, TemplateErrorDetail* error) const {
  if (!in.extra_vars.is_object() && !in.extra_vars.is_null())
    return InvalidArgument("chat template extra variables must be a JSON object, got " + std::string(in.extra_vars.type_name()));
  try {
    jinja::Interp interp(in.limits, in.now_unix_seconds);
    // Input values count against the render's memory budget too.
    jinja::RenderBudgetScope budget_scope(interp.budget());
    // Runs on success and on error, after `globals` (declared below) is gone.
    struct CycleBreaker {
      jinja::RenderBudget* budget;
      ~CycleBreaker() { jinja::BreakCycles(*budget); }
    } cycle_breaker{interp.budget()};
    auto globals = std::make_shared<jinja::Scope>();
    jinja::AddGlobalFunctions(*globals);
    globals->vars["messages"] = FromJson(AliasReasoningFields(in.messages));
    globals->vars["tools"] = FromJson(in.tools);
    globals->vars["documents"] = FromJson(in.documents);
    globals->vars["add_generation_prompt"] = Value::Bool(in.add_generation_prompt);
    globals->vars["bos_token"] = Value::Str(in.bos_token);
    globals->vars["eos_token"] = Value::Str(in.eos_token);
    if (in.extra_vars.is_object()) {
      for (auto it = in.extra_vars.begin(); it != in.extra_vars.end(); ++it) {
        static const char* kReserved[] = {"messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token"};
        for (const char* r : kReserved)
          if (it.key() == r) return InvalidArgument("chat template variable '" + it.key() + "' is set twice (it is a standard variable)");
        globals->vars[it.key()] = FromJson(it.value());
      }
    }
    std::string out = interp.Render(*body_, globals);
    // Break reference cycles (a namespace holding itself) before the scope dies.
    globals->vars.clear();
    return out;
  } catch (const JinjaError& e) {
    return ToStatus(e, error);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("chat template: out of memory while rendering");
  } catch (const std::exception& e) {  // no exception leaves the chat part
    return InternalError(std::string("chat template: unexpected error while rendering: ") + e.what());
  }
}

Result<std::string> RenderChatTemplate(const std::string& source, const ChatTemplateInputs& inputs, TemplateErrorDetail* error) {
  SPOOL_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(source, inputs.limits, error));
  return t.Render(inputs, error);
}

Result<std::string> LoadChatTemplate(const std::string& model_path, const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (IsRegularFile(model_path)) {
    if (!LooksLikeGguf(model_path)) return InvalidArgument(model_path + ": expected a GGUF file or an HF model folder");
    SPOOL_ASSIGN_OR_RETURN(formats::GgufFile gguf, formats::ReadGguf(model_path));
    std::string key = name == "default" ? "tokenizer.chat_template" : "tokenizer.chat_template." + name;
    auto t = gguf.GetString(key);
    if (!t.ok()) return Status(t.status().code(), model_path + ": no chat template (" + t.status().message() + ")");
    return std::move(t).value();
  }
  if (!fs::is_directory(model_path, ec)) return NotFound(model_path + ": no such file or folder");
  fs::path dir(model_path);
  if (name == "default" && IsRegularFile((dir / "chat_template.jinja").string())) return ReadFileToString((dir / "chat_template.jinja").string());
  if (name == "default" && IsRegularFile((dir / "chat_template.json").string())) {
    SPOOL_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonFile((dir / "chat_template.json").string()));
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) return j["chat_template"].get<std::string>();
  }
  std::string cfg_path = (dir / "tokenizer_config.json").string();
  if (!IsRegularFile(cfg_path)) return NotFound(model_path + ": no chat_template.jinja and no tokenizer_config.json");
  SPOOL_ASSIGN_OR_RETURN(nlohmann::json cfg, ReadJsonFile(cfg_path));
  if (!cfg.is_object() || !cfg.contains("chat_template") || cfg["chat_template"].is_null())
    return NotFound(cfg_path + ": no chat_template field");
  const auto& ct = cfg["chat_template"];
  if (ct.is_string()) {
    if (name != "default") return NotFound(cfg_path + ": chat_template has no template named '" + name + "'");
    return ct.get<std::string>();
  }
  if (ct.is_array()) {
    std::string names;
    for (const auto& entry : ct) {
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
          !entry["template"].is_string())
        return InvalidFile(cfg_path + ": chat_template list entries must be {\"name\": string, \"template\": string}");
      if (entry["name"] == name) return entry["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
    }
    return NotFound(cfg_path + ": chat_template has no template named '" + name + "' (has: " + names + ")");
  }
  return InvalidFile(cfg_path + ": chat_template: expected a string or a list, got " + std::string(ct.type_name()));
}

Result<SpecialTokens> LoadSpecialTokens(const std::string& model_path) {
  namespace fs = std::filesystem;
  SpecialTokens out;
  if (IsRegularFile(model_path)) {
    if (!LooksLikeGguf(model_path)) return InvalidArgument(model_path + ": expected a GGUF file or an HF model folder");
    SPOOL_ASSIGN_OR_RETURN(formats::GgufFile gguf, formats::ReadGguf(model_path));
    auto tokens = gguf.GetStringArray("tokenizer.ggml.tokens");
    if (!tokens.ok()) return tokens.status();
    auto pick = [&](const char* key, std::string& dst) -> Status {
      auto id = gguf.GetInt(key);
      if (!id.ok()) return id.status().code() == ErrorCode::kNotFound ? Status::Ok() : id.status();
      if (*id < 0 || *id >= static_cast<int64_t>(tokens->size()))
        return InvalidFile(model_path + ": " + key + " = " + std::to_string(*id) + " is outside the vocabulary [0, " + std::to_string(tokens->size()) + ")");
      dst = (*tokens)[static_cast<size_t>(*id)];
      return Status::Ok();
    };
    SPOOL_TRY(pick("tokenizer.ggml.bos_token_id", out.bos_token));
    SPOOL_TRY(pick("tokenizer.ggml.eos_token_id", out.eos_token));
    return out;
  }
  std::string cfg_path = (fs::path(model_path) / "tokenizer_config.json").string();
  if (!IsRegularFile(cfg_path)) return NotFound(cfg_path + ": not found");
  SPOOL_ASSIGN_OR_RETURN(nlohmann::json cfg, ReadJsonFile(cfg_path));
  auto pick = [&](const char* key, std::string& dst) -> Status {
    if (!cfg.is_object() || !cfg.contains(key) || cfg[key].is_null()) return Status::Ok();
    const auto& v = cfg[key];
    if (v.is_string()) dst = v.get<std::string>();
    else if (v.is_object() && v.contains("content") && v["content"].is_string()) dst = v["content"].get<std::string>();
    else return InvalidFile(cfg_path + ": " + key + ": expected a string or {\"content\": string}, got " + std::string(v.type_name()));
    return Status::Ok();
  };
  SPOOL_TRY(pick("bos_token", out.bos_token));
  SPOOL_TRY(pick("eos_token", out.eos_token));
  return out;
}

}  // namespace spool::chat
