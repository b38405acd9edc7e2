// Unit tests of the tokenizer part's pieces: UTF-8 helpers, split behaviours,
// BPE merge order on a hand-made vocabulary, and the streaming decoder.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/gguf.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

const std::string kVocabDir = std::string(SPOOL_SHARED_DATA) + "/vocab/";

TEST(Utf8, ScanAndFindInvalid) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), 11u);
  EXPECT_EQ(FindInvalidUtf8("caf\xC3\xA9 \xF0\x9F\xA6\x99"), 10u);
  EXPECT_EQ(FindInvalidUtf8("ab\xC0\x80"), 2u);          // overlong
  EXPECT_EQ(FindInvalidUtf8("ab\xED\xA0\x80"), 2u);      // surrogate
  EXPECT_EQ(FindInvalidUtf8("ab\xF4\x90\x80\x80"), 2u);  // > U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("ab\xE2\x82"), 2u);          // truncated
  size_t len = 0;
  EXPECT_EQ(ScanUtf8("\xE2\x82", 0, &len), Utf8Scan::kTruncated);
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(ScanUtf8("\xE2\x28", 0, &len), Utf8Scan::kInvalid);
  EXPECT_EQ(len, 1u);
}

TEST(Utf8, LossyReplacesMaximalSubparts) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(LossyUtf8("ok"), "ok");
  EXPECT_EQ(LossyUtf8("a\xF0\x9F\xA6" "b"), "a" + fffd + "b");  // one U+FFFD for the 3-byte prefix
  EXPECT_EQ(LossyUtf8("\xC0\x80"), fffd + fffd);
  EXPECT_EQ(LossyUtf8("\xFF"), fffd);
  EXPECT_EQ(StreamablePrefix("ab\xF0\x9F"), 2u);
  EXPECT_EQ(StreamablePrefix("ab\xF0\x9F\xA6\x99"), 6u);
  EXPECT_EQ(StreamablePrefix("ab\xFF"), 3u);  // invalid, not truncated: may go out as U+FFFD
}

TEST(Utf8, ByteLevelAlphabetRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string encoded = ByteLevelEncode(all);
  EXPECT_EQ(FindInvalidUtf8(encoded), encoded.size());
  EXPECT_EQ(ByteLevelDecode(encoded), all);
  EXPECT_EQ(ByteLevelEncode(" "), "\xC4\xA0");  // 'Ġ'
}

TEST(PreTokenizer, SplitBehaviours) {
  // "a-b--c" split on '-' (ranges of each '-').
  const std::vector<std::pair<size_t, size_t>> dashes = {{1, 2}, {3, 4}, {4, 5}};
  auto run = [&](SplitBehavior b, bool invert = false) {
    std::vector<std::string> out;
    SplitByRanges("a-b--c", dashes, b, invert, out);
    std::string joined;
    for (auto& s : out) joined += "[" + s + "]";
    return joined;
  };
  EXPECT_EQ(run(SplitBehavior::kIsolated), "[a][-][b][-][-][c]");
  EXPECT_EQ(run(SplitBehavior::kRemoved), "[a][b][c]");
  EXPECT_EQ(run(SplitBehavior::kContiguous), "[a][-][b][--][c]");
  EXPECT_EQ(run(SplitBehavior::kMergedWithPrevious), "[a-][b-][-][c]");
  EXPECT_EQ(run(SplitBehavior::kMergedWithNext), "[a][-b][-][-c]");
  EXPECT_EQ(run(SplitBehavior::kRemoved, /*invert=*/true), "[-][-][-]");
}

