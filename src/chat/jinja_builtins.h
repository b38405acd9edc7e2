// Filters, tests, methods and global functions of the template environment
// (jinja2's builtins as configured by transformers). Internal to the chat part.
#pragma once

#include <string>

#include "chat/jinja_interp.h"
#include "chat/jinja_value.h"

namespace spool::chat::jinja {

Value ApplyFilter(Interp& interp, const std::string& name, const Value& input, CallArgs& args);
bool ApplyTest(Interp& interp, const std::string& name, const Value& v, CallArgs& args);

// jinja2 sandbox attribute and item lookup: methods of str/dict/list come back as
// bound callables; mutating methods come back as an undefined that raises SecurityError.
Value GetAttr(const Value& obj, const std::string& name);
Value GetItem(const Value& obj, const Value& key);
Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// Adds range, dict, namespace, raise_exception, strftime_now to `globals`.
void AddGlobalFunctions(Scope& globals);

}  // namespace spool::chat::jinja
