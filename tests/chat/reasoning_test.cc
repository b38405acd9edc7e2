// ReasoningSplitter (chat/reasoning.h) on outputs shaped as Qwen3, QwQ/DeepSeek-R1 and
// gpt-oss (harmony) write them. Every fixture is also fed cut at every byte boundary
// (two chunks), one byte at a time, and in three chunks at every pair of boundaries
// for the short ones: the result must not depend on the cut. Malformed output (label
// `malformed`) must come back as content, never crash.
#include "chat/reasoning.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace spool::chat {
namespace {

struct Expected {
  std::string reasoning, content;
  std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
};

SplitOutput FeedChunks(ReasoningFormat f, const SplitterOptions& o, const std::vector<std::string_view>& chunks) {
  ReasoningSplitter s(f, o);
  SplitOutput acc;
  auto add = [&](const ReasoningDelta& d) {
    acc.reasoning += d.reasoning;
    acc.content += d.content;
    for (const ToolCall& c : d.tool_calls) acc.tool_calls.push_back(c);
  };
  for (std::string_view c : chunks) add(s.Push(c));
  add(s.Finish());
  // The deltas add up to what the splitter reports.
  EXPECT_EQ(acc.reasoning, s.reasoning());
  EXPECT_EQ(acc.content, s.content());
  EXPECT_EQ(acc.tool_calls.size(), s.tool_calls().size());
  return acc;
}

void ExpectEq(const SplitOutput& got, const Expected& want, const std::string& how) {
  EXPECT_EQ(got.reasoning, want.reasoning) << how;
  EXPECT_EQ(got.content, want.content) << how;
  ASSERT_EQ(got.tool_calls.size(), want.calls.size()) << how;
  for (size_t i = 0; i < want.calls.size(); ++i) {
    EXPECT_EQ(got.tool_calls[i].name, want.calls[i].first) << how;
    EXPECT_EQ(got.tool_calls[i].arguments, want.calls[i].second) << how;
    EXPECT_EQ(got.tool_calls[i].id, "call_" + std::to_string(i)) << how;
  }
}

// Whole, every 2-way cut, byte by byte, and (text up to 200 bytes) every 3-way cut.
void CheckAllSplits(ReasoningFormat f, const SplitterOptions& o, std::string_view text, const Expected& want) {
  ExpectEq(FeedChunks(f, o, {text}), want, "whole");
  for (size_t i = 0; i <= text.size(); ++i)
    ExpectEq(FeedChunks(f, o, {text.substr(0, i), text.substr(i)}), want, "cut at " + std::to_string(i));
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < text.size(); ++i) bytes.push_back(text.substr(i, 1));
  ExpectEq(FeedChunks(f, o, bytes), want, "byte by byte");
  if (text.size() <= 200)
    for (size_t i = 0; i <= text.size(); ++i)
      for (size_t j = i; j <= text.size(); ++j)
        ExpectEq(FeedChunks(f, o, {text.substr(0, i), text.substr(i, j - i), text.substr(j)}), want,
                 "cuts at " + std::to_string(i) + "," + std::to_string(j));
}

SplitterOptions Tools() {
  SplitterOptions o;
  o.parse_tool_calls = true;
  return o;
}

// ---- Qwen3 <think> ----

TEST(ReasoningThink, Qwen3Answer) {
  const std::string text =
      "<think>\nOkay, the user says hello. I should greet them back and offer help.\n</think>\n\n"
      "Hello! How can I help you today? \xF0\x9F\x98\x8A";
  CheckAllSplits(ReasoningFormat::kThink, {}, text,
                 {"Okay, the user says hello. I should greet them back and offer help.",
                  "Hello! How can I help you today? \xF0\x9F\x98\x8A", {}});
}

TEST(ReasoningThink, Qwen3ThinkingDisabledHasNoTags) {
  // enable_thinking=false: the template writes the empty block into the prompt.
  CheckAllSplits(ReasoningFormat::kThink, {}, "The capital of France is Paris.", {"", "The capital of France is Paris.", {}});
}

TEST(ReasoningThink, Qwen3EmptyThinkBlock) {
  CheckAllSplits(ReasoningFormat::kThink, {}, "<think>\n\n</think>\n\nHi.", {"", "Hi.", {}});
}

