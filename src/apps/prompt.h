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
  bool parse_special = true;  // special-token text in the prompt becomes special tokens
};

// Plain prompt: BOS/EOS as the model's tokenizer flags say, then the text.
// Chat prompt: the template rendered with add_generation_prompt, tokenized without
// adding BOS again (templates write it themselves) and with special tokens parsed.
Result<std::vector<int32_t>> BuildPrompt(const runtime::Engine& engine, const std::string& text, const PromptOptions& opts);

// Renders a whole conversation ([{role, content}, ...]) with the model's template.
Result<std::string> RenderConversation(const runtime::Engine& engine, const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools, bool add_generation_prompt);

// "1,2,3" → ids. Errors name the bad element.
Result<std::vector<int32_t>> ParseIdList(const std::string& text);

}  // namespace spool::apps
