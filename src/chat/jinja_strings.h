// Python str methods on UTF-8 strings (code-point based), used by filters and methods.
// Case mapping covers ASCII, Latin-1, Greek and Cyrillic; other scripts are unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spool::chat::jinja {

std::string PyStrip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit); sep nullopt splits on whitespace runs. Throws ValueError on "".
std::vector<std::string> PySplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> PyRSplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> PySplitLines(const std::string& s, bool keepends);
std::string PyUpper(const std::string& s);
std::string PyLower(const std::string& s);
std::string PyTitle(const std::string& s);        // str.title()
std::string PyCapitalize(const std::string& s);   // str.capitalize()
std::string JinjaTitle(const std::string& s);     // jinja2's |title filter
std::string PyReplace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
bool PyIsLower(const std::string& s);
bool PyIsUpper(const std::string& s);

}  // namespace spool::chat::jinja
