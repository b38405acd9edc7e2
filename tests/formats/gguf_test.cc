// GGUF parser: real files from shared/data (values cross-checked with an independent
// Python reader of the spec) and hand-built valid files.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_writers.h"

namespace spool::formats {
namespace {

using testing::GgufBuilder;
using testing::TempDir;
using testing::WriteFile;

const std::string kModels = std::string(SPOOL_SHARED_DATA) + "/models";
const std::string kVocab = std::string(SPOOL_SHARED_DATA) + "/vocab";

TEST(Gguf, Stories260KMetadataAndTensors) {
  auto r = ReadGguf(kModels + "/stories260K.gguf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const GgufFile& f = *r;
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  EXPECT_EQ(f.file_size, 1185376u);
  EXPECT_EQ(f.data_offset, 14176u);  // header ends at 14152, padded to 32
  EXPECT_EQ(f.keys.size(), 19u);
  EXPECT_EQ(f.keys.front(), "tokenizer.ggml.tokens");
  EXPECT_EQ(*f.GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(*f.GetInt("llama.block_count"), 5);
  EXPECT_EQ(*f.GetInt("llama.feed_forward_length"), 172);
  EXPECT_EQ(*f.GetInt("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.seperator_token_id"), 4294967295);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_NEAR(*f.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-10);
  auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  auto types = f.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  EXPECT_EQ((*types)[0], 2);
  EXPECT_EQ((*types)[1], 3);
  auto scores = f.GetFloatArray("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok());
  EXPECT_EQ(scores->size(), 512u);

  ASSERT_EQ(f.tensors.size(), 48u);  // 3 global + 5 blocks x 9
  const TensorInfo* emb = f.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<uint64_t>{512, 64}));  // GGUF ne = [64, 512]
  EXPECT_EQ(emb->dtype, DType::kF32);
  EXPECT_EQ(emb->offset, 14176u);
  EXPECT_EQ(emb->nbytes, 512u * 64 * 4);
  EXPECT_EQ(emb->rows(), 512u);
  EXPECT_EQ(emb->cols(), 64u);
  const TensorInfo* down = f.FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<uint64_t>{64, 172}));  // [n_out=dim, n_in=ffn]
  EXPECT_EQ(down->offset, 14176u + 355840u);
  const TensorInfo* norm = f.FindTensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->shape, (std::vector<uint64_t>{64}));
  EXPECT_EQ(f.FindTensor("nope"), nullptr);
  // Tensors fill the file up to its end.
  uint64_t end = 0;
  for (const auto& t : f.tensors) end = std::max(end, t.offset + t.nbytes);
  EXPECT_EQ(end, f.file_size);
}

TEST(Gguf, TypedGettersRejectWrongTypes) {
  auto r = ReadGguf(kModels + "/stories260K.gguf");
  ASSERT_TRUE(r.ok());
  auto s = r->GetString("llama.block_count");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidFile);
  EXPECT_NE(s.status().message().find("llama.block_count"), std::string::npos);
  EXPECT_NE(s.status().message().find("expected a string, found u32"), std::string::npos);
  auto a = r->GetStringArray("tokenizer.ggml.scores");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("array of f32"), std::string::npos);
  auto m = r->GetInt("no.such.key");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ErrorCode::kNotFound);
}

