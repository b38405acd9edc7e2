// safetensors (single + sharded), HF folders, the HF cache and OpenModelSource.
// Inputs are written by the test itself (test_writers.h).
#include "formats/safetensors.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "formats/hf_cache.h"
#include "formats/hf_folder.h"
#include "formats/model_source.h"
#include "test_writers.h"

namespace spool::formats {
namespace {

using testing::SafetensorsFile;
using testing::StTensor;
using testing::TempDir;
using testing::WriteFile;

TEST(Safetensors, SingleFile) {
  TempDir dir;
  std::string path = dir.File("model.safetensors");
  WriteFile(path, SafetensorsFile({{"a", "F32", {2, 3}}, {"b", "BF16", {4}}, {"c", "F16", {}}},
                                  R"({"format":"pt"})"));
  auto r = ReadSafetensors(path, 7);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->tensors.size(), 3u);
  EXPECT_EQ(r->metadata.at("format"), "pt");
  const TensorInfo& a = r->tensors[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(a.offset, r->data_offset);
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(a.file_index, 7u);
  EXPECT_EQ(r->data_offset % 8, 0u);
  const TensorInfo& b = r->tensors[1];
  EXPECT_EQ(b.dtype, DType::kBF16);
  EXPECT_EQ(b.offset, r->data_offset + 24);
  EXPECT_EQ(r->tensors[2].shape.size(), 0u);  // scalar
  EXPECT_EQ(r->tensors[2].nbytes, 2u);
  // Offsets point at each tensor's bytes (the writer fills tensor i with i+1).
  auto bytes = testing::ReadAll(path);
  EXPECT_EQ(bytes[a.offset], 1);
  EXPECT_EQ(bytes[b.offset + b.nbytes - 1], 2);
  EXPECT_EQ(bytes[r->tensors[2].offset], 3);
}

TEST(Safetensors, EmptyHeaderIsValid) {
  auto b = testing::SafetensorsBytes("{}", {});
  auto r = ParseSafetensors(b.data(), b.size(), "empty.safetensors");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->tensors.empty());
}

void WriteShards(const TempDir& dir) {
  WriteFile(dir.File("model-00001-of-00002.safetensors"),
            SafetensorsFile({{"model.embed_tokens.weight", "BF16", {16, 8}}, {"model.norm.weight", "BF16", {8}}}));
  WriteFile(dir.File("model-00002-of-00002.safetensors"),
            SafetensorsFile({{"lm_head.weight", "BF16", {16, 8}}}));
  WriteFile(dir.File("model.safetensors.index.json"), std::string(R"({
    "metadata": {"total_size": 528},
    "weight_map": {
      "lm_head.weight": "model-00002-of-00002.safetensors",
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00001-of-00002.safetensors"
    }})"));
}

TEST(Safetensors, Sharded) {
  TempDir dir;
  WriteShards(dir);
  auto r = ReadShardedSafetensors(dir.File("model.safetensors.index.json"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->files.size(), 2u);
  EXPECT_EQ(r->files[0], dir.File("model-00001-of-00002.safetensors"));
  EXPECT_EQ(r->tensors.size(), 3u);
  const TensorInfo& lm = r->tensors[r->tensor_by_name.at("lm_head.weight")];
  EXPECT_EQ(lm.file_index, 1u);
  EXPECT_EQ(lm.shape, (std::vector<uint64_t>{16, 8}));
  auto shard2 = testing::ReadAll(r->files[1]);
  EXPECT_EQ(shard2.size(), lm.offset + lm.nbytes);
  const TensorInfo& norm = r->tensors[r->tensor_by_name.at("model.norm.weight")];
  EXPECT_EQ(norm.file_index, 0u);
  EXPECT_EQ(norm.offset, r->tensors[r->tensor_by_name.at("model.embed_tokens.weight")].offset + 256);
}

TEST(HfFolder, ShardedFolderWithTokenizerFiles) {
  TempDir dir;
  WriteShards(dir);
  WriteFile(dir.File("config.json"), std::string(R"({"model_type":"llama","hidden_size":8,"num_hidden_layers":0})"));
  WriteFile(dir.File("generation_config.json"), std::string(R"({"eos_token_id":[1,2]})"));
  WriteFile(dir.File("tokenizer.json"), std::string("{}"));
  WriteFile(dir.File("chat_template.jinja"), std::string("{{ messages }}"));
  auto m = OpenModelSource(dir.path());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->kind, ModelSource::Kind::kSafetensors);
  EXPECT_EQ(m->root, dir.path());
  EXPECT_EQ(m->files.size(), 2u);
  EXPECT_EQ(m->hf_config["model_type"], "llama");
  EXPECT_EQ(m->hf_config.begin().key(), "model_type");  // key order kept
  EXPECT_EQ(m->generation_config["eos_token_id"][1], 2);
  EXPECT_EQ(m->tokenizer_json_path, dir.File("tokenizer.json"));
  EXPECT_EQ(m->tokenizer_config_path, "");
  EXPECT_EQ(m->chat_template_path, dir.File("chat_template.jinja"));
  const TensorInfo* lm = m->FindTensor("lm_head.weight");
  ASSERT_NE(lm, nullptr);
  EXPECT_EQ(m->files[lm->file_index], dir.File("model-00002-of-00002.safetensors"));
  EXPECT_EQ(m->FindTensor("missing"), nullptr);
  EXPECT_EQ(m->total_tensor_bytes(), 528u);
}

TEST(HfFolder, SingleFileAndNoGenerationConfig) {
  TempDir dir;
  WriteFile(dir.File("config.json"), std::string(R"({"model_type":"qwen2"})"));
  WriteFile(dir.File("model.safetensors"), SafetensorsFile({{"w", "F32", {2, 2}}}));
  auto m = OpenModelSource(dir.path() + "/");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_TRUE(m->generation_config.is_null());
  EXPECT_EQ(m->files, std::vector<std::string>{dir.File("model.safetensors")});
  EXPECT_NE(m->FindTensor("w"), nullptr);
}

TEST(HfFolder, MissingWeightsAndConfig) {
  TempDir dir;
  WriteFile(dir.File("config.json"), std::string("{}"));
  WriteFile(dir.File("pytorch_model.bin"), std::string("x"));
  auto m = OpenModelSource(dir.path());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(m.status().message().find(".bin"), std::string::npos) << m.status().message();
  TempDir empty;
  auto e = OpenModelSource(empty.path());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("no config.json"), std::string::npos);
}