TEST(ReasoningThink, PromptOpenedThink) {
  // QwQ / DeepSeek-R1: the generation prompt ends with "<think>\n".
  SplitterOptions o;
  o.start_in_reasoning = true;
  CheckAllSplits(ReasoningFormat::kThink, o, "Okay, 2 + 2: that is 4.\n</think>\n\nThe answer is **4**.",
                 {"Okay, 2 + 2: that is 4.", "The answer is **4**.", {}});
  EXPECT_TRUE(PromptOpensReasoning(ReasoningFormat::kThink, "<|im_start|>assistant\n<think>\n"));
  EXPECT_FALSE(PromptOpensReasoning(ReasoningFormat::kThink, "<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(PromptOpensReasoning(ReasoningFormat::kHarmony, "<think>"));
}

TEST(ReasoningThink, ThinkTagLaterIsText) {
  CheckAllSplits(ReasoningFormat::kThink, {}, "Use <think> tags like <think>this</think>.",
                 {"", "Use <think> tags like <think>this</think>.", {}});
}

TEST(ReasoningThink, Qwen3ToolCall) {
  const std::string text =
      "<think>\nThe user wants the weather in Paris. I'll call get_weather.\n</think>\n\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
  CheckAllSplits(ReasoningFormat::kThink, Tools(), text,
                 {"The user wants the weather in Paris. I'll call get_weather.", "",
                  {{"get_weather", R"({"location":"Paris","unit":"celsius"})"}}});
}

TEST(ReasoningThink, TwoToolCallsAndText) {
  const std::string text =
      "Let me check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>";
  CheckAllSplits(ReasoningFormat::kThink, Tools(), text, {"", "Let me check both.\n", {{"a", "{}"}, {"b", "{\"x\": 1}"}}});
}

TEST(ReasoningThink, ToolCallsNotParsedWithoutTools) {
  const std::string text = "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>";
  CheckAllSplits(ReasoningFormat::kThink, {}, text, {"", text, {}});
}

TEST(ReasoningNone, EverythingIsContent) {
  const std::string text = "  <think>not parsed</think> answer\n";
  CheckAllSplits(ReasoningFormat::kNone, {}, text, {"", text, {}});
  CheckAllSplits(ReasoningFormat::kAuto, {}, text, {"", text, {}});
}

TEST(ReasoningNone, HermesToolCall) {
  const std::string text = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"q\": \"<think>\"}}\n</tool_call>";
  CheckAllSplits(ReasoningFormat::kNone, Tools(), text, {"", "", {{"f", R"({"q":"<think>"})"}}});
}

// ---- gpt-oss harmony ----

TEST(ReasoningHarmony, FinalAnswerWithReturn) {
  const std::string text =
      "<|channel|>analysis<|message|>User asks: \"What is 2+2?\" Simple arithmetic. Answer 4.<|end|>"
      "<|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>";
  CheckAllSplits(ReasoningFormat::kHarmony, {}, text,
                 {"User asks: \"What is 2+2?\" Simple arithmetic. Answer 4.", "2 + 2 = 4.", {}});
}

TEST(ReasoningHarmony, FinalAnswerEndedByEos) {
  // <|return|> is an end-of-generation token: the text stops before it.
  const std::string text =
      "<|channel|>analysis<|message|>Need to greet.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!";
  CheckAllSplits(ReasoningFormat::kHarmony, {}, text, {"Need to greet.", "Hello there!", {}});
}

TEST(ReasoningHarmony, ToolCall) {
  const std::string text =
      "<|channel|>analysis<|message|>User asks: \"What is the weather in Tokyo?\" We need to use get_weather tool.<|end|>"
      "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"Tokyo\"}<|call|>";
  CheckAllSplits(ReasoningFormat::kHarmony, Tools(), text,
                 {"User asks: \"What is the weather in Tokyo?\" We need to use get_weather tool.", "",
                  {{"get_weather", R"({"location":"Tokyo"})"}}});
}

TEST(ReasoningHarmony, RecipientBeforeChannel) {
  const std::string text =
      "<|channel|>analysis<|message|>Call it.<|end|><|start|>assistant to=functions.lookup<|channel|>commentary json"
      "<|message|>{\"id\": 7}";
  CheckAllSplits(ReasoningFormat::kHarmony, Tools(), text, {"Call it.", "", {{"lookup", "{\"id\": 7}"}}});
}

TEST(ReasoningHarmony, ToolCallWithoutToolsIsContent) {
  const std::string text = "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\":1}<|call|>";
  CheckAllSplits(ReasoningFormat::kHarmony, {}, text, {"", "{\"a\":1}", {}});
}

TEST(ReasoningHarmony, CommentaryPreambleIsContent) {
  const std::string text =
      "<|channel|>analysis<|message|>Plan.<|end|><|start|>assistant<|channel|>commentary<|message|>Checking now.<|end|>"
      "<|start|>assistant<|channel|>final<|message|>Done.";
  CheckAllSplits(ReasoningFormat::kHarmony, {}, text, {"Plan.", "Checking now.Done.", {}});
}

TEST(ReasoningHarmony, PlainTextModelIsContent) {
  CheckAllSplits(ReasoningFormat::kHarmony, {}, "Just text, no harmony.", {"", "Just text, no harmony.", {}});
  const std::string long_text(ReasoningSplitter::kMaxHarmonyHeader + 100, 'x');
  ExpectEq(FeedChunks(ReasoningFormat::kHarmony, {}, {long_text}), {"", long_text, {}}, "long");
}

TEST(ReasoningHarmony, Detection) {
  EXPECT_EQ(DetectReasoningFormat("{{ '<|start|>assistant<|channel|>final<|message|>' }}", nullptr), ReasoningFormat::kHarmony);
  EXPECT_EQ(DetectReasoningFormat("{% if x %}<think>\n{% endif %}", nullptr), ReasoningFormat::kThink);
  EXPECT_EQ(DetectReasoningFormat("{{ content.split('</think>')[-1] }}", nullptr), ReasoningFormat::kThink);
  EXPECT_EQ(DetectReasoningFormat("<|im_start|>{{ m.content }}", nullptr), ReasoningFormat::kNone);
  EXPECT_EQ(*ParseReasoningFormat("auto"), ReasoningFormat::kAuto);
  EXPECT_EQ(*ParseReasoningFormat("deepseek"), ReasoningFormat::kThink);
  EXPECT_EQ(*ParseReasoningFormat("gpt-oss"), ReasoningFormat::kHarmony);
  EXPECT_FALSE(ParseReasoningFormat("bogus").ok());
}

// ---- malformed output (label malformed: runs under ASan/UBSan) ----

TEST(ReasoningMalformed, UnterminatedThinkStaysReasoning) {
  CheckAllSplits(ReasoningFormat::kThink, {}, "<think>\nStill thinking when max_tokens hit  \n",
                 {"Still thinking when max_tokens hit", "", {}});
  CheckAllSplits(ReasoningFormat::kThink, {}, "<thi", {"", "<thi", {}});
}

TEST(ReasoningMalformed, BadToolJsonIsContent) {
  for (const std::string body : {"{\"name\": \"f\", \"arguments\": {\"a\": }", "[1,2]", "{\"arguments\": {}}",
                                 "{\"name\": 3}", "{\"name\": \"f\", \"arguments\": \"not json\"}",
                                 "{\"name\": \"f\", \"arguments\": [1]}", "", "\xff\xfe"}) {
    const std::string text = "<tool_call>" + body + "</tool_call> after";
    CheckAllSplits(ReasoningFormat::kThink, Tools(), text, {"", text, {}});
  }
}

TEST(ReasoningMalformed, UnterminatedToolCallIsContent) {
  const std::string text = "Calling.<tool_call>\n{\"name\": \"f\", \"arguments\": {}}";
  CheckAllSplits(ReasoningFormat::kThink, Tools(), text, {"", text, {}});
}

TEST(ReasoningMalformed, DeepJsonInToolCall) {
  std::string body = "{\"name\": \"f\", \"arguments\": ";
  body += std::string(100000, '[');
  const std::string text = "<tool_call>" + body + "</tool_call>";
  ExpectEq(FeedChunks(ReasoningFormat::kThink, Tools(), {text}), {"", text, {}}, "deep");
  const std::string harmony = "<|channel|>commentary to=functions.f<|message|>" + std::string(100000, '[');
  ExpectEq(FeedChunks(ReasoningFormat::kHarmony, Tools(), {harmony}), {"", std::string(100000, '['), {}}, "deep harmony");
}

TEST(ReasoningMalformed, HarmonyOddMarkers) {
  // Unterminated header, markers in odd places, a second <|message|> inside a body,
  // an empty recipient, bad tool JSON: never a crash, text is never invented.
  for (const std::string text : {"<|channel|>analysis", "<|message|>", "<|end|><|end|><|start|>", "<|channel|>final<|message|>a<|message|>b",
                                 "<|channel|>commentary to=functions. <|message|>{}", "<|channel|>commentary to=functions.f<|message|>{bad",
                                 "<|start|>assistant<|call|>", "<|channel|>analysis<|message|>x<|channel|>final<|message|>y",
                                 "<|ret", "<|channel|>analysis<|message|>unterminated"}) {
    SplitOutput whole = FeedChunks(ReasoningFormat::kHarmony, Tools(), {text});
    for (size_t i = 0; i <= text.size(); ++i) {
      SplitOutput cut = FeedChunks(ReasoningFormat::kHarmony, Tools(), {std::string_view(text).substr(0, i), std::string_view(text).substr(i)});
      EXPECT_EQ(cut.reasoning, whole.reasoning) << text << " cut " << i;
      EXPECT_EQ(cut.content, whole.content) << text << " cut " << i;
      EXPECT_EQ(cut.tool_calls.size(), whole.tool_calls.size()) << text << " cut " << i;
    }
    EXPECT_LE(whole.reasoning.size() + whole.content.size(), text.size()) << text;
  }
  EXPECT_EQ(SplitReasoning(ReasoningFormat::kHarmony, "<|channel|>final<|message|>a<|message|>b").content, "a<|message|>b");
  EXPECT_EQ(SplitReasoning(ReasoningFormat::kHarmony, "<|channel|>commentary to=functions.f<|message|>{bad", Tools()).content, "{bad");
  auto two = SplitReasoning(ReasoningFormat::kHarmony, "<|channel|>analysis<|message|>x<|channel|>final<|message|>y");
  EXPECT_EQ(two.reasoning, "x");
  EXPECT_EQ(two.content, "y");
}

TEST(ReasoningMalformed, PushAfterFinishIsIgnored) {
  ReasoningSplitter s(ReasoningFormat::kThink);
  s.Push("<think>a</think>b");
  s.Finish();
  EXPECT_TRUE(s.Push("more").empty());
  EXPECT_EQ(s.content(), "b");
}

}  // namespace
}  // namespace spool::chat
