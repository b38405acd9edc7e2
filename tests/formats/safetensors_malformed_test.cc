// Malformed safetensors input (LABELS malformed): every case is a Status naming the file.
#include <gtest/gtest.h>

#include "formats/safetensors.h"
#include "test_writers.h"

namespace spool::formats {
namespace {

using testing::Bytes;
using testing::SafetensorsBytes;
using testing::TempDir;
using testing::WriteFile;

void ExpectError(const std::vector<uint8_t>& b, ErrorCode code, const std::string& needle) {
  auto r = ParseSafetensors(b.data(), b.size(), "bad.safetensors");
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_EQ(r.status().message().rfind("bad.safetensors: ", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << "message: " << r.status().message();
}

std::vector<uint8_t> Data(size_t n) { return std::vector<uint8_t>(n, 0); }

TEST(SafetensorsMalformed, HeaderLengthPastEofAndTooSmall) {
  Bytes b;
  b.U64(1000).Raw("{}", 2);
  ExpectError(b.data, ErrorCode::kInvalidFile, "extends past the end of the file");
  ExpectError(std::vector<uint8_t>{1, 2, 3}, ErrorCode::kInvalidFile, "too small");
  Bytes huge;
  huge.U64(1ull << 40).Raw("{}", 2);
  ExpectError(huge.data, ErrorCode::kInvalidFile, "exceeds the limit");
}

TEST(SafetensorsMalformed, HeaderLengthPastEofOnDisk) {
  TempDir dir;
  Bytes b;
  b.U64(1000).Raw("{}", 2);
  WriteFile(dir.File("x.safetensors"), b.data);
  auto r = ReadSafetensors(dir.File("x.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir.File("x.safetensors")), std::string::npos);
}

TEST(SafetensorsMalformed, BadJson) {
  ExpectError(SafetensorsBytes("{\"a\": ", {}), ErrorCode::kInvalidFile, "invalid JSON");
  ExpectError(SafetensorsBytes("[1,2]", {}), ErrorCode::kInvalidFile, "must be a JSON object");
  ExpectError(SafetensorsBytes(std::string(10000, '['), {}), ErrorCode::kInvalidFile, "nested deeper");
  ExpectError(SafetensorsBytes("{\"a\":\"\xff\"}", {}), ErrorCode::kInvalidFile, "invalid JSON");
}

TEST(SafetensorsMalformed, WrongByteLength) {
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", Data(16)),
              ErrorCode::kInvalidFile, "span 12 bytes, expected 16");
}

TEST(SafetensorsMalformed, OffsetsOutsideData) {
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", Data(16)),
              ErrorCode::kInvalidFile, "outside the data section of 16 bytes");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", Data(16)),
              ErrorCode::kInvalidFile, "outside the data section");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[-1,15]}})", Data(16)),
              ErrorCode::kInvalidFile, "non-negative integer");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", Data(16)),
              ErrorCode::kInvalidFile, "[begin, end]");
}

TEST(SafetensorsMalformed, UnknownDtypeNamesTensor) {
  ExpectError(SafetensorsBytes(R"({"pos_ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", Data(16)),
              ErrorCode::kUnsupported, "tensor 'pos_ids': dtype I64 is not supported");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,16]}})", Data(16)),
              ErrorCode::kInvalidFile, "dtype");
}

TEST(SafetensorsMalformed, BadShapes) {
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", Data(16)),
              ErrorCode::kInvalidFile, "overflows");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}})", Data(16)),
              ErrorCode::kInvalidFile, "shape[0]");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":"x","data_offsets":[0,16]}})", Data(16)),
              ErrorCode::kInvalidFile, "shape");
  ExpectError(SafetensorsBytes(R"({"w":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}})", Data(16)),
              ErrorCode::kUnsupported, "zero-sized");
  ExpectError(SafetensorsBytes(R"({"w":[1]})", Data(16)), ErrorCode::kInvalidFile, "expected an object");
}

TEST(SafetensorsMalformed, OverlapAndBadMetadata) {
  ExpectError(SafetensorsBytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", Data(16)),
              ErrorCode::kInvalidFile, "overlaps");
  ExpectError(SafetensorsBytes(R"({"__metadata__":{"k":1}})", {}), ErrorCode::kInvalidFile, "__metadata__");
}

TEST(SafetensorsMalformed, EveryTruncationFails) {
  auto full = testing::SafetensorsFile({{"a", "F32", {3, 5}}, {"b", "BF16", {7}}}, R"({"format":"pt"})");
  for (size_t n = 0; n < full.size(); ++n) {
    auto r = ParseSafetensors(full.data(), n, "cut.safetensors");
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.status().message().rfind("cut.safetensors: ", 0), 0u);
  }
  EXPECT_TRUE(ParseSafetensors(full.data(), full.size(), "ok").ok());
}

TEST(SafetensorsMalformed, ShardIndexProblems) {
  TempDir dir;
  WriteFile(dir.File("a.safetensors"), testing::SafetensorsFile({{"x", "F32", {2}}}));
  WriteFile(dir.File("b.safetensors"), testing::SafetensorsFile({{"x", "F32", {2}}}));
  auto write_index = [&](const std::string& wm) {
    WriteFile(dir.File("model.safetensors.index.json"), "{\"weight_map\":" + wm + "}");
    return ReadShardedSafetensors(dir.File("model.safetensors.index.json"));
  };
  auto trav = write_index(R"({"x":"../a.safetensors"})");
  ASSERT_FALSE(trav.ok());
  EXPECT_NE(trav.status().message().find("not a plain file name"), std::string::npos);
  auto dup = write_index(R"({"x":"a.safetensors","y":"b.safetensors"})");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("also appears in"), std::string::npos) << dup.status().message();
  auto absent = write_index(R"({"x":"a.safetensors","zzz":"a.safetensors"})");
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.status().message().find("'zzz'"), std::string::npos);
  auto missing_shard = write_index(R"({"x":"c.safetensors"})");
  ASSERT_FALSE(missing_shard.ok());
  EXPECT_EQ(missing_shard.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing_shard.status().message().find("c.safetensors"), std::string::npos);
  auto not_obj = write_index("[1]");
  ASSERT_FALSE(not_obj.ok());
  EXPECT_NE(not_obj.status().message().find("weight_map"), std::string::npos);
  WriteFile(dir.File("model.safetensors.index.json"), std::string("{nope"));
  auto bad = ReadShardedSafetensors(dir.File("model.safetensors.index.json"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.safetensors.index.json"), std::string::npos);
}

}  // namespace
}  // namespace spool::formats
