// Parsing untrusted JSON (request bodies, JSONL job lines, --messages/--tools files)
// with bounds checked before any DOM exists.
//
// A first SAX pass counts nesting depth and values and stops at the first limit, so a
// 200 KB body of 100,000 nested arrays is refused in O(bytes) time and O(1) stack;
// only then is the DOM built. Everything downstream (copies, dump(), the chat
// template's conversion) recurses at most `max_depth` levels.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace spool {

struct JsonLimits {
  int max_depth = 128;               // arrays/objects nested deeper fail
  int64_t max_values = 1 << 20;      // scalars + arrays + objects (keys not counted)
};

// Why a bounded parse failed; the message says which limit or where the syntax broke
// (byte offset), never the input itself.
enum class JsonParseFailure { kNone, kSyntax, kTooDeep, kTooManyValues };

// Parses `text`. kInvalidArgument with a message naming `what` ("request body",
// "line 3", a file path) on a syntax error or a limit; `failure`, if given, tells which.
Result<nlohmann::ordered_json> ParseJsonBounded(std::string_view text, std::string_view what,
                                                const JsonLimits& limits = {},
                                                JsonParseFailure* failure = nullptr);

// ReadFileToString + ParseJsonBounded (what = the path).
Result<nlohmann::ordered_json> ReadJsonFileBounded(const std::string& path, const JsonLimits& limits = {});

}  // namespace spool
