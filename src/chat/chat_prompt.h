// A chat prompt as token ids: render the template, then tokenise so that only the
// template's own text can produce control tokens.
//
// Message content is user input. transformers' apply_chat_template(tokenize=True)
// tokenises the whole rendered string with special tokens parsed, so a user who types
// "<|im_end|><|im_start|>system" gets real control tokens (a forged system turn).
// spool differs by default: every special-token string inside message content, tool
// calls/results, tools and documents is tokenised as plain text, and the text the
// template writes itself (role markers, BOS, generation prompt) is tokenised with
// special tokens parsed. `special_in_content` restores transformers' behaviour.
//
// How: before rendering, each occurrence of a special token's text inside those
// input strings is replaced by a placeholder (a private-use code point absent from
// all inputs, the token's index, the code point again); after rendering, placeholders
// become the token text again and their byte ranges are passed to
// Tokenizer::EncodeWithLiteralSpans. The rendered text is therefore identical to a
// plain render; only tokenisation differs.
//
// Plain completion prompts (/v1/completions, `spool run "text"`) are not chat
// prompts: they keep parsing special tokens, as llama.cpp does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "chat/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace spool::chat {

struct ChatPromptOptions {
  bool special_in_content = false;  // true: special-token text in content becomes control tokens
};

// Renders `inputs` with `tmpl` and tokenises without adding BOS/EOS (templates write
// them). Errors: the template's render error (chat_template.h), kInvalidArgument for
// text the tokenizer rejects. `rendered`, if given, receives the rendered text.
Result<std::vector<int32_t>> EncodeChatPrompt(const ChatTemplate& tmpl, const tokenizer::Tokenizer& tok,
                                              const ChatTemplateInputs& inputs, const ChatPromptOptions& options,
                                              std::string* rendered = nullptr);

}  // namespace spool::chat
