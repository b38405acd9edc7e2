#include "apps/prompt.h"

#include <cerrno>
#include <cstdlib>

#include "base/strings.h"
#include "chat/chat_prompt.h"
#include "chat/chat_template.h"

namespace spool::apps {

Result<std::vector<int32_t>> ParseIdList(const std::string& text) {
  std::vector<int32_t> ids;
  for (const std::string& part : Split(text, ',')) {
    if (part.empty()) continue;
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(part.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < 0 || v > INT32_MAX)
      return InvalidArgument("bad token id '" + part + "' (expected a non-negative integer)");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

Result<std::vector<int32_t>> ReadIdListArgument(const std::string& arg) {
  if (arg.empty() || arg[0] != '@') return ParseIdList(arg);
  const std::string path = arg.substr(1);
  auto text = ReadFileToString(path);
  if (!text.ok()) return InvalidArgument("--prompt-ids @" + path + ": " + text.status().message());
  for (char& c : *text)
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') c = ',';
  auto ids = ParseIdList(*text);
  if (!ids.ok()) return InvalidArgument("--prompt-ids @" + path + ": " + ids.status().message());
  return ids;
}

namespace {

Result<chat::ChatTemplateInputs> ConversationInputs(const runtime::Engine& engine, const nlohmann::ordered_json& messages,
                                                    const nlohmann::ordered_json& tools, bool add_generation_prompt) {
  SPOOL_ASSIGN_OR_RETURN(chat::SpecialTokens special, chat::LoadSpecialTokens(engine.source().root));
  chat::ChatTemplateInputs in;
  in.messages = messages;
  in.tools = tools;
  in.add_generation_prompt = add_generation_prompt;
  in.bos_token = special.bos_token;
  in.eos_token = special.eos_token;
  return in;
}

}  // namespace

Result<std::string> RenderConversation(const runtime::Engine& engine, const nlohmann::ordered_json& messages,
                                       const nlohmann::ordered_json& tools, bool add_generation_prompt) {
  SPOOL_ASSIGN_OR_RETURN(std::string source, chat::LoadChatTemplate(engine.source().root));
  SPOOL_ASSIGN_OR_RETURN(chat::ChatTemplateInputs in, ConversationInputs(engine, messages, tools, add_generation_prompt));
  return chat::RenderChatTemplate(source, in);
}

Result<std::vector<int32_t>> EncodeConversation(const runtime::Engine& engine, const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                                bool special_in_content, const nlohmann::ordered_json& vars,
                                                std::string* rendered) {
  const tokenizer::Tokenizer* tok = engine.tokenizer();
  if (!tok) return Unsupported(engine.source().root + ": the model has no tokenizer");
  SPOOL_ASSIGN_OR_RETURN(std::string source, chat::LoadChatTemplate(engine.source().root));
  SPOOL_ASSIGN_OR_RETURN(chat::ChatTemplate tmpl, chat::ChatTemplate::Parse(source));
  SPOOL_ASSIGN_OR_RETURN(chat::ChatTemplateInputs in, ConversationInputs(engine, messages, tools, add_generation_prompt));
  if (vars.is_object()) in.extra_vars = vars;
  chat::ChatPromptOptions po;
  po.special_in_content = special_in_content;
  return chat::EncodeChatPrompt(tmpl, *tok, in, po, rendered);
}

Result<std::vector<int32_t>> BuildPrompt(const runtime::Engine& engine, const std::string& text, const PromptOptions& opts,
                                         std::string* rendered) {
  const tokenizer::Tokenizer* tok = engine.tokenizer();
  if (!tok) return Unsupported(engine.source().root + ": the model has no tokenizer; pass token ids with --prompt-ids");
  if (!opts.chat) return tok->Encode(text, /*add_special=*/true, opts.parse_special);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!opts.system.empty()) messages.push_back({{"role", "system"}, {"content", opts.system}});
  messages.push_back({{"role", "user"}, {"content", text}});
  return EncodeConversation(engine, messages, nullptr, true, opts.special_in_content, opts.template_vars, rendered);
}

}  // namespace spool::apps
