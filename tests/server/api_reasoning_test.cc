// Reasoning and tool calls in the HTTP API: request fields that reach the chat
// template (reasoning_effort, chat_template_kwargs, Ollama think), and the response
// objects built from the splitter's output (chat/reasoning.h) as OpenAI, llama-server
// and Ollama shape them.
#include <gtest/gtest.h>

#include "chat/reasoning.h"
#include "server/api_request.h"
#include "server/api_response.h"

namespace spool::server {
namespace {

Json Chat(Json extra = Json::object()) {
  Json j = {{"model", "m"}, {"messages", Json::array({{{"role", "user"}, {"content", "hi"}}})}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

TEST(ApiReasoningRequest, TemplateVariables) {
  GenerationSpec s;
  auto e = ParseOpenAIRequest(Chat({{"reasoning_effort", "high"}, {"chat_template_kwargs", {{"enable_thinking", false}}},
                                    {"reasoning_format", "none"}}),
                              ApiKind::kOpenAIChat, &s);
  ASSERT_FALSE(e) << e->message;
  EXPECT_EQ(s.template_vars["reasoning_effort"], "high");
  EXPECT_EQ(s.template_vars["enable_thinking"], false);
  EXPECT_EQ(s.reasoning_format, "none");
  for (const Json& bad : {Chat({{"reasoning_effort", 3}}), Chat({{"chat_template_kwargs", "x"}}), Chat({{"reasoning_format", "x"}})}) {
    auto err = ParseOpenAIRequest(bad, ApiKind::kOpenAIChat, &s);
    ASSERT_TRUE(err) << bad.dump();
    EXPECT_FALSE(err->param.empty());
  }
}

TEST(ApiReasoningRequest, OllamaThink) {
  GenerationSpec s;
  ASSERT_FALSE(ParseOllamaRequest(Chat({{"think", false}}), ApiKind::kOllamaChat, &s));
  EXPECT_EQ(s.template_vars["enable_thinking"], false);
  ASSERT_FALSE(ParseOllamaRequest(Chat({{"think", "low"}}), ApiKind::kOllamaChat, &s));
  EXPECT_EQ(s.template_vars["reasoning_effort"], "low");
  EXPECT_EQ(s.template_vars["enable_thinking"], true);
  auto e = ParseOllamaRequest(Chat({{"think", "max"}}), ApiKind::kOllamaChat, &s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->param, "think");
}

runtime::Completion Done(const std::string& text) {
  runtime::Completion c;
  c.text = text;
  c.finish_reason = "stop";
  c.ids = {1, 2, 3};
  return c;
}

chat::SplitterOptions Tools() {
  chat::SplitterOptions o;
  o.parse_tool_calls = true;
  o.id_prefix = "call_t";
  return o;
}

TEST(ApiReasoningResponse, OpenAIMessageWithReasoningAndToolCalls) {
  const std::string text =
      "<think>\nWeather needed.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
  const runtime::Completion c = Done(text);
  const AssistantParts parts = ToParts(chat::SplitReasoning(chat::ReasoningFormat::kThink, text, Tools()));
  const Json r = OpenAIResponse(ResponseMeta{"chatcmpl-x", 1, "m", "fp"}, true, c, &parts);
  const Json& choice = r["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["reasoning_content"], "Weather needed.");
  EXPECT_TRUE(choice["message"]["content"].is_null());
  const Json& call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["id"], "call_t0");
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["arguments"], "{\"city\":\"Paris\"}");

  // Without reasoning or calls the message is the plain one (no extra keys).
  const AssistantParts plain = ToParts(chat::SplitReasoning(chat::ReasoningFormat::kNone, "hi", {}));
  const Json p = OpenAIResponse(ResponseMeta{"chatcmpl-x", 1, "m", "fp"}, true, Done("hi"), &plain);
  EXPECT_EQ(p["choices"][0]["message"], (Json{{"role", "assistant"}, {"content", "hi"}, {"refusal", nullptr}}));
  EXPECT_EQ(p["choices"][0]["finish_reason"], "stop");
}

TEST(ApiReasoningResponse, StreamDeltasAndOllama) {
  chat::ReasoningDelta d;
  d.reasoning = "r";
  d.tool_calls.push_back({"call_1", "f", "{}"});
  const Json chunk = OpenAIDeltaChunk(ResponseMeta{"id", 1, "m", "fp"}, d, 1, false);
  const Json& delta = chunk["choices"][0]["delta"];
  EXPECT_EQ(delta["reasoning_content"], "r");
  EXPECT_FALSE(delta.contains("content"));
  EXPECT_EQ(delta["tool_calls"][0]["index"], 1);
  EXPECT_EQ(delta["tool_calls"][0]["function"]["name"], "f");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());

  const Json line = OllamaDeltaChunk("m", d);
  EXPECT_EQ(line["message"]["thinking"], "r");
  EXPECT_EQ(line["message"]["content"], "");
  EXPECT_EQ(line["message"]["tool_calls"][0]["function"]["arguments"], Json::object());

  AssistantParts parts{"why", "answer", {{"call_0", "g", "{\"a\":1}"}}};
  const Json fin = OllamaFinal("m", true, "raw", Done("raw"), 0.1, &parts);
  EXPECT_EQ(fin["message"]["content"], "answer");
  EXPECT_EQ(fin["message"]["thinking"], "why");
  EXPECT_EQ(fin["message"]["tool_calls"][0]["function"]["arguments"]["a"], 1);
  EXPECT_EQ(ChatFinishReason(Done("x"), true), "tool_calls");
  runtime::Completion len = Done("x");
  len.finish_reason = "length";
  EXPECT_EQ(ChatFinishReason(len, true), "length");
}

}  // namespace
}  // namespace spool::server
