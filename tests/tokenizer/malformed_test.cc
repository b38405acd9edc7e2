// Malformed input: broken tokenizer.json files, GGUF vocabularies with
// inconsistent metadata, invalid UTF-8 text. Every case must give a clear Status
// (naming the field, expected vs actual), never a crash. Runs under ASan/UBSan.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace spool::tokenizer {
namespace {

using formats::GgufFile;
using formats::GgufType;
using formats::GgufValue;

// ---- tokenizer.json -------------------------------------------------------

const char kGoodJson[] = R"({
  "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
})";

Status JsonError(const std::string& text) {
  auto spec = SpecFromJson(text, "", "test.json");
  if (!spec.ok()) return spec.status();
  auto tok = Tokenizer::Create(std::move(spec).value());
  return tok.ok() ? Status::Ok() : tok.status();
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

void ExpectError(const Status& st, ErrorCode code, const std::string& needle) {
  EXPECT_FALSE(st.ok()) << "expected an error mentioning '" << needle << "'";
  if (st.ok()) return;
  EXPECT_EQ(st.code(), code) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(MalformedJson, GoodBaselineLoads) {
  auto spec = SpecFromJson(kGoodJson, "", "test.json");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  auto tok = Tokenizer::Create(std::move(spec).value());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->Encode("ab", false, false).value(), (std::vector<int32_t>{2}));
}

TEST(MalformedJson, Errors) {
  ExpectError(JsonError("not json"), ErrorCode::kInvalidFile, "not valid JSON");
  ExpectError(JsonError("[1,2]"), ErrorCode::kInvalidFile, "JSON object");
  ExpectError(JsonError("{}"), ErrorCode::kInvalidFile, "missing field 'model'");
  ExpectError(JsonError(Replace(kGoodJson, R"("type": "BPE")", R"("type": "WordLevel")")), ErrorCode::kUnsupported,
              "model type 'WordLevel'");
  ExpectError(JsonError(Replace(kGoodJson, R"("type": "ByteLevel", "add_prefix_space")",
                                R"("type": "UnicodeScripts", "add_prefix_space")")),
              ErrorCode::kUnsupported, "pre_tokenizer type 'UnicodeScripts'");
  ExpectError(JsonError(Replace(kGoodJson, R"("normalizer": null)", R"("normalizer": {"type": "Precompiled"})")),
              ErrorCode::kUnsupported, "normalizer type 'Precompiled'");
  ExpectError(JsonError(Replace(kGoodJson, R"("decoder": {"type": "ByteLevel"})", R"("decoder": {"type": "CTC"})")),
              ErrorCode::kUnsupported, "decoder type 'CTC'");
  ExpectError(JsonError(Replace(kGoodJson, R"(["a b"])", R"(["a c"])")), ErrorCode::kInvalidFile, "merges[0]");
  ExpectError(JsonError(Replace(kGoodJson, R"(["a b"])", R"(["ab"])")), ErrorCode::kInvalidFile, "merges[0]");
  ExpectError(JsonError(Replace(kGoodJson, R"(["a b"])", R"([7])")), ErrorCode::kInvalidFile, "merges[0]");
  ExpectError(JsonError(Replace(kGoodJson, R"("merges": ["a b"])", R"("merges": 5)")), ErrorCode::kInvalidFile,
              "model.merges");
  ExpectError(JsonError(Replace(kGoodJson, R"("b": 1)", R"("b": "one")")), ErrorCode::kInvalidFile, "vocab['b']");
  ExpectError(JsonError(Replace(kGoodJson, R"("b": 1)", R"("b": -4)")), ErrorCode::kInvalidFile, "out of range");
  ExpectError(JsonError(Replace(kGoodJson, R"("b": 1)", R"("b": 7)")), ErrorCode::kInvalidFile, "no token has id 1");
  ExpectError(JsonError(Replace(kGoodJson, R"("id": 3)", R"("id": 1)")), ErrorCode::kInvalidFile, "added_tokens[0]");
  ExpectError(JsonError(Replace(kGoodJson, R"("id": 3)", R"("id": 99999999999)")), ErrorCode::kInvalidFile,
              "added_tokens[0].id");
  ExpectError(JsonError(Replace(kGoodJson, R"("content": "<s>")", R"("content": 5)")), ErrorCode::kInvalidFile,
              "added_tokens[0].content");
  ExpectError(JsonError(Replace(kGoodJson, R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
                                R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"})")),
              ErrorCode::kInvalidFile, "does not compile");
  ExpectError(JsonError(Replace(kGoodJson, R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
                                R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"})")),
              ErrorCode::kUnsupported, "behavior");
  ExpectError(JsonError(Replace(kGoodJson, R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
                                R"("pre_tokenizer": {"type": "Split", "behavior": "Isolated"})")),
              ErrorCode::kInvalidFile, "missing field 'pattern'");
  ExpectError(JsonError(Replace(kGoodJson, R"("post_processor": null)",
                                R"("post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}], "special_tokens": {}})")),
              ErrorCode::kInvalidFile, "no entry for '<x>'");
  ExpectError(JsonError(Replace(kGoodJson, R"("post_processor": null)",
                                R"("post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}], "special_tokens": {"<x>": {"ids": [77]}}})")),
              ErrorCode::kInvalidFile, "out of range");
  ExpectError(JsonError(R"({"model": {"type": "Unigram", "vocab": [["a", "x"]]}})"), ErrorCode::kInvalidFile,
              "model.vocab[0]");
  ExpectError(JsonError(R"({"model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5}})"),
              ErrorCode::kInvalidFile, "unk_id");
  ExpectError(JsonError(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})"), ErrorCode::kInvalidFile,
              "vocabulary is empty");
}

