// Jinja lexer with the settings transformers uses: trim_blocks, lstrip_blocks,
// keep_trailing_newline=False, default delimiters ({{ }}, {% %}, {# #}).
#pragma once

#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace spool::chat::jinja {

enum class TokType {
  kText,        // literal template text (after whitespace control)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // value: unescaped contents
  kInt,
  kFloat,
  kOp,          // value: the operator, e.g. "//", "(", "|"
  kEof,
};

struct Token {
  TokType type;
  std::string value;
  int line = 1;
  int column = 1;
};

// Splits `source` into tokens. Throws JinjaError{"TemplateSyntaxError"} with the
// position of an unterminated tag, comment or string, or of an unexpected character.
std::vector<Token> Tokenize(const std::string& source);

}  // namespace spool::chat::jinja
