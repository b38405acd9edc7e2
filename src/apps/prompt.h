// Turning user input into prompt token ids (shared by run, chat, serve, batch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"

namespace spool::apps {

struct PromptOptions {
  bool chat = false;          // render through the model's chat template as a user message
  std::string system;         // optional system message (chat only)
  bool parse_special = true;  // plain prompts: special-token text becomes special tokens
  // Chat prompts: special-token text in the message becomes control tokens too
  // (transformers' behaviour); default plain text (chat/chat_prompt.h).
  bool special_in_content = false;
  nlohmann::ordered_json template_vars;  // chat: extra template variables (--var), null = none
};

// Plain prompt: BOS/EOS as the model's tokenizer flags say, then the text.
// Chat prompt: the template rendered with add_generation_prompt, tokenized without
// adding BOS again (templates write it themselves) by EncodeConversation.
// `rendered` (chat only), if given, receives the rendered template text.
Result<std::vector<int32_t>> BuildPrompt(const runtime::Engine& engine, const std::string& text, const PromptOptions& opts,
                                         std::string* rendered = nullptr);

// Renders a whole conversation ([{role, content}, ...]) with the model's template.
Result<std::string> RenderConversation(const runtime::Engine& engine, const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools, bool add_generation_prompt);

// Renders and tokenises a conversation with chat::EncodeChatPrompt: special tokens
// only from the template's own text unless `special_in_content`.
// `vars`: extra template variables (an object or null); `rendered`: the rendered text.
Result<std::vector<int32_t>> EncodeConversation(const runtime::Engine& engine, const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                                bool special_in_content, const nlohmann::ordered_json& vars = nullptr,
                                                std::string* rendered = nullptr);

// "1,2,3" → ids. Errors name the bad element.
Result<std::vector<int32_t>> ParseIdList(const std::string& text);

// The argument of --prompt-ids: "1,2,3", or "@FILE" for ids in a file separated by commas
// and/or whitespace (a long prompt's ids exceed the kernel's limit on one argument, 128 KiB).
// Errors name the file or the bad element.
Result<std::vector<int32_t>> ReadIdListArgument(const std::string& arg);

}  // namespace spool::apps
