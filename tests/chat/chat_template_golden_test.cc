// Golden tests: every template in ../shared/data/chat-templates plus the SmolLM2
// GGUF's template, over the conversations in tests/fixtures/chat/conversations.json,
// must render byte-identically to Python jinja2 with transformers' environment
// (outputs produced by tools/gen_template_fixtures.py). Cases where jinja2 raised
// must fail with the same exception type and message.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace spool::chat {
namespace {

using json = nlohmann::ordered_json;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string ResolveTemplatePath(const std::string& ref) {
  const std::string shared = "shared:", fixtures = "fixtures:";
  if (ref.rfind(shared, 0) == 0) return std::string(SPOOL_SHARED_DATA) + "/" + ref.substr(shared.size());
  if (ref.rfind(fixtures, 0) == 0) return std::string(SPOOL_TEST_FIXTURES) + "/" + ref.substr(fixtures.size());
  return ref;
}

TEST(ChatTemplateGolden, AllTemplatesAllConversations) {
  const std::string dir = std::string(SPOOL_TEST_FIXTURES) + "/chat";
  json convs = json::parse(ReadFile(dir + "/conversations.json"));
  std::map<std::string, json> by_name;
  for (const auto& c : convs["conversations"]) by_name[c["name"].get<std::string>()] = c;

  std::vector<std::filesystem::path> goldens;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/golden")) goldens.push_back(e.path());
  std::sort(goldens.begin(), goldens.end());
  ASSERT_GE(goldens.size(), 30u);

  int total = 0, passed = 0;
  for (const auto& path : goldens) {
    json golden = json::parse(ReadFile(path.string()));
    std::string source = ReadFile(ResolveTemplatePath(golden["template"].get<std::string>()));
    ASSERT_FALSE(source.empty()) << path;
    for (const auto& c : golden["cases"]) {
      const json& conv = by_name.at(c["conversation"].get<std::string>());
      ChatTemplateInputs in;
      in.messages = conv["messages"];
      in.tools = conv["tools"];
      in.add_generation_prompt = conv["add_generation_prompt"].get<bool>();
      in.bos_token = convs["bos_token"].get<std::string>();
      in.eos_token = convs["eos_token"].get<std::string>();
      in.extra_vars = conv["extra_vars"];
      in.now_unix_seconds = convs["now_unix"].get<int64_t>();
      TemplateErrorDetail err;
      auto out = RenderChatTemplate(source, in, &err);
      ++total;
      std::string where = path.stem().string() + " × " + c["conversation"].get<std::string>();
      if (c.contains("output")) {
        std::string want = c["output"].get<std::string>();
        if (!out.ok()) {
          ADD_FAILURE() << where << ": expected output, got error " << out.status().message();
          continue;
        }
        if (*out != want) {
          size_t k = 0;
          while (k < want.size() && k < out->size() && want[k] == (*out)[k]) ++k;
          ADD_FAILURE() << where << ": output differs at byte " << k << "\n--- want ---\n"
                        << want.substr(k > 60 ? k - 60 : 0, 160) << "\n--- got ---\n"
                        << out->substr(k > 60 ? k - 60 : 0, 160);
          continue;
        }
      } else {
        std::string want_type = c["error_type"].get<std::string>(), want_msg = c["error"].get<std::string>();
        if (out.ok()) {
          ADD_FAILURE() << where << ": expected " << want_type << ": " << want_msg << ", got output";
          continue;
        }
        if (err.type != want_type || err.message != want_msg) {
          ADD_FAILURE() << where << ": expected " << want_type << ": " << want_msg << "\n got " << err.type << ": " << err.message;
          continue;
        }
      }
      ++passed;
    }
  }
  std::printf("chat template golden cases: %d/%d byte-identical\n", passed, total);
  EXPECT_EQ(passed, total);
}

// gpt-oss's template (harmony) against transformers' own render_jinja_template
// (tools/gen_harmony_template_fixtures.py): system/developer instructions, assistant thinking,
// tool calls and results, reasoning_effort low/high, built-in tools, and reasoning passed as
// `reasoning_content` / `reasoning`, which transformers aliases to the `thinking` the template reads.
TEST(ChatTemplateGolden, GptOssHarmonyAsTransformers) {
  const std::string dir = std::string(SPOOL_TEST_FIXTURES) + "/chat";
  json golden = json::parse(ReadFile(dir + "/harmony_transformers.json"));
  std::string source = ReadFile(ResolveTemplatePath(golden["template"].get<std::string>()));
  ASSERT_FALSE(source.empty());
  ASSERT_GE(golden["cases"].size(), 10u);
  int total = 0, passed = 0;
  for (const auto& c : golden["cases"]) {
    ChatTemplateInputs in;
    in.messages = c["messages"];
    in.tools = c["tools"];
    in.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    in.bos_token = golden["bos_token"].get<std::string>();
    in.eos_token = golden["eos_token"].get<std::string>();
    in.extra_vars = c["extra_vars"];
    in.now_unix_seconds = golden["now_unix"].get<int64_t>();
    TemplateErrorDetail err;
    auto out = RenderChatTemplate(source, in, &err);
    ++total;
    const std::string where = c["name"].get<std::string>();
    if (c.contains("output")) {
      ASSERT_TRUE(out.ok()) << where << ": " << out.status().message();
      EXPECT_EQ(*out, c["output"].get<std::string>()) << where;
      passed += *out == c["output"].get<std::string>();
    } else {
      ASSERT_FALSE(out.ok()) << where << ": expected " << c["error"].get<std::string>();
      EXPECT_EQ(err.type, c["error_type"].get<std::string>()) << where;
      EXPECT_EQ(err.message, c["error"].get<std::string>()) << where;
      passed += err.type == c["error_type"].get<std::string>() && err.message == c["error"].get<std::string>();
    }
  }
  std::printf("gpt-oss harmony cases as transformers renders them: %d/%d\n", passed, total);
}

}  // namespace
}  // namespace spool::chat