// A tiny byte-level-free BPE: merges apply by rank, leftmost first on ties.
TEST(Bpe, MergeOrderByRankThenLeftmost) {
  TokenizerSpec spec;
  spec.source = "hand-made";
  spec.model = ModelKind::kBpe;
  spec.tokens = {"a", "b", "c", "ab", "bc", "abc", "aa", "aaa"};
  spec.merges = {{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}};
  auto tok = Tokenizer::Create(spec);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto enc = [&](const char* s) { return (*tok)->Encode(s, false, false).value(); };
  EXPECT_EQ(enc("abc"), (std::vector<int32_t>{5}));        // b+c first (rank 0), then a+bc
  EXPECT_EQ(enc("ab"), (std::vector<int32_t>{3}));
  EXPECT_EQ(enc("aaa"), (std::vector<int32_t>{6, 0}));     // leftmost pair merges first
  EXPECT_EQ(enc("cab"), (std::vector<int32_t>{2, 3}));
}

TEST(Tokenizer, InvalidUtf8AndBadIdsAreErrors) {
  TokenizerSpec spec;
  spec.source = "hand-made";
  spec.model = ModelKind::kBpe;
  spec.tokens = {"a", "b"};
  auto tok = Tokenizer::Create(spec);
  ASSERT_TRUE(tok.ok());
  auto bad = (*tok)->Encode("ab\xC3", false, false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("offset 2"), std::string::npos) << bad.status().message();
  EXPECT_FALSE((*tok)->Decode({0, 2}).ok());
  EXPECT_FALSE((*tok)->Decode({-1}).ok());
  EXPECT_EQ((*tok)->TokenToPiece(7), "");
}

Result<std::unique_ptr<Tokenizer>> LoadVocab(const std::string& name) {
  SPOOL_ASSIGN_OR_RETURN(formats::GgufFile g, formats::ReadGguf(kVocabDir + name));
  return LoadTokenizerFromGguf(g);
}

// Feeds ids one at a time; every chunk must be valid UTF-8 and the chunks must add
// up to Decode of the same ids.
void ExpectStreamingMatchesDecode(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.Encode(text, false, false);
  ASSERT_TRUE(ids.ok());
  StreamingDecoder stream(tok);
  std::string joined;
  for (int32_t id : *ids) {
    auto chunk = stream.Push(id);
    ASSERT_TRUE(chunk.ok());
    EXPECT_EQ(FindInvalidUtf8(*chunk), chunk->size()) << "broken UTF-8 chunk for '" << text << "'";
    joined += *chunk;
  }
  joined += stream.Flush();
  EXPECT_EQ(joined, tok.Decode(*ids).value());
  EXPECT_EQ(joined, text);
}