TEST(ModelSource, GgufFile) {
  std::string path = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";
  auto m = OpenModelSource(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->kind, ModelSource::Kind::kGguf);
  EXPECT_EQ(m->files, std::vector<std::string>{path});
  ASSERT_TRUE(m->gguf.has_value());
  EXPECT_EQ(*m->gguf->GetInt("llama.block_count"), 5);
  EXPECT_EQ(m->tensors.size(), 48u);
  EXPECT_EQ(m->FindTensor("blk.4.attn_k.weight")->shape, (std::vector<uint64_t>{32, 64}));
  EXPECT_TRUE(m->hf_config.is_null());
}

TEST(ModelSource, ErrorsNameThePath) {
  auto missing = OpenModelSource("/no/such/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/no/such/model.gguf"), std::string::npos);
  TempDir dir;
  WriteFile(dir.File("x.txt"), std::string("hello"));
  auto other = OpenModelSource(dir.File("x.txt"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(other.status().message().find(dir.File("x.txt")), std::string::npos);
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old, had_ = true;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

void MakeCachedModel(const std::string& hub, const std::string& commit, const std::string& ref) {
  std::string repo = hub + "/models--acme--tiny";
  WriteFile(repo + "/refs/" + ref, commit + "\n");
  std::string snap = repo + "/snapshots/" + commit;
  WriteFile(snap + "/config.json", std::string(R"({"model_type":"llama"})"));
  WriteFile(snap + "/model.safetensors", SafetensorsFile({{"w", "F16", {4}}}));
}

TEST(HfCache, ResolvesRefsAndRevisions) {
  TempDir home, hub;
  ScopedEnv e1("HF_HUB_CACHE", hub.path());
  ScopedEnv e2("HF_HOME", home.path() + "/hf");
  ScopedEnv e3("HOME", home.path());
  MakeCachedModel(hub.path(), "abc123", "main");
  MakeCachedModel(hub.path(), "def456", "v2");
  auto main_snap = ResolveHfCacheId("acme/tiny");
  ASSERT_TRUE(main_snap.ok()) << main_snap.status().message();
  EXPECT_EQ(*main_snap, hub.path() + "/models--acme--tiny/snapshots/abc123");
  EXPECT_EQ(*ResolveHfCacheId("acme/tiny@v2"), hub.path() + "/models--acme--tiny/snapshots/def456");
  EXPECT_EQ(*ResolveHfCacheId("acme/tiny@def456"), hub.path() + "/models--acme--tiny/snapshots/def456");
  auto m = OpenModelSource("acme/tiny");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->display_name, "acme/tiny");
  EXPECT_EQ(m->root, *main_snap);
  EXPECT_NE(m->FindTensor("w"), nullptr);

  auto bad_rev = ResolveHfCacheId("acme/tiny@nope");
  ASSERT_FALSE(bad_rev.ok());
  EXPECT_EQ(bad_rev.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(bad_rev.status().message().find("no refs/nope"), std::string::npos);
}

TEST(HfCache, SearchOrderAndNotFoundListsPlaces) {
  TempDir home, hfhome, hub;
  ScopedEnv e1("HF_HUB_CACHE", hub.path());
  ScopedEnv e2("HF_HOME", hfhome.path());
  ScopedEnv e3("HOME", home.path());
  ScopedEnv e4("XDG_CACHE_HOME", home.path() + "/xdg");
  auto dirs = HfCacheDirs();
  ASSERT_EQ(dirs.size(), 4u);
  EXPECT_EQ(dirs[0], hub.path());
  EXPECT_EQ(dirs[1], hfhome.path() + "/hub");
  EXPECT_EQ(dirs[2], home.path() + "/xdg/huggingface/hub");
  EXPECT_EQ(dirs[3], home.path() + "/.cache/huggingface/hub");
  // Only in ~/.cache: found there.
  MakeCachedModel(home.path() + "/.cache/huggingface/hub", "c0ffee", "main");
  EXPECT_EQ(*ResolveHfCacheId("acme/tiny"), home.path() + "/.cache/huggingface/hub/models--acme--tiny/snapshots/c0ffee");
  // HF_HOME/hub takes precedence over ~/.cache.
  MakeCachedModel(hfhome.path() + "/hub", "beef", "main");
  EXPECT_EQ(*ResolveHfCacheId("acme/tiny"), hfhome.path() + "/hub/models--acme--tiny/snapshots/beef");

  auto missing = OpenModelSource("acme/absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  for (const auto& d : dirs)
    EXPECT_NE(missing.status().message().find(d + "/models--acme--absent"), std::string::npos)
        << missing.status().message();
}

TEST(HfCache, IdParsing) {
  EXPECT_TRUE(ParseHfId("org/name").ok());
  EXPECT_EQ(ParseHfId("org/name@rev")->revision, "rev");
  EXPECT_FALSE(ParseHfId("name").ok());
  EXPECT_FALSE(ParseHfId("a/b/c").ok());
  EXPECT_FALSE(ParseHfId("../b").ok());
  EXPECT_FALSE(ParseHfId("org/name@").ok());
}

TEST(HfCache, RefHoldingAPathIsRejected) {
  TempDir hub;
  ScopedEnv e1("HF_HUB_CACHE", hub.path());
  WriteFile(hub.path() + "/models--acme--evil/refs/main", std::string("../../../etc\n"));
  auto r = ResolveHfCacheId("acme/evil");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidFile);
}

}  // namespace
}  // namespace spool::formats
