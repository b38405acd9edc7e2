// Issue 20 hardening of request parsing: bounded JSON (depth / value count),
// integer ranges without wrap, logit_bias, null content, and how scheduler errors
// become HTTP errors (507 for KV storage, no server paths). Labelled "malformed".
#include <string>

#include <gtest/gtest.h>

#include "base/json_input.h"
#include "server/api_request.h"

namespace spool::server {
namespace {

Json Chat(Json extra = Json::object()) {
  Json j = {{"model", "m"}, {"messages", Json::array({{{"role", "user"}, {"content", "hi"}}})}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

std::string Nested(const std::string& field, int depth) {
  return "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"" + field + "\": " + std::string(depth, '[') +
         std::string(depth, ']') + "}]}";
}

TEST(JsonBounded, DeepNestingIsRefusedBeforeAnyDom) {
  // The 200 KB body: 100,000 nested arrays inside a message field.
  Json j;
  auto e = ParseJsonBody(Nested("x", 100000), &j);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_EQ(e->code, "request_too_complex");
  EXPECT_NE(e->message.find("nested deeper than 128"), std::string::npos) << e->message;
  // Just inside the limit parses (depth counts the outer object and the messages array).
  EXPECT_FALSE(ParseJsonBody(Nested("x", 120), &j));
  // Deep objects, and deep nesting in every place a body can carry it.
  std::string objs;
  for (int i = 0; i < 50000; ++i) objs += "{\"a\":";
  objs += "1" + std::string(50000, '}');
  EXPECT_TRUE(ParseJsonBody(objs, &j));
  for (const char* field : {"tools", "vars", "tokens"}) {
    const std::string body = std::string("{\"") + field + "\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
    auto err = ParseJsonBody(body, &j);
    ASSERT_TRUE(err) << field;
    EXPECT_EQ(err->code, "request_too_complex");
  }
}

TEST(JsonBounded, ValueCountIsBounded) {
  JsonLimits limits;
  limits.max_values = 1000;
  std::string many = "[";
  for (int i = 0; i < 2000; ++i) many += (i ? ",0" : "0");
  many += "]";
  JsonParseFailure f;
  auto r = ParseJsonBounded(many, "test", limits, &f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(f, JsonParseFailure::kTooManyValues);
  EXPECT_NE(r.status().message().find("more than 1000 values"), std::string::npos);
  limits.max_values = 5000;
  EXPECT_TRUE(ParseJsonBounded(many, "test", limits).ok());
}

TEST(JsonBounded, SyntaxErrorsNameTheInputNotItsText) {
  JsonParseFailure f;
  auto r = ParseJsonBounded("{\"secret\": ", "line 7", {}, &f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(f, JsonParseFailure::kSyntax);
  EXPECT_EQ(r.status().message().rfind("line 7: not valid JSON", 0), 0u) << r.status().message();
  EXPECT_EQ(r.status().message().find("secret"), std::string::npos);
}

TEST(ApiRanges, HugeIntegersAreRejectedWithTheRangeAndNoWrap) {
  struct Case {
    Json body;
    std::string param, range;
  };
  const uint64_t two63 = uint64_t{1} << 63;
  const std::vector<Case> cases = {
      {Chat({{"max_tokens", two63}}), "max_tokens", "[1, 2147483647]"},
      {Chat({{"max_tokens", 9.3e18}}), "max_tokens", "[1, 2147483647]"},
      {Chat({{"max_tokens", int64_t{1} << 40}}), "max_tokens", "[1, 2147483647]"},
      {Chat({{"max_completion_tokens", UINT64_MAX}}), "max_completion_tokens", "[1, 2147483647]"},
      {Chat({{"max_tokens", 0}}), "max_tokens", "[1, 2147483647]"},
      {Chat({{"seed", two63}}), "seed", "[-9223372036854775808, 9223372036854775807]"},
      {Chat({{"seed", -1e19}}), "seed", "[-9223372036854775808, 9223372036854775807]"},
      {Chat({{"top_k", int64_t{1} << 31}}), "top_k", "[0, 1073741824]"},
      {Chat({{"n", two63}}), "n", "[1, 1]"},
      {Chat({{"repeat_last_n", -2}}), "repeat_last_n", "[-1, 1073741824]"},
  };
  for (const auto& c : cases) {
    GenerationSpec s;
    auto e = ParseOpenAIRequest(c.body, ApiKind::kOpenAIChat, &s);
    ASSERT_TRUE(e) << c.body.dump();
    EXPECT_EQ(e->status, 400);
    EXPECT_EQ(e->param, c.param) << e->message;
    EXPECT_NE(e->message.find(c.range), std::string::npos) << e->message;
    // The value is quoted as sent: never a wrapped negative number.
    EXPECT_EQ(e->message.find("-9223372036854775808 in"), std::string::npos) << e->message;
    EXPECT_NE(e->message.find(c.body[c.param].dump()), std::string::npos) << e->message;
  }
  GenerationSpec s;
  auto e = ParseOllamaRequest({{"prompt", "x"}, {"options", {{"num_predict", two63}}}}, ApiKind::kOllamaGenerate, &s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "options.num_predict");
  EXPECT_NE(e->message.find("[-1, 2147483647]"), std::string::npos) << e->message;
  ASSERT_FALSE(ParseOllamaRequest({{"prompt", "x"}, {"options", {{"num_predict", -1}}}}, ApiKind::kOllamaGenerate, &s));
  ASSERT_FALSE(ParseOpenAIRequest(Chat({{"max_tokens", 2147483647}, {"seed", -5}}), ApiKind::kOpenAIChat, &s));
  EXPECT_EQ(s.max_tokens, 2147483647);
}

TEST(ApiLogitBias, ParsedValidatedAndCheckedAgainstTheVocabulary) {
  GenerationSpec s;
  ASSERT_FALSE(ParseOpenAIRequest(Chat({{"logit_bias", {{"5", -100}, {"17", 2.5}}}}), ApiKind::kOpenAIChat, &s));
  ASSERT_EQ(s.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(s.sampling.logit_bias[0], (std::pair<int32_t, float>{5, -100.0f}));
  EXPECT_EQ(s.sampling.logit_bias[1], (std::pair<int32_t, float>{17, 2.5f}));
  EXPECT_FALSE(CheckLogitBias(s.sampling, 100, false));
  auto e = CheckLogitBias(s.sampling, 10, false);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "logit_bias");
  EXPECT_NE(e->message.find("[0, 10)"), std::string::npos);
  for (Json bad : {Json(5), Json::array({1}), Json{{"x", 1}}, Json{{"-1", 1}}, Json{{"99999999999", 1}}, Json{{"1", 101}},
                   Json{{"1", -100.5}}, Json{{"1", "big"}}, Json{{"", 1}}}) {
    auto err = ParseOpenAIRequest(Chat({{"logit_bias", bad}}), ApiKind::kOpenAIChat, &s);
    ASSERT_TRUE(err) << bad.dump();
    EXPECT_EQ(err->status, 400);
    EXPECT_EQ(err->param.rfind("logit_bias", 0), 0u) << err->param;
  }
  Json big = Json::object();
  for (int i = 0; i < 1025; ++i) big[std::to_string(i)] = 1;
  EXPECT_TRUE(ParseOpenAIRequest(Chat({{"logit_bias", big}}), ApiKind::kOpenAIChat, &s));
  // Ollama: under options (a spool extension; Ollama itself has no logit_bias).
  ASSERT_FALSE(ParseOllamaRequest({{"prompt", "x"}, {"options", {{"logit_bias", {{"3", 1}}}}}}, ApiKind::kOllamaGenerate, &s));
  ASSERT_EQ(s.sampling.logit_bias.size(), 1u);
  e = CheckLogitBias(s.sampling, 2, true);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "options.logit_bias");
}

TEST(ApiMessages, NullContentIsAcceptedAsEmpty) {
  GenerationSpec s;
  Json msgs = Json::array({{{"role", "user"}, {"content", "weather?"}},
                           {{"role", "assistant"}, {"content", nullptr},
                            {"tool_calls", Json::array({{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "w"}, {"arguments", "{}"}}}}})}},
                           {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", nullptr}},
                           {{"role", "assistant"}, {"tool_calls", Json::array()}}});
  auto e = ParseOpenAIRequest({{"messages", msgs}}, ApiKind::kOpenAIChat, &s);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(s.messages[1]["content"], "");
  EXPECT_EQ(s.messages[2]["content"], "");
  EXPECT_EQ(s.messages[3]["content"], "");
  EXPECT_EQ(s.messages[1]["tool_calls"].size(), 1u);
}

TEST(ApiErrors, KvStorageExhaustionIs507WithoutServerPaths) {
  const Status disk_full = ResourceExhausted(
      "the KV cache disk is full (writing KV page 3 of layer 1 to /var/secret/kv: No space left on device): free space there");
  ApiError e = ApiErrorFromStatus(disk_full);
  EXPECT_EQ(e.status, 507);
  EXPECT_EQ(e.code, "insufficient_storage");
  EXPECT_EQ(e.message.find("/var/secret"), std::string::npos);
  ApiError io = ApiErrorFromStatus(IoError("/var/secret/kv/seq-1.kv: read failed"));
  EXPECT_EQ(io.status, 500);
  EXPECT_EQ(io.message.find("/var/secret"), std::string::npos);
  EXPECT_EQ(ApiErrorFromStatus(InvalidArgument("bad")).status, 400);
  EXPECT_EQ(ApiErrorFromStatus(Cancelled("shutting down")).status, 503);
}

}  // namespace
}  // namespace spool::server