TEST(Gguf, BabyLlama) {
  auto r = ReadGguf(kModels + "/babyllama-tok105.gguf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r->GetInt("llama.embedding_length"), 128);
  EXPECT_EQ(*r->GetInt("llama.block_count"), 5);
  const TensorInfo* up = r->FindTensor("blk.4.ffn_up.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->shape, (std::vector<uint64_t>{352, 128}));
}

TEST(Gguf, EveryVocabFileParsesWithZeroTensors) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(kVocab)) {
    if (e.path().extension() != ".gguf") continue;
    auto r = ReadGguf(e.path().string());
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->tensors.empty()) << e.path();
    auto tokens = r->GetStringArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << e.path() << ": " << tokens.status().message();
    EXPECT_GT(tokens->size(), 0u);
    ++n;
  }
  EXPECT_GE(n, 10);
  auto spm = ReadGguf(kVocab + "/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(spm.ok());
  EXPECT_EQ(spm->GetStringArray("tokenizer.ggml.tokens")->size(), 32000u);
  EXPECT_EQ(*spm->GetBool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(*spm->GetBool("tokenizer.ggml.add_eos_token"), false);
  EXPECT_EQ(*spm->GetString("tokenizer.ggml.pre"), "default");
  auto bpe = ReadGguf(kVocab + "/ggml-vocab-llama-bpe.rebuilt.gguf");
  ASSERT_TRUE(bpe.ok()) << bpe.status().message();
  EXPECT_EQ(bpe->GetStringArray("tokenizer.ggml.tokens")->size(), 128256u);
  EXPECT_EQ(bpe->GetStringArray("tokenizer.ggml.merges")->size(), 280147u);
}

TEST(Gguf, MemoryAndFileParsersAgree) {
  std::string path = kModels + "/stories260K.gguf";
  auto bytes = testing::ReadAll(path);
  auto a = ReadGguf(path);
  auto b = ReadGgufFromMemory(bytes.data(), bytes.size(), path);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (size_t i = 0; i < a->tensors.size(); ++i) {
    EXPECT_EQ(a->tensors[i].name, b->tensors[i].name);
    EXPECT_EQ(a->tensors[i].offset, b->tensors[i].offset);
    EXPECT_EQ(a->tensors[i].shape, b->tensors[i].shape);
  }
  EXPECT_EQ(a->keys, b->keys);
}

TEST(Gguf, AllValueTypesNestedArraysAndQuantTypes) {
  GgufBuilder g;
  g.version = 2;
  g.alignment = 64;
  g.kv.Str("general.alignment").U32(4).U32(64); ++g.n_kv;
  g.kv.Str("u8").U32(0).Pod<uint8_t>(200); ++g.n_kv;
  g.kv.Str("i8").U32(1).Pod<int8_t>(-5); ++g.n_kv;
  g.kv.Str("u16").U32(2).Pod<uint16_t>(65535); ++g.n_kv;
  g.kv.Str("i16").U32(3).Pod<int16_t>(-300); ++g.n_kv;
  g.kv.Str("i32").U32(5).Pod<int32_t>(-70000); ++g.n_kv;
  g.kv.Str("f32").U32(6).Pod<float>(1.5f); ++g.n_kv;
  g.kv.Str("bool").U32(7).Pod<uint8_t>(1); ++g.n_kv;
  g.kv.Str("u64").U32(10).U64(~0ull); ++g.n_kv;
  g.kv.Str("i64").U32(11).Pod<int64_t>(-(1ll << 40)); ++g.n_kv;
  g.kv.Str("f64").U32(12).Pod<double>(-2.25); ++g.n_kv;
  // [[1, 2], [3]] as an array of arrays of i32.
  g.kv.Str("nested").U32(9).U32(9).U64(2);
  g.kv.U32(5).U64(2).Pod<int32_t>(1).Pod<int32_t>(2);
  g.kv.U32(5).U64(1).Pod<int32_t>(3);
  ++g.n_kv;
  g.kv.Str("empty").U32(9).U32(8).U64(0); ++g.n_kv;
  g.Tensor("q8", {64, 3}, 8, 2 * 34 * 3);        // Q8_0: 32 elems per 34-byte block
  g.Tensor("q4k", {256, 2}, 12, 144 * 2);        // Q4_K
  g.Tensor("q6k", {512}, 14, 210 * 2);           // Q6_K
  g.Tensor("bf16", {3, 5, 7, 2}, 30, 3 * 5 * 7 * 2 * 2);
  g.Tensor("f16", {4}, 1, 8);
  g.Tensor("q4_0", {32}, 2, 18);
  g.Tensor("q4_1", {32}, 3, 20);
  g.Tensor("q5_0", {32}, 6, 22);
  g.Tensor("q5_1", {32}, 7, 24);
  g.Tensor("q5k", {256}, 13, 176);
  auto bytes = g.Build();
  auto r = ReadGgufFromMemory(bytes.data(), bytes.size(), "mem.gguf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->version, 2u);
  EXPECT_EQ(r->alignment, 64u);
  EXPECT_EQ(r->data_offset % 64, 0u);
  EXPECT_EQ(*r->Find("u8")->AsInt(), 200);
  EXPECT_EQ(*r->Find("i8")->AsInt(), -5);
  EXPECT_EQ(*r->Find("u16")->AsInt(), 65535);
  EXPECT_EQ(*r->Find("i16")->AsInt(), -300);
  EXPECT_EQ(*r->Find("i32")->AsInt(), -70000);
  EXPECT_EQ(*r->Find("f32")->AsFloat(), 1.5);
  EXPECT_EQ(*r->GetBool("bool"), true);
  EXPECT_FALSE(r->Find("u64")->AsInt().has_value());  // 2^64-1 does not fit in int64
  EXPECT_FALSE(r->GetInt("u64").ok());
  EXPECT_EQ(*r->Find("u64")->AsFloat(), 18446744073709551615.0);
  EXPECT_EQ(*r->GetInt("i64"), -(1ll << 40));
  EXPECT_EQ(*r->GetFloat("f64"), -2.25);
  const GgufValue* nested = r->Find("nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->array_type, GgufType::kArray);
  ASSERT_EQ(nested->array.size(), 2u);
  EXPECT_EQ(nested->array[0].array.size(), 2u);
  EXPECT_EQ(*nested->array[0].array[1].AsInt(), 2);
  EXPECT_EQ(*nested->array[1].array[0].AsInt(), 3);
  EXPECT_TRUE(r->GetStringArray("empty")->empty());
  EXPECT_EQ(r->keys.size(), 13u);

  const TensorInfo* q8 = r->FindTensor("q8");
  ASSERT_NE(q8, nullptr);
  EXPECT_EQ(q8->dtype, DType::kQ8_0);
  EXPECT_EQ(q8->shape, (std::vector<uint64_t>{3, 64}));
  EXPECT_EQ(q8->nbytes, 204u);
  EXPECT_EQ(r->FindTensor("q4k")->dtype, DType::kQ4_K);
  EXPECT_EQ(r->FindTensor("q6k")->dtype, DType::kQ6_K);
  EXPECT_EQ(r->FindTensor("q5k")->dtype, DType::kQ5_K);
  EXPECT_EQ(r->FindTensor("q4_0")->dtype, DType::kQ4_0);
  EXPECT_EQ(r->FindTensor("q4_1")->dtype, DType::kQ4_1);
  EXPECT_EQ(r->FindTensor("q5_0")->dtype, DType::kQ5_0);
  EXPECT_EQ(r->FindTensor("q5_1")->dtype, DType::kQ5_1);
  EXPECT_EQ(r->FindTensor("f16")->dtype, DType::kF16);
  const TensorInfo* bf = r->FindTensor("bf16");
  EXPECT_EQ(bf->dtype, DType::kBF16);
  EXPECT_EQ(bf->shape, (std::vector<uint64_t>{2, 7, 5, 3}));
  for (const auto& t : r->tensors) EXPECT_EQ(t.offset % 64, 0u) << t.name;
}

TEST(Gguf, DTypeMappingRoundTrips) {
  for (uint32_t id : {0u, 1u, 2u, 3u, 6u, 7u, 8u, 12u, 13u, 14u, 30u}) {
    auto dt = DTypeFromGgmlType(id);
    ASSERT_TRUE(dt.has_value()) << id;
    EXPECT_EQ(GgmlTypeFromDType(*dt), id);
  }
  for (uint32_t id : {4u, 5u, 9u, 10u, 11u, 15u, 16u, 24u, 26u, 28u, 29u, 31u, 1000u})
    EXPECT_FALSE(DTypeFromGgmlType(id).has_value()) << id;
}

TEST(Gguf, MissingFileIsNotFound) {
  auto r = ReadGguf("/nonexistent/x.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/x.gguf"), std::string::npos);
}

}  // namespace
}  // namespace spool::formats
