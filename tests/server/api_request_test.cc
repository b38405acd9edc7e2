// Request-body validation of the HTTP API: every malformed field gives a 400 that
// names the field; valid bodies map to the expected generation settings.
#include "server/api_request.h"

#include <gtest/gtest.h>

namespace spool::server {
namespace {

Json Chat(Json extra = Json::object()) {
  Json j = {{"model", "m"}, {"messages", Json::array({{{"role", "user"}, {"content", "hi"}}})}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

std::optional<ApiError> ParseChat(const Json& body, GenerationSpec* spec) {
  return ParseOpenAIRequest(body, ApiKind::kOpenAIChat, spec);
}

TEST(ApiRequest, ValidChatMapsFields) {
  GenerationSpec s;
  auto e = ParseChat(Chat({{"temperature", 0}, {"top_p", 0.5}, {"max_tokens", 7}, {"seed", 3}, {"stop", "x"},
                           {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"user", "u1"}}),
                     &s);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(s.sampling.temperature, 0.0f);
  EXPECT_EQ(s.sampling.top_p, 0.5f);
  EXPECT_EQ(s.max_tokens, 7);
  EXPECT_EQ(s.sampling.seed, 3u);
  EXPECT_TRUE(s.seed_given);
  EXPECT_EQ(s.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(s.stream && s.include_usage);
  EXPECT_EQ(s.session, "u1");
  EXPECT_EQ(s.messages[0]["content"], "hi");
}

TEST(ApiRequest, SpeculativeFieldOverTheServerDefault) {
  runtime::SpeculativeOptions server_default;  // off
  runtime::SpeculativeOptions lookup_default;
  lookup_default.lookup = true;
  lookup_default.max_draft = 5;
  auto resolve = [](const Json& body, const runtime::SpeculativeOptions& d, bool has_draft,
                    runtime::SpeculativeOptions* out) -> std::optional<ApiError> {
    GenerationSpec s;
    if (auto e = ParseChat(Chat(body), &s)) return e;
    return ResolveSpeculative(s.speculative, d, has_draft, false, out);
  };
  runtime::SpeculativeOptions o;
  ASSERT_FALSE(resolve(Json::object(), lookup_default, false, &o));
  EXPECT_TRUE(o.lookup);  // absent: the server's default
  EXPECT_EQ(o.max_draft, 5);
  ASSERT_FALSE(resolve({{"speculative", false}}, lookup_default, false, &o));
  EXPECT_FALSE(o.enabled());
  ASSERT_FALSE(resolve({{"speculative", true}}, server_default, false, &o));
  EXPECT_TRUE(o.lookup);  // true on a server without a drafter: prompt lookup
  ASSERT_FALSE(resolve({{"speculative", {{"draft", true}, {"max_draft", 3}}}}, server_default, true, &o));
  EXPECT_TRUE(o.draft_model && !o.lookup);
  EXPECT_EQ(o.max_draft, 3);
  auto e = resolve({{"speculative", {{"draft", true}}}}, server_default, false, &o);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "speculative.draft");
  e = resolve({{"speculative", {{"max_draft", 65}, {"lookup", true}}}}, server_default, false, &o);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "speculative.max_draft");
  e = resolve({{"speculative", {{"lookup", true}, {"draft", true}}}}, server_default, true, &o);
  ASSERT_TRUE(e);
  e = resolve({{"speculative", "yes"}}, server_default, true, &o);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "speculative");
  e = resolve({{"speculative", {{"tree", 4}}}}, server_default, true, &o);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "speculative.tree");
}

TEST(ApiRequest, ContentPartsAreJoined) {
  GenerationSpec s;
  Json parts = Json::array({{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}});
  ASSERT_FALSE(ParseChat({{"messages", Json::array({{{"role", "user"}, {"content", parts}}})}}, &s));
  EXPECT_EQ(s.messages[0]["content"], "ab");
}

TEST(ApiRequest, MaxCompletionTokensWins) {
  GenerationSpec s;
  ASSERT_FALSE(ParseChat(Chat({{"max_tokens", 5}, {"max_completion_tokens", 9}}), &s));
  EXPECT_EQ(s.max_tokens, 9);
}

struct BadCase {
  Json body;
  std::string param;
};

TEST(ApiRequest, BadFieldsNameTheField) {
  const std::vector<BadCase> cases = {
      {{{"messages", "x"}}, "messages"},
      {{{"messages", Json::array()}}, "messages"},
      {{{"messages", Json::array({5})}}, "messages[0]"},
      {{{"messages", Json::array({{{"content", "x"}}})}}, "messages[0].role"},
      {{{"messages", Json::array({{{"role", "user"}, {"content", Json::array({{{"type", "image_url"}}})}}})}},
       "messages[0].content[0].type"},
      {Chat({{"temperature", "hot"}}), "temperature"},
      {Chat({{"temperature", -1}}), "temperature"},
      {Chat({{"top_p", 2}}), "top_p"},
      {Chat({{"max_tokens", -3}}), "max_tokens"},
      {Chat({{"max_tokens", 0}}), "max_tokens"},
      {Chat({{"max_tokens", 2.5}}), "max_tokens"},
      {Chat({{"max_completion_tokens", "9"}}), "max_completion_tokens"},
      {Chat({{"n", 2}}), "n"},
      {Chat({{"stop", Json::array({1})}}), "stop[0]"},
      {Chat({{"stop", Json::array({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"})}}), "stop"},
      {Chat({{"stream", "yes"}}), "stream"},
      {Chat({{"stream_options", {{"include_usage", true}}}}), "stream_options"},
      {Chat({{"seed", "1"}}), "seed"},
      {Chat({{"presence_penalty", 3}}), "presence_penalty"},
      {Chat({{"logprobs", true}}), "logprobs"},
      {Chat({{"model", 5}}), "model"},
  };
  for (const auto& c : cases) {
    GenerationSpec s;
    auto e = ParseChat(c.body, &s);
    ASSERT_TRUE(e) << c.body.dump();
    EXPECT_EQ(e->status, 400);
    EXPECT_EQ(e->param, c.param) << c.body.dump() << " → " << e->message;
    EXPECT_FALSE(e->message.empty());
  }
}

TEST(ApiRequest, CompletionPrompts) {
  GenerationSpec s;
  ASSERT_FALSE(ParseOpenAIRequest({{"prompt", "abc"}}, ApiKind::kOpenAICompletion, &s));
  EXPECT_EQ(s.prompt_text, "abc");
  ASSERT_FALSE(ParseOpenAIRequest({{"prompt", Json::array({1, 2, 3})}}, ApiKind::kOpenAICompletion, &s));
  EXPECT_TRUE(s.has_prompt_ids);
  EXPECT_EQ(s.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  ASSERT_FALSE(ParseOpenAIRequest({{"prompt", Json::array({"only"})}}, ApiKind::kOpenAICompletion, &s));
  EXPECT_EQ(s.prompt_text, "only");
  for (Json bad : {Json(nullptr), Json(5), Json::array(), Json::array({"a", "b"}), Json::array({-1}),
                   Json::array({1.5}), Json::array({int64_t{1} << 40})}) {
    auto e = ParseOpenAIRequest({{"prompt", bad}}, ApiKind::kOpenAICompletion, &s);
    ASSERT_TRUE(e) << bad.dump();
    EXPECT_EQ(e->param.rfind("prompt", 0), 0u) << bad.dump();
  }
  EXPECT_TRUE(ParseOpenAIRequest({{"prompt", "x"}, {"echo", true}}, ApiKind::kOpenAICompletion, &s));
}

TEST(ApiRequest, OllamaOptions) {
  GenerationSpec s;
  ASSERT_FALSE(ParseOllamaRequest({{"prompt", "hi"}, {"system", "be brief"}, {"options", {{"num_predict", 4}, {"temperature", 0}}}},
                                  ApiKind::kOllamaGenerate, &s));
  EXPECT_TRUE(s.stream);  // Ollama's default
  EXPECT_EQ(s.max_tokens, 4);
  ASSERT_EQ(s.messages.size(), 2u);
  EXPECT_EQ(s.messages[0]["role"], "system");
  auto e = ParseOllamaRequest({{"prompt", "hi"}, {"options", {{"temperature", "x"}}}}, ApiKind::kOllamaGenerate, &s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "options.temperature");
  e = ParseOllamaRequest({{"prompt", "hi"}, {"options", 3}}, ApiKind::kOllamaGenerate, &s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "options");
}

TEST(ApiRequest, MalformedBodies) {
  Json j;
  for (const char* text : {"", "{", "[1,2]", "\"s\"", "nul", "{\"a\":}", "\xff\xfe"}) {
    auto e = ParseJsonBody(text, &j);
    ASSERT_TRUE(e) << text;
    EXPECT_EQ(e->status, 400);
  }
  EXPECT_FALSE(ParseJsonBody("{\"a\": 1}", &j));
}

TEST(ApiRequest, ErrorJsonShape) {
  ApiError e{404, "nope", "invalid_request_error", "model", "model_not_found"};
  Json j = e.ToJson();
  EXPECT_EQ(j["error"]["message"], "nope");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  EXPECT_TRUE(ApiError(400, "x").ToJson()["error"]["code"].is_null());
}

}  // namespace
}  // namespace spool::server
