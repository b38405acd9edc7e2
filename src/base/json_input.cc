#include "base/json_input.h"

#include "base/strings.h"

namespace spool {
namespace {

using Json = nlohmann::ordered_json;

// Counts depth and values; returning false stops nlohmann's (iterative) SAX parser.
class LimitCounter {
 public:
  explicit LimitCounter(const JsonLimits& limits) : limits_(limits) {}

  bool null() { return Value(); }
  bool boolean(bool) { return Value(); }
  bool number_integer(Json::number_integer_t) { return Value(); }
  bool number_unsigned(Json::number_unsigned_t) { return Value(); }
  bool number_float(Json::number_float_t, const Json::string_t&) { return Value(); }
  bool string(Json::string_t&) { return Value(); }
  bool binary(Json::binary_t&) { return Value(); }
  bool start_object(std::size_t) { return Open(); }
  bool key(Json::string_t&) { return true; }
  bool end_object() { return Close(); }
  bool start_array(std::size_t) { return Open(); }
  bool end_array() { return Close(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    failure_ = JsonParseFailure::kSyntax;
    error_position_ = position;
    return false;
  }

  JsonParseFailure failure() const { return failure_; }
  std::size_t error_position() const { return error_position_; }

 private:
  bool Value() {
    if (++values_ > limits_.max_values) {
      failure_ = JsonParseFailure::kTooManyValues;
      return false;
    }
    return true;
  }
  bool Open() {
    if (!Value()) return false;
    if (++depth_ > limits_.max_depth) {
      failure_ = JsonParseFailure::kTooDeep;
      return false;
    }
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }

  const JsonLimits& limits_;
  int depth_ = 0;
  int64_t values_ = 0;
  JsonParseFailure failure_ = JsonParseFailure::kNone;
  std::size_t error_position_ = 0;
};

}  // namespace

Result<Json> ParseJsonBounded(std::string_view text, std::string_view what, const JsonLimits& limits,
                              JsonParseFailure* failure) {
  if (failure) *failure = JsonParseFailure::kNone;
  LimitCounter counter(limits);
  const bool ok = Json::sax_parse(text.begin(), text.end(), &counter, nlohmann::detail::input_format_t::json,
                                  /*strict=*/true, /*ignore_comments=*/false);
  if (!ok) {
    const JsonParseFailure f = counter.failure() == JsonParseFailure::kNone ? JsonParseFailure::kSyntax : counter.failure();
    if (failure) *failure = f;
    const std::string w(what);
    switch (f) {
      case JsonParseFailure::kTooDeep:
        return InvalidArgument(w + ": JSON nested deeper than " + std::to_string(limits.max_depth) + " levels");
      case JsonParseFailure::kTooManyValues:
        return InvalidArgument(w + ": JSON has more than " + std::to_string(limits.max_values) + " values");
      default:
        return InvalidArgument(w + ": not valid JSON (syntax error near byte " + std::to_string(counter.error_position()) + ")");
    }
  }
  // Within the limits: the DOM parse cannot recurse deeper than max_depth.
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (failure) *failure = JsonParseFailure::kSyntax;
    return InvalidArgument(std::string(what) + ": not valid JSON");
  }
  return j;
}

Result<Json> ReadJsonFileBounded(const std::string& path, const JsonLimits& limits) {
  SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseJsonBounded(text, path, limits);
}

}  // namespace spool