TEST(StreamingDecoder, HoldsBackSplitCharactersSpm) {
  const std::string path = kVocabDir + "ggml-vocab-llama-spm.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "vocab not present";
  auto tok = LoadVocab("ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  // U+1F999 is not a SentencePiece piece: it becomes four byte tokens.
  auto ids = (*tok)->Encode("\xF0\x9F\xA6\x99", false, false).value();
  ASSERT_EQ(ids.size(), 5u);  // "▁" + 4 bytes
  StreamingDecoder stream(**tok);
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(stream.Push(id).value());
  EXPECT_EQ(chunks, (std::vector<std::string>{"", "", "", "", "\xF0\x9F\xA6\x99"}));
  EXPECT_EQ(stream.Flush(), "");
  for (const char* text : {"Hello world", "🦙 llamas 你好 ﷺ", "  leading spaces", "emoji😀😃end", "ü\n\tü"})
    ExpectStreamingMatchesDecode(**tok, text);
}

TEST(StreamingDecoder, ByteLevelAndIncompleteFlush) {
  const std::string path = kVocabDir + "ggml-vocab-gpt-2.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "vocab not present";
  auto tok = LoadVocab("ggml-vocab-gpt-2.gguf");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  for (const char* text : {"Hello 🦙🦙 world", "日本語のテキスト", "ﷺ and 👨‍👩‍👧‍👦", "Ω≈ç√∫"})
    ExpectStreamingMatchesDecode(**tok, text);
  // The first byte of a 4-byte character alone: held back, then U+FFFD on flush.
  const int32_t lead = (*tok)->FindToken(ByteLevelEncode("\xF0"));
  ASSERT_GE(lead, 0);
  StreamingDecoder stream(**tok);
  EXPECT_EQ(stream.Push(lead).value(), "");
  EXPECT_EQ(stream.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ((*tok)->Decode({lead}).value(), "\xEF\xBF\xBD");
}

// A generated id past the tokenizer's vocabulary (the model's padding rows) gives no
// text and leaves the stream intact; Push and Decode still refuse it.
TEST(StreamingDecoder, GeneratedIdsPastTheVocabularyGiveNoText) {
  const std::string path = kVocabDir + "ggml-vocab-gpt-2.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "vocab not present";
  auto tok = LoadVocab("ggml-vocab-gpt-2.gguf");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const int32_t n = (*tok)->n_vocab();
  const auto ids = (*tok)->Encode("Hello world", false, false).value();
  StreamingDecoder stream(**tok);
  std::string text;
  for (int32_t id : ids) {
    text += stream.PushGenerated(id).value();
    EXPECT_EQ(stream.PushGenerated(n).value(), "");
    EXPECT_EQ(stream.PushGenerated(n + 100).value(), "");
  }
  text += stream.Flush();
  EXPECT_EQ(text, "Hello world");
  EXPECT_FALSE(stream.PushGenerated(-1).ok());
  EXPECT_FALSE(stream.Push(n).ok());
  EXPECT_FALSE((*tok)->Decode({n}).ok());
}

TEST(Tokenizer, EosSetAndControl) {
  const std::string path = kVocabDir + "ggml-vocab-llama-bpe.rebuilt.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "vocab not present";
  auto tok = LoadVocab("ggml-vocab-llama-bpe.rebuilt.gguf");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->bos_id(), 128000);
  EXPECT_TRUE((*tok)->eos_ids().count(128001));  // <|end_of_text|>
  EXPECT_TRUE((*tok)->eos_ids().count(128009));  // <|eot_id|>
  EXPECT_TRUE((*tok)->IsControl(128009));
  EXPECT_FALSE((*tok)->IsControl(1000));
  EXPECT_EQ((*tok)->n_vocab(), 128256);
  // Llama-3 adds BOS by default.
  EXPECT_EQ((*tok)->Encode("Hi", true, false).value().front(), 128000);
  EXPECT_EQ((*tok)->Decode({128000, 13347}, /*skip_special=*/true).value(), "Hi");
}

// o200k_harmony (gpt-oss): <|end|> separates the analysis message from the final one,
// so it must not end generation; <|return|> and <|call|> do. Other vocabularies keep
// <|end|> (Phi-3).
TEST(Tokenizer, HarmonyEndOfGeneration) {
  auto make = [](bool harmony) {
    std::string added = R"({"id": 3, "content": "<|end|>", "special": true})";
    if (harmony)
      added += R"(, {"id": 4, "content": "<|return|>", "special": true}, {"id": 5, "content": "<|call|>", "special": true},
                   {"id": 6, "content": "<|channel|>", "special": true})";
    const std::string json = R"({"added_tokens": [)" + added + R"(], "normalizer": null,
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "post_processor": null,
      "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})";
    auto spec = SpecFromJson(json, "", "test.json");
    EXPECT_TRUE(spec.ok()) << spec.status().message();
    return Tokenizer::Create(std::move(spec).value());
  };
  auto phi = make(false);
  ASSERT_TRUE(phi.ok()) << phi.status().message();
  EXPECT_TRUE((*phi)->eos_ids().count(3));
  auto oss = make(true);
  ASSERT_TRUE(oss.ok()) << oss.status().message();
  EXPECT_FALSE((*oss)->eos_ids().count(3));  // <|end|>
  EXPECT_TRUE((*oss)->eos_ids().count(4));   // <|return|>
  EXPECT_TRUE((*oss)->eos_ids().count(5));   // <|call|>
  // Harmony markers survive a decode that keeps special tokens (chat/reasoning.h).
  StreamingDecoder keep(**oss, /*skip_special=*/false, /*at_sequence_start=*/false);
  EXPECT_EQ(keep.Push(6).value() + keep.Push(2).value(), "<|channel|>ab");
}

}  // namespace
}  // namespace spool::tokenizer
