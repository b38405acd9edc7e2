// storage::Reader, run for both backends (io_uring, pread) and both open modes.
#include "storage/reader.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <random>

#include "base/aligned_buffer.h"
#include "storage_test_util.h"

namespace spool::storage {
namespace {

using testing::FirstMismatch;
using testing::PatternByte;
using testing::TempFile;

struct Config {
  IoBackend backend;
  bool direct;
};

class ReaderTest : public ::testing::TestWithParam<Config> {
 protected:
  std::unique_ptr<Reader> OpenOrSkip(const std::vector<std::string>& paths, ReaderOptions opt = {}) {
    opt.backend = GetParam().backend;
    opt.direct = GetParam().direct;
    auto r = Reader::Open(paths, opt);
    if (!r.ok() && r.status().code() == ErrorCode::kUnsupported) {
      skip_reason_ = r.status().message();
      return nullptr;
    }
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok()) return nullptr;
    EXPECT_EQ((*r)->backend(), GetParam().backend);
    return std::move(*r);
  }
  std::string skip_reason_;
};

#define OPEN_OR_SKIP(var, ...)                              \
  auto var = OpenOrSkip(__VA_ARGS__);                       \
  if (!var && !skip_reason_.empty()) GTEST_SKIP() << skip_reason_; \
  ASSERT_NE(var, nullptr)

TEST_P(ReaderTest, ManyReadsInFlightAcrossFiles) {
  TempFile a(9 << 20), b(3 * 1000 * 1000 + 17);
  OPEN_OR_SKIP(reader, {a.path(), b.path()});
  std::mt19937_64 rng(42);
  struct Want { uint32_t file; uint64_t off, len; size_t dst; };
  std::vector<Want> wants;
  size_t total = 0;
  for (int i = 0; i < 300; ++i) {
    uint32_t file = rng() % 2;
    uint64_t size = file == 0 ? (9u << 20) : 3 * 1000 * 1000 + 17;
    uint64_t len = (i % 10 == 0) ? (rng() % (3 << 20)) + 1 : (rng() % 70000) + 1;  // some > 1 MiB
    if (i % 3 == 0) len = (len + 4095) / 4096 * 4096;                        // some aligned
    len = std::min(len, size);
    uint64_t off = rng() % (size - len + 1);
    if (i % 3 == 0) off = off / 4096 * 4096;
    size_t dst = total + (i % 3 == 0 ? 0 : rng() % 64);
    total = (dst + len + 4095) / 4096 * 4096;
    wants.push_back({file, off, len, dst});
  }
  AlignedBuffer buf(total);
  std::vector<ReadRequest> reqs;
  for (const auto& w : wants) reqs.push_back({w.file, w.off, w.len, buf.data() + w.dst});
  auto t = reader->Submit(reqs);
  ASSERT_TRUE(t.ok()) << t.status().message();
  Status st = reader->Wait(*t);
  ASSERT_TRUE(st.ok()) << st.message();
  uint64_t want_bytes = 0;
  for (size_t i = 0; i < wants.size(); ++i) {
    EXPECT_EQ(FirstMismatch(buf.data() + wants[i].dst, wants[i].off, wants[i].len), -1)
        << "request " << i << " file " << wants[i].file << " off " << wants[i].off << " len " << wants[i].len;
    want_bytes += wants[i].len;
  }
  ReaderStats s = reader->stats();
  EXPECT_EQ(s.bytes_read, want_bytes);
  EXPECT_GE(s.reads, wants.size());
  EXPECT_GE(s.device_bytes, want_bytes);
  EXPECT_GE(s.wait_seconds, 0.0);
}

TEST_P(ReaderTest, SeveralTicketsWaitedOutOfOrder) {
  TempFile f(4 << 20);
  OPEN_OR_SKIP(reader, {f.path()});
  AlignedBuffer buf(8 << 20);
  std::vector<Ticket> tickets;
  for (int i = 0; i < 8; ++i) {
    ReadRequest r{0, static_cast<uint64_t>(i) * 300000 + 5, 700001, buf.data() + i * (1 << 20)};
    auto t = reader->Submit({r});
    ASSERT_TRUE(t.ok());
    tickets.push_back(*t);
  }
  for (int i = 7; i >= 0; --i) {
    ASSERT_TRUE(reader->Wait(tickets[i]).ok());
    EXPECT_EQ(FirstMismatch(buf.data() + i * (1 << 20), static_cast<uint64_t>(i) * 300000 + 5, 700001), -1);
  }
  Status again = reader->Wait(tickets[0]);
  EXPECT_EQ(again.code(), ErrorCode::kInvalidArgument);
  auto empty = reader->Submit(std::span<const ReadRequest>());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(reader->Wait(*empty).ok());
}

TEST_P(ReaderTest, AlignedDirectReadsAreZeroCopyUnalignedAreBounced) {
  TempFile f(2 << 20);
  OPEN_OR_SKIP(reader, {f.path()});
  AlignedBuffer buf(3 << 20);
  ASSERT_TRUE(reader->ReadAll(std::vector<ReadRequest>{{0, 4096, 1 << 20, buf.data()}}).ok());
  EXPECT_EQ(FirstMismatch(buf.data(), 4096, 1 << 20), -1);
  if (reader->file(0).is_direct()) {
    EXPECT_EQ(reader->stats().bounced_bytes, 0u);
  }
  // O_DIRECT on an unaligned range into an unaligned destination.
  ASSERT_TRUE(reader->ReadAll(std::vector<ReadRequest>{{0, 4097, 1234567, buf.data() + 3}}).ok());
  EXPECT_EQ(FirstMismatch(buf.data() + 3, 4097, 1234567), -1);
  if (reader->file(0).is_direct() && GetParam().backend == IoBackend::kIoUring) {
    EXPECT_EQ(reader->stats().bounced_bytes, 1234567u);
  }
  // The last bytes of a file whose size is not a multiple of 4096.
  TempFile odd(10001);
  OPEN_OR_SKIP(r2, {odd.path()});
  ASSERT_TRUE(r2->ReadAll(std::vector<ReadRequest>{{0, 9999, 2, buf.data()}, {0, 0, 10001, buf.data() + 8}}).ok());
  EXPECT_EQ(FirstMismatch(buf.data(), 9999, 2), -1);
  EXPECT_EQ(FirstMismatch(buf.data() + 8, 0, 10001), -1);
}

TEST_P(ReaderTest, TruncatedFileIsAClearError) {
  TempFile f(1 << 20);
  OPEN_OR_SKIP(reader, {f.path()});
  f.Truncate(300000);
  AlignedBuffer buf(1 << 20);
  Status st = reader->ReadAll(std::vector<ReadRequest>{{0, 250000, 100000, buf.data() + 1}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kIo);
  EXPECT_NE(st.message().find("file truncated while reading"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(f.path()), std::string::npos);
  Status aligned = reader->ReadAll(std::vector<ReadRequest>{{0, 0, 1 << 20, buf.data()}});
  ASSERT_FALSE(aligned.ok());
  EXPECT_NE(aligned.message().find("file truncated while reading"), std::string::npos) << aligned.message();
}

TEST_P(ReaderTest, InjectedEioFailsOnlyItsBatch) {
  TempFile f(4 << 20);
  OPEN_OR_SKIP(reader, {f.path()});
  reader->SetFaultInjector([](uint32_t file, uint64_t offset) { return offset == (2u << 20) ? EIO : 0; });
  AlignedBuffer buf(4 << 20);
  // One 4 MiB request = 4 pieces; the third fails. Wait returns after all four finished.
  Status st = reader->ReadAll(std::vector<ReadRequest>{{0, 0, 4 << 20, buf.data()}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kIo);
  EXPECT_NE(st.message().find("EIO"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("offset 2097152"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(f.path()), std::string::npos);
  EXPECT_EQ(FirstMismatch(buf.data() + (3 << 20), 3 << 20, 1 << 20), -1);  // other pieces completed
  // A batch avoiding the bad offset still succeeds; clearing the injector heals it.
  EXPECT_TRUE(reader->ReadAll(std::vector<ReadRequest>{{0, 0, 1 << 20, buf.data()}}).ok());
  reader->SetFaultInjector(nullptr);
  EXPECT_TRUE(reader->ReadAll(std::vector<ReadRequest>{{0, 0, 4 << 20, buf.data()}}).ok());
  EXPECT_EQ(FirstMismatch(buf.data(), 0, 4 << 20), -1);
}

TEST_P(ReaderTest, BadRequestsAreRejectedBeforeQueueing) {
  TempFile f(10000);
  OPEN_OR_SKIP(reader, {f.path()});
  std::vector<uint8_t> buf(20000);
  auto past = reader->Submit({{0, 9000, 1001, buf.data()}});
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(past.status().message().find(f.path()), std::string::npos);
  EXPECT_FALSE(reader->Submit({{1, 0, 1, buf.data()}}).ok());
  EXPECT_FALSE(reader->Submit({{0, 0, 1, nullptr}}).ok());
  EXPECT_FALSE(reader->Submit({{0, ~0ull, 2, buf.data()}}).ok());
  EXPECT_EQ(reader->stats().reads, 0u);
}

TEST_P(ReaderTest, DestructorWaitsForReadsInFlight) {
  TempFile f(8 << 20);
  AlignedBuffer buf(8 << 20);
  {
    OPEN_OR_SKIP(reader, {f.path()});
    ASSERT_TRUE(reader->Submit({{0, 0, 8 << 20, buf.data()}}).ok());
  }  // destroyed without Wait: must finish the reads first
  EXPECT_EQ(FirstMismatch(buf.data(), 0, 8 << 20), -1);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReaderTest,
                         ::testing::Values(Config{IoBackend::kIoUring, true}, Config{IoBackend::kIoUring, false},
                                           Config{IoBackend::kPread, true}, Config{IoBackend::kPread, false}),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param.backend)) +
                                  (info.param.direct ? "_direct" : "_buffered");
                         });

TEST(Reader, EnvForcesPreadForAuto) {
  TempFile f(4096);
  setenv("SPOOL_IO", "pread", 1);
  auto r = Reader::Open({f.path()});
  unsetenv("SPOOL_IO");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->backend(), IoBackend::kPread);
  auto bad = Reader::Open({f.path()}, ReaderOptions{.max_piece_bytes = 1000});
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  auto missing = Reader::Open({f.path(), "/nonexistent/x"});
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace spool::storage
