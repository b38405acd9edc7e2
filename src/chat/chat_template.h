// Chat templates: render a model's Jinja chat template the way Hugging Face
// transformers does (apply_chat_template), and load templates and special tokens
// from GGUF files and HF model folders.
//
// The environment mirrors transformers' chat_template_utils: jinja2's
// ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop controls;
// `tojson` is Python's json.dumps(ensure_ascii=False, indent, separators,
// sort_keys); globals raise_exception(msg), strftime_now(fmt), dict(...),
// namespace(...), range(...); variables messages, tools, documents,
// add_generation_prompt, bos_token, eos_token plus the caller's extra variables.
//
// Templates are untrusted code: there is no file or environment access, and the
// limits in ChatTemplateInputs::limits bound output size, loop iterations and
// recursion. All functions are thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "chat/jinja_interp.h"

namespace spool::chat {

struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, ...}]
  nlohmann::ordered_json tools;      // null → templates see None (transformers' default)
  nlohmann::ordered_json documents;  // null → None
  bool add_generation_prompt = false;
  std::string bos_token, eos_token;
  // Extra template variables (e.g. {"enable_thinking": false}); must be an object
  // and must not redefine the variables above.
  nlohmann::ordered_json extra_vars = nlohmann::ordered_json::object();
  // Time seen by strftime_now, as UTC; -1 uses the local clock (as transformers).
  // Tests pin it for reproducible output.
  int64_t now_unix_seconds = -1;
  jinja::Limits limits;
};

// Where and why a template failed. `type` is the Python exception jinja2 raises in
// the same situation: "TemplateError" for raise_exception (message = the
// template's own text), "TemplateSyntaxError", "UndefinedError", "TypeError",
// "SecurityError", ...; "LimitError" when a safety limit stopped the render.
struct TemplateErrorDetail {
  std::string type;
  std::string message;
  int line = 0;    // 1-based line in the template, 0 if unknown
  int column = 0;
};

// A parsed template, reusable across renders (immutable after Parse; renders may run
// concurrently).
class ChatTemplate {
 public:
  // Fails (kInvalidFile) with "<type>: <message> (line L, column C)" on bad syntax.
  static Result<ChatTemplate> Parse(const std::string& source, const jinja::Limits& limits = {},
                                    TemplateErrorDetail* error = nullptr);
  // Renders; on failure the Status message is "<type>: <message> (line L, column C)"
  // (kInvalidArgument for template-raised/runtime errors, kResourceExhausted for
  // limits) and `error`, if given, receives the parts.
  Result<std::string> Render(const ChatTemplateInputs& inputs, TemplateErrorDetail* error = nullptr) const;

 private:
  std::shared_ptr<const jinja::Body> body_;
};

// Parse + Render in one call.
Result<std::string> RenderChatTemplate(const std::string& template_source, const ChatTemplateInputs& inputs,
                                       TemplateErrorDetail* error = nullptr);

// The chat template of a model: a GGUF file (tokenizer.chat_template, or
// tokenizer.chat_template.<name> when name != "default"), or an HF folder
// (chat_template.jinja, chat_template.json {"chat_template": ...}, or
// tokenizer_config.json "chat_template" as a string or a list of {name, template}).
// NotFound if the model has none.
Result<std::string> LoadChatTemplate(const std::string& model_path, const std::string& name = "default");

// BOS/EOS token strings: GGUF tokenizer.ggml.tokens[tokenizer.ggml.{bos,eos}_token_id];
// HF tokenizer_config.json bos_token / eos_token (a string or an AddedToken
// {"content": ...}). A token the model does not define is returned as "".
struct SpecialTokens {
  std::string bos_token, eos_token;
};
Result<SpecialTokens> LoadSpecialTokens(const std::string& model_path);

}  // namespace spool::chat
