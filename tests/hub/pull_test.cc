// Unit tests of the hub part's pure pieces: digests, ETag handling, file selection.
// The network side is tested against a mock hub in tests/py/test_pull.py.
#include <gtest/gtest.h>

#include "hub/digest.h"
#include "hub/hub_api.h"
#include "hub/pull.h"

namespace spool::hub {
namespace {

std::string Digest(DigestKind kind, const std::string& data, size_t split) {
  StreamingDigest d(kind, data.size());
  d.Update(data.data(), split);
  d.Update(data.data() + split, data.size() - split);
  return d.FinishHex();
}

TEST(Digest, Sha256KnownVector) {  // FIPS 180-2 "abc"
  EXPECT_EQ(Digest(DigestKind::kSha256, "abc", 1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Digest, GitBlobSha1MatchesGitHashObject) {  // `printf 'hello\n' | git hash-object --stdin`
  EXPECT_EQ(Digest(DigestKind::kGitSha1, "hello\n", 3), "ce013625030ba8dba906f756967f9e9ca394464a");
}

TEST(Digest, ResetStartsOver) {
  StreamingDigest d(DigestKind::kSha256, 3);
  d.Update("xyz", 3);
  d.Reset();
  d.Update("abc", 3);
  EXPECT_EQ(d.FinishHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Etag, KindAndNormalisation) {
  EXPECT_EQ(NormalizeEtag("W/\"abc\""), "abc");
  EXPECT_EQ(NormalizeEtag("\"abc\""), "abc");
  EXPECT_EQ(DigestKindForEtag(std::string(64, 'a')), DigestKind::kSha256);
  EXPECT_EQ(DigestKindForEtag(std::string(40, '0')), DigestKind::kGitSha1);
  EXPECT_EQ(DigestKindForEtag("abc-123"), DigestKind::kNone);
  EXPECT_EQ(DigestKindForEtag(std::string(63, 'a') + "g"), DigestKind::kNone);
}

TEST(RepoPath, RejectsEscapes) {
  EXPECT_TRUE(IsSafeRepoPath("model.safetensors"));
  EXPECT_TRUE(IsSafeRepoPath("sub/dir/x.gguf"));
  EXPECT_FALSE(IsSafeRepoPath("../x"));
  EXPECT_FALSE(IsSafeRepoPath("a/../../x"));
  EXPECT_FALSE(IsSafeRepoPath("/etc/passwd"));
  EXPECT_FALSE(IsSafeRepoPath("a//b"));
  EXPECT_FALSE(IsSafeRepoPath("a\\b"));
  EXPECT_FALSE(IsSafeRepoPath(""));
}

TEST(Select, SafetensorsSingleAndSharded) {
  bool sharded = true;
  auto f = SafetensorsFiles({"README.md", "config.json", "model.safetensors", "tokenizer.json", "x.bin"}, &sharded);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(*f, (std::vector<std::string>{"config.json", "tokenizer.json", "model.safetensors"}));
  EXPECT_FALSE(sharded);
  f = SafetensorsFiles({"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors"}, &sharded);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(sharded);
  EXPECT_EQ(f->back(), "model.safetensors.index.json");
}

TEST(Select, SafetensorsMissingPiecesAreClear) {
  bool sharded;
  auto f = SafetensorsFiles({"m-Q4_K_M.gguf"}, &sharded);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("NAME:QUANT"), std::string::npos) << f.status().message();
  f = SafetensorsFiles({"config.json", "pytorch_model.bin"}, &sharded);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("model.safetensors"), std::string::npos);
}

TEST(Select, GgufByLabel) {
  std::vector<std::string> listing = {"M-Q4_K_M.gguf", "M-Q4_K_S.gguf", "M-Q8_0.gguf", "README.md",
                                      "big/M-Q6_K-00002-of-00002.gguf", "big/M-Q6_K-00001-of-00002.gguf"};
  auto f = GgufFiles(listing, "q4_k_m");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, (std::vector<std::string>{"M-Q4_K_M.gguf"}));
  f = GgufFiles(listing, "Q6_K");  // every part of a split file, in order
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, (std::vector<std::string>{"big/M-Q6_K-00001-of-00002.gguf", "big/M-Q6_K-00002-of-00002.gguf"}));
  f = GgufFiles(listing, "Q4_K");  // Q4_K_M and Q4_K_S: ambiguous
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("several"), std::string::npos);
  f = GgufFiles(listing, "IQ2_XS");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("M-Q8_0.gguf"), std::string::npos) << f.status().message();
}

}  // namespace
}  // namespace spool::hub
