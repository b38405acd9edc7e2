// Recursive-descent parser for the Jinja subset chat templates use (grammar and
// operator precedence as in jinja2's parser.py).
#pragma once

#include <string>

#include "chat/jinja_ast.h"

namespace spool::chat::jinja {

// Parses a whole template. Throws JinjaError{"TemplateSyntaxError" or
// "TemplateAssertionError"} with line and column on bad syntax, an unknown tag,
// filter or test, or nesting deeper than `max_depth`.
Body ParseTemplate(const std::string& source, int max_depth);

// Filter and test names the interpreter implements (jinja_builtins.cc).
bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);

}  // namespace spool::chat::jinja
