// Malformed GGUF input: every case must return a clear Status naming the file,
// never crash (these run again under ASan/UBSan: LABELS malformed).
#include <gtest/gtest.h>

#include "formats/gguf.h"

#include <sys/stat.h>
#include <unistd.h>

#include "formats/model_source.h"
#include "test_writers.h"

namespace spool::formats {
namespace {

using testing::Bytes;
using testing::GgufBuilder;

const std::string kStories = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";

Status ParseBytes(const std::vector<uint8_t>& b, const std::string& name = "bad.gguf") {
  auto r = ReadGgufFromMemory(b.data(), b.size(), name);
  return r.ok() ? Status::Ok() : r.status();
}

void ExpectError(const std::vector<uint8_t>& b, ErrorCode code, const std::string& needle) {
  Status st = ParseBytes(b);
  ASSERT_FALSE(st.ok()) << "expected an error containing: " << needle;
  EXPECT_EQ(st.code(), code) << st.message();
  EXPECT_EQ(st.message().rfind("bad.gguf: ", 0), 0u) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << "message: " << st.message();
}

GgufBuilder OneTensor() {
  GgufBuilder g;
  g.KvStr("general.architecture", "llama");
  g.Tensor("w", {4, 2}, 0, 32);
  return g;
}

TEST(GgufMalformed, EveryTruncationOfTheHeaderFails) {
  auto full = testing::ReadAll(kStories);
  ASSERT_GT(full.size(), 14176u);
  // Every cut inside the header, and a sample of cuts inside the data section.
  std::vector<size_t> cuts;
  for (size_t n = 0; n <= 14200; ++n) cuts.push_back(n);
  for (size_t n = 14200; n < full.size(); n += 997) cuts.push_back(n);
  cuts.push_back(full.size() - 1);
  for (size_t n : cuts) {
    auto r = ReadGgufFromMemory(full.data(), n, "cut.gguf");
    ASSERT_FALSE(r.ok()) << "truncated to " << n << " bytes but parsed";
    ASSERT_EQ(r.status().message().rfind("cut.gguf: ", 0), 0u) << r.status().message();
  }
  EXPECT_TRUE(ReadGgufFromMemory(full.data(), full.size(), "ok.gguf").ok());
}

TEST(GgufMalformed, TruncatedFileOnDiskNamesThePath) {
  auto full = testing::ReadAll(kStories);
  testing::TempDir dir;
  std::string path = dir.File("short.gguf");
  testing::WriteFile(path, full.data(), 5000);
  auto r = ReadGguf(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidFile);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
}

TEST(GgufMalformed, BadMagicAndVersions) {
  auto b = OneTensor().Build();
  b[0] = 'X';
  ExpectError(b, ErrorCode::kInvalidFile, "not a GGUF file");
  GgufBuilder v1 = OneTensor();
  v1.version = 1;
  ExpectError(v1.Build(), ErrorCode::kUnsupported, "version 1 is not supported");
  GgufBuilder v4 = OneTensor();
  v4.version = 4;
  ExpectError(v4.Build(), ErrorCode::kUnsupported, "GGUF version 4");
  GgufBuilder be = OneTensor();
  be.version = 0x03000000;
  ExpectError(be.Build(), ErrorCode::kUnsupported, "big-endian");
}

TEST(GgufMalformed, TensorDataPastEndOfFile) {
  auto b = OneTensor().Build();
  b.resize(b.size() - 1);
  ExpectError(b, ErrorCode::kInvalidFile, "ends past the end of the file");
}

TEST(GgufMalformed, OffsetPastEndWithoutHugeAllocation) {
  // Hand-written: one tensor whose relative offset points far past the file.
  Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(1).U64(0);
  b.Str("w").U32(1).U64(8).U32(0).U64(1ull << 40);
  b.PadTo(32);
  b.data.resize(b.data.size() + 32);
  ExpectError(b.data, ErrorCode::kInvalidFile, "ends past the end of the file");
}

TEST(GgufMalformed, UnalignedTensorOffset) {
  GgufBuilder g = OneTensor();
  g.Tensor("v", {8}, 0, 32);
  g.tensors[1].rel_offset += 4;
  ExpectError(g.Build(), ErrorCode::kInvalidFile, "not a multiple of the alignment");
}

TEST(GgufMalformed, OverlappingTensors) {
  GgufBuilder g = OneTensor();
  g.Tensor("v", {8}, 0, 32);
  g.tensors[1].rel_offset = 0;
  ExpectError(g.Build(), ErrorCode::kInvalidFile, "overlaps");
}

TEST(GgufMalformed, AbsurdStringLength) {
  Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  b.U64(~0ull - 3);  // key length
  b.Raw("abcd", 4);
  b.data.resize(b.data.size() + 64);
  ExpectError(b.data, ErrorCode::kInvalidFile, "string length");
  Bytes v;
  v.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  v.Str("k").U32(8).U64(1ull << 50);
  v.data.resize(v.data.size() + 64);
  ExpectError(v.data, ErrorCode::kInvalidFile, "exceeds");
}

TEST(GgufMalformed, AbsurdArrayAndHeaderCounts) {
  Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  b.Str("tokens").U32(9).U32(8).U64(1ull << 61);
  ExpectError(b.data, ErrorCode::kInvalidFile, "cannot fit");
  Bytes n;
  n.Raw("GGUF", 4).U32(3).U64(1ull << 60).U64(0);
  ExpectError(n.data, ErrorCode::kInvalidFile, "tensor infos cannot fit");
  Bytes k;
  k.Raw("GGUF", 4).U32(3).U64(0).U64(~0ull);
  ExpectError(k.data, ErrorCode::kInvalidFile, "key/value pairs cannot fit");
}

TEST(GgufMalformed, DeepArrayNestingIsBounded) {
  Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  b.Str("deep").U32(9);
  for (int i = 0; i < 100; ++i) b.U32(9).U64(1);
  b.U32(4).U64(0);
  ExpectError(b.data, ErrorCode::kInvalidFile, "nested deeper");
}

TEST(GgufMalformed, BadValueTypesAndBools) {
  Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  b.Str("k").U32(13).U32(0);
  ExpectError(b.data, ErrorCode::kInvalidFile, "unknown value type 13");
  Bytes a;
  a.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  a.Str("k").U32(9).U32(99).U64(0);
  ExpectError(a.data, ErrorCode::kInvalidFile, "unknown array element type 99");
  Bytes t;
  t.Raw("GGUF", 4).U32(3).U64(0).U64(1);
  t.Str("flag").U32(7).Pod<uint8_t>(2);
  ExpectError(t.data, ErrorCode::kInvalidFile, "bool value must be 0 or 1");
}

TEST(GgufMalformed, DuplicateKeysAndTensorNames) {
  GgufBuilder g = OneTensor();
  g.KvStr("general.architecture", "again");
  ExpectError(g.Build(), ErrorCode::kInvalidFile, "duplicate key");
  GgufBuilder t = OneTensor();
  t.Tensor("w", {8}, 0, 32);
  ExpectError(t.Build(), ErrorCode::kInvalidFile, "duplicate tensor name");
}

TEST(GgufMalformed, TooManyDims) {
  GgufBuilder g;
  g.Tensor("w5", {2, 2, 2, 2, 2}, 0, 128);
  ExpectError(g.Build(), ErrorCode::kInvalidFile, "n_dims 5 exceeds the maximum of 4");
}

TEST(GgufMalformed, UnknownTensorTypeNamesTensorAndId) {
  GgufBuilder g;
  g.Tensor("blk.0.attn_q.weight", {256}, 10, 84);  // Q2_K: valid GGML, unsupported here
  ExpectError(g.Build(), ErrorCode::kUnsupported, "'blk.0.attn_q.weight' has GGML tensor type 10");
  GgufBuilder h;
  h.Tensor("x", {4}, 12345, 16);
  ExpectError(h.Build(), ErrorCode::kUnsupported, "type 12345");
}

TEST(GgufMalformed, OverflowingAndZeroDims) {
  GgufBuilder g;
  g.Tensor("big", {1ull << 32, 1ull << 32}, 0, 0);
  ExpectError(g.Build(), ErrorCode::kInvalidFile, "element count overflows");
  GgufBuilder n;
  n.Tensor("neg", {~0ull}, 0, 0);
  ExpectError(n.Build(), ErrorCode::kInvalidFile, "overflows");
  GgufBuilder bytes;  // elements fit in int64 but bytes (x4) do not
  bytes.Tensor("f32big", {1ull << 31, 1ull << 31}, 0, 0);
  ExpectError(bytes.Build(), ErrorCode::kInvalidFile, "tensor 'f32big'");
  GgufBuilder z;
  z.Tensor("zero", {4, 0}, 0, 0);
  ExpectError(z.Build(), ErrorCode::kInvalidFile, "dimension 1 is zero");
}

TEST(GgufMalformed, RowNotAWholeNumberOfBlocks) {
  GgufBuilder g;
  g.Tensor("q", {48, 2}, 8, 34 * 3);  // Q8_0 rows of 48: 1.5 blocks
  ExpectError(g.Build(), ErrorCode::kInvalidFile, "not a multiple of the q8_0 block size 32");
}

TEST(GgufMalformed, BadAlignment) {
  for (uint32_t al : {0u, 3u, 48u, 1u << 30}) {
    GgufBuilder g = OneTensor();
    g.KvU32("general.alignment", al);
    ExpectError(g.Build(), ErrorCode::kInvalidFile, "general.alignment must be a power of two");
  }
  GgufBuilder s = OneTensor();
  s.KvStr("general.alignment", "32");
  ExpectError(s.Build(), ErrorCode::kInvalidFile, "general.alignment");
}

TEST(GgufMalformed, SplitGgufIsUnsupported) {
  GgufBuilder g = OneTensor();
  g.kv.Str("split.count").U32(2).Pod<uint16_t>(3);
  ++g.n_kv;
  ExpectError(g.Build(), ErrorCode::kUnsupported, "split GGUF");
}

TEST(GgufMalformed, RandomByteFlipsNeverCrash) {
  auto full = testing::ReadAll(kStories);
  full.resize(14176 + 131072);  // header + first tensor is enough; parse must just not crash
  uint64_t state = 12345;
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = full;
    for (int k = 0; k < 4; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      size_t pos = (state >> 33) % 14176;
      b[pos] = static_cast<uint8_t>(state >> 13);
    }
    auto r = ReadGgufFromMemory(b.data(), b.size(), "flip.gguf");
    if (!r.ok()) {
      ++errors;
      EXPECT_EQ(r.status().message().rfind("flip.gguf: ", 0), 0u) << r.status().message();
    }
  }
  EXPECT_GT(errors, 0);  // the file is truncated after one tensor, so most flips still fail
}

// Non-regular paths are refused at once: a FIFO must not block open() (issue 20).
TEST(GgufMalformed, FifoDeviceAndFolderAreRefused) {
  std::string fifo = ::testing::TempDir() + "/spool_gguf_test_fifo.gguf";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, std::string("/dev/zero")}) {
    EXPECT_FALSE(ReadGguf(path).ok()) << path;
    auto src = OpenModelSource(path);
    ASSERT_FALSE(src.ok()) << path;
    EXPECT_NE(src.status().message().find(path), std::string::npos) << src.status().message();
  }
  EXPECT_FALSE(OpenModelSource(::testing::TempDir()).ok());  // a folder without config.json
  ::unlink(fifo.c_str());
}

}  // namespace
}  // namespace spool::formats
