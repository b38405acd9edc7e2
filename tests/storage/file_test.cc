// storage::File: buffered, O_DIRECT, and the O_DIRECT-refused fallback.
#include "storage/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/aligned_buffer.h"
#include "storage_test_util.h"

namespace spool::storage {
namespace {

using testing::FirstMismatch;
using testing::TempFile;

struct Mode {
  const char* name;
  OpenMode open;
};
class FileTest : public ::testing::TestWithParam<Mode> {};

TEST_P(FileTest, ReadsArbitraryRanges) {
  TempFile tf(3 * 4096 * 100 + 1234);
  auto f = File::Open(tf.path(), GetParam().open);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->size(), 3u * 4096 * 100 + 1234);
  AlignedBuffer buf(8 << 20);
  struct Range { uint64_t off, len, dst_shift; };
  for (Range r : std::vector<Range>{{0, 4096, 0}, {0, 1, 0}, {4095, 2, 0}, {3, 10000, 1}, {4096, 8192, 0},
                                    {12345, 777777, 7}, {f->size() - 1234, 1234, 0}, {f->size() - 1, 1, 3},
                                    {0, f->size(), 0}, {100, 0, 0}, {5000, 5 << 20 > f->size() - 5000 ? f->size() - 5000 : 5 << 20, 4096}}) {
    uint8_t* dst = buf.data() + r.dst_shift;
    ASSERT_TRUE(f->ReadAt(dst, r.off, r.len).ok()) << r.off << "+" << r.len;
    EXPECT_EQ(FirstMismatch(dst, r.off, r.len), -1) << GetParam().name << " " << r.off << "+" << r.len;
  }
}

TEST_P(FileTest, PastEndIsInvalidArgumentNamingPath) {
  TempFile tf(10000);
  auto f = File::Open(tf.path(), GetParam().open);
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> buf(20000);
  Status st = f->ReadAt(buf.data(), 9000, 1001);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find(tf.path()), std::string::npos);
  EXPECT_NE(st.message().find("offset 9000"), std::string::npos);
  EXPECT_FALSE(f->ReadAt(buf.data(), ~0ull, 2).ok());
}

TEST_P(FileTest, FileThatShrankIsTruncatedError) {
  TempFile tf(64 * 1024);
  auto f = File::Open(tf.path(), GetParam().open);
  ASSERT_TRUE(f.ok());
  tf.Truncate(10000);
  AlignedBuffer buf(64 * 1024);
  Status st = f->ReadAt(buf.data() + 1, 8000, 5000);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kIo);
  EXPECT_NE(st.message().find("file truncated while reading"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(tf.path()), std::string::npos);
  Status aligned = f->ReadAt(buf.data(), 8192, 8192);
  ASSERT_FALSE(aligned.ok());
  EXPECT_NE(aligned.message().find("file truncated while reading"), std::string::npos) << aligned.message();
}

INSTANTIATE_TEST_SUITE_P(Modes, FileTest,
                         ::testing::Values(Mode{"buffered", OpenMode{false, false}},
                                           Mode{"direct", OpenMode{true, false}},
                                           Mode{"direct_refused", OpenMode{true, true}}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(File, ModeFlags) {
  TempFile tf(8192);
  auto d = File::Open(tf.path(), OpenMode{true, false});
  ASSERT_TRUE(d.ok());
  // Either O_DIRECT was accepted or the fallback drops pages: never neither.
  EXPECT_NE(d->is_direct(), d->drops_cache());
  auto fb = File::Open(tf.path(), OpenMode{true, true});
  ASSERT_TRUE(fb.ok());
  EXPECT_FALSE(fb->is_direct());
  EXPECT_TRUE(fb->drops_cache());
  auto b = File::Open(tf.path());
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->is_direct());
  EXPECT_FALSE(b->drops_cache());
  bool was_direct = d->is_direct();
  File moved = std::move(*d);
  EXPECT_EQ(moved.is_direct(), was_direct);
  EXPECT_EQ(d->fd(), -1);
}

TEST(File, MissingFileIsNotFound) {
  auto f = File::Open("/nonexistent/weights.bin", OpenMode{true});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/weights.bin"), std::string::npos);
  auto dir = File::Open("/tmp");
  ASSERT_FALSE(dir.ok());
}

// A FIFO (no writer) must be refused at once, not block in open() (issue 20).
TEST(File, FifoIsRefusedWithoutBlocking) {
  std::string path = ::testing::TempDir() + "/spool_file_test_fifo";
  ::unlink(path.c_str());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  for (bool direct : {false, true}) {
    auto f = File::Open(path, OpenMode{direct, false});
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.status().message().find("not a regular file"), std::string::npos) << f.status().message();
  }
  auto dev = File::Open("/dev/zero", OpenMode{});
  EXPECT_FALSE(dev.ok());
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace spool::storage