TEST(MalformedJson, MissingTypeIsInferred) {
  // HF accepts a model without "type" when the shape says BPE.
  EXPECT_TRUE(JsonError(Replace(kGoodJson, R"("type": "BPE", )", "")).ok());
}

TEST(MalformedJson, MissingFileIsNotFound) {
  auto tok = LoadTokenizerFromJson("/nonexistent/tokenizer.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
  auto any = LoadTokenizer("/nonexistent/model.gguf");
  ASSERT_FALSE(any.ok());
}

// A FIFO or a device is refused at once (reading it would block or never end).
TEST(MalformedJson, FifoAndDeviceAreRefused) {
  std::string fifo = ::testing::TempDir() + "/spool_tokenizer_test_fifo";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, std::string("/dev/zero")}) {
    auto tok = LoadTokenizer(path);
    ASSERT_FALSE(tok.ok()) << path;
    EXPECT_NE(tok.status().message().find("not a regular file"), std::string::npos) << tok.status().message();
  }
  ::unlink(fifo.c_str());
}

// ---- GGUF metadata --------------------------------------------------------

GgufValue Str(const std::string& s) {
  GgufValue v;
  v.type = GgufType::kString;
  v.scalar = s;
  return v;
}
GgufValue U32(int64_t x) {
  GgufValue v;
  v.type = GgufType::kI32;
  v.scalar = x;
  return v;
}
GgufValue Array(GgufType type, std::vector<GgufValue> items) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.array_type = type;
  v.array = std::move(items);
  return v;
}
GgufValue Strings(const std::vector<std::string>& xs) {
  std::vector<GgufValue> items;
  for (auto& x : xs) items.push_back(Str(x));
  return Array(GgufType::kString, items);
}
GgufValue Floats(size_t n) {
  std::vector<GgufValue> items;
  for (size_t i = 0; i < n; ++i) {
    GgufValue f;
    f.type = GgufType::kF32;
    f.scalar = -static_cast<double>(i);
    items.push_back(f);
  }
  return Array(GgufType::kF32, items);
}
GgufValue Ints(const std::vector<int64_t>& xs) {
  std::vector<GgufValue> items;
  for (auto x : xs) items.push_back(U32(x));
  return Array(GgufType::kI32, items);
}

GgufFile SpmVocab() {
  GgufFile g;
  g.path = "vocab.gguf";
  g.metadata["tokenizer.ggml.model"] = Str("llama");
  g.metadata["tokenizer.ggml.tokens"] = Strings({"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a"});
  g.metadata["tokenizer.ggml.scores"] = Floats(6);
  g.metadata["tokenizer.ggml.token_type"] = Ints({2, 3, 3, 1, 1, 1});
  return g;
}

Status GgufError(const GgufFile& g) {
  auto tok = LoadTokenizerFromGguf(g);
  return tok.ok() ? Status::Ok() : tok.status();
}

TEST(MalformedGguf, GoodBaselineLoads) {
  auto tok = LoadTokenizerFromGguf(SpmVocab());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->Encode("a", true, false).value(), (std::vector<int32_t>{1, 5}));
}

TEST(MalformedGguf, Errors) {
  GgufFile g = SpmVocab();
  g.metadata["tokenizer.ggml.scores"] = Floats(5);
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "'tokenizer.ggml.scores' has 5 entries, expected one per token (6)");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.token_type"] = Ints({1, 1, 1});
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "'tokenizer.ggml.token_type' has 3 entries");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.token_type"] = Ints({1, 1, 1, 1, 1, 42});
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "token_type'[5] = 42");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.bos_token_id"] = U32(600);
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "bos_token_id' = 600");

  g = SpmVocab();
  g.metadata.erase("tokenizer.ggml.scores");
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "scores");

  g = SpmVocab();
  g.metadata.erase("tokenizer.ggml.tokens");
  ExpectError(GgufError(g), ErrorCode::kNotFound, "tokenizer.ggml.tokens");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.tokens"] = Ints({1, 2, 3});
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "tokenizer.ggml.tokens");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.model"] = Str("rwkv");
  ExpectError(GgufError(g), ErrorCode::kUnsupported, "'rwkv'");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.model"] = Str("gpt2");
  ExpectError(GgufError(g), ErrorCode::kNotFound, "tokenizer.ggml.merges");
  g.metadata["tokenizer.ggml.merges"] = Strings({"nospace"});
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "merges'[0] = 'nospace'");
  g.metadata["tokenizer.ggml.merges"] = Strings({"a \xE2\x96\x81"});
  g.metadata["tokenizer.ggml.pre"] = Str("no-such-pre");
  ExpectError(GgufError(g), ErrorCode::kUnsupported, "'no-such-pre'");

  g = SpmVocab();
  g.metadata["tokenizer.ggml.tokens"] = Strings({});
  g.metadata["tokenizer.ggml.scores"] = Floats(0);
  g.metadata["tokenizer.ggml.token_type"] = Ints({});
  ExpectError(GgufError(g), ErrorCode::kInvalidFile, "");
}

// ---- text -----------------------------------------------------------------

TEST(MalformedText, InvalidUtf8IsRejected) {
  auto tok = LoadTokenizerFromGguf(SpmVocab());
  ASSERT_TRUE(tok.ok());
  for (const std::string& bad : {std::string("\xFF"), std::string("a\xC3"), std::string("\xED\xA0\x80"),
                                std::string("x\xF8\x88\x80\x80\x80"), std::string("a\0\xC0\xAF", 4)}) {
    auto ids = (*tok)->Encode(bad, false, true);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), ErrorCode::kInvalidArgument);
  }
  // NUL bytes are valid UTF-8.
  EXPECT_TRUE((*tok)->Encode(std::string("a\0a", 3), false, false).ok());
}

}  // namespace
}  // namespace spool::tokenizer
