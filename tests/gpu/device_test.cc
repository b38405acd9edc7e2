// VulkanDevice: enumeration, buffers, transfers, and the errors a user can hit (too
// little memory, out-of-range copies, a device index that does not exist, a shader
// that fails to load).
#include "gpu/vulkan_device.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "gpu_test_util.h"

namespace spool::gpu {
namespace {

TEST(GpuDevice, ListDevicesDescribesEachDevice) {
  auto devs = ListDevices();
  if (!devs.ok()) GTEST_SKIP() << "no Vulkan: " << devs.status().message();
  if (devs.value().empty()) GTEST_SKIP() << "no Vulkan device";
  for (size_t i = 0; i < devs.value().size(); ++i) {
    const DeviceInfo& d = devs.value()[i];
    EXPECT_EQ(d.index, static_cast<int>(i));
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.max_buffer_bytes, 0u);
    EXPECT_GT(d.host_visible_bytes, 0u);
    EXPECT_GE(d.max_workgroup_invocations, 64u);
    EXPECT_GE(d.max_push_constant_bytes, 128u);
  }
}

TEST(GpuDevice, MissingIndexIsAClearError) {
  auto devs = ListDevices();
  if (!devs.ok()) GTEST_SKIP() << "no Vulkan: " << devs.status().message();
  const int n = static_cast<int>(devs.value().size());
  auto d = VulkanDevice::Open(n + 5);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(d.status().message().find("does not exist"), std::string::npos) << d.status().message();
  auto neg = VulkanDevice::Open(-1);
  ASSERT_FALSE(neg.ok());
}

TEST(GpuDevice, UploadDownloadRoundTrip) {
  GPU_TEST_DEVICE(dev);
  std::mt19937 rng(7);
  // Odd sizes, and one larger than the 32 MiB staging chunk.
  for (uint64_t bytes : {uint64_t{1}, uint64_t{3}, uint64_t{4}, uint64_t{4097}, (uint64_t{32} << 20) + 13}) {
    for (MemoryKind kind : {MemoryKind::kDevice, MemoryKind::kHostVisible}) {
      auto b = dev->Allocate(bytes, kind, "round trip");
      ASSERT_TRUE(b.ok()) << b.status().message();
      std::vector<uint8_t> src(bytes), back(bytes, 0);
      for (auto& x : src) x = static_cast<uint8_t>(rng());
      ASSERT_TRUE(dev->Upload(b.value(), 0, src.data(), bytes).ok());
      ASSERT_TRUE(dev->Download(b.value(), 0, back.data(), bytes).ok());
      EXPECT_EQ(src, back) << bytes;
    }
  }
  // At an offset.
  auto b = dev->Allocate(64, MemoryKind::kDevice, "offset");
  ASSERT_TRUE(b.ok());
  std::vector<uint8_t> zeros(64, 0), part(10, 0xab), back(64);
  ASSERT_TRUE(dev->Upload(b.value(), 0, zeros.data(), 64).ok());
  ASSERT_TRUE(dev->Upload(b.value(), 17, part.data(), 10).ok());
  ASSERT_TRUE(dev->Download(b.value(), 0, back.data(), 64).ok());
  for (int i = 0; i < 64; ++i) EXPECT_EQ(back[i], (i >= 17 && i < 27) ? 0xab : 0) << i;
  EXPECT_GE(dev->stats().upload_bytes, 64u);
}

TEST(GpuDevice, TooLittleMemoryIsAClearError) {
  GPU_TEST_DEVICE(dev);
  auto b = dev->Allocate(uint64_t{1} << 50, MemoryKind::kDevice, "huge weights");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(b.status().message().find("huge weights"), std::string::npos) << b.status().message();
  EXPECT_NE(b.status().message().find("bytes asked"), std::string::npos) << b.status().message();
  auto z = dev->Allocate(0, MemoryKind::kDevice, "empty");
  EXPECT_FALSE(z.ok());
}

TEST(GpuDevice, OutOfRangeCopiesAreRefused) {
  GPU_TEST_DEVICE(dev);
  auto b = dev->Allocate(16, MemoryKind::kDevice, "small");
  ASSERT_TRUE(b.ok());
  std::vector<uint8_t> buf(64);
  for (auto [off, n] : {std::pair<uint64_t, uint64_t>{0, 17}, {16, 1}, {17, 0}, {~uint64_t{0}, 2}}) {
    Status up = dev->Upload(b.value(), off, buf.data(), n);
    EXPECT_EQ(up.code(), ErrorCode::kInvalidArgument) << off << "+" << n;
    Status down = dev->Download(b.value(), off, buf.data(), n);
    EXPECT_EQ(down.code(), ErrorCode::kInvalidArgument) << off << "+" << n;
  }
  Buffer none;
  EXPECT_FALSE(dev->Upload(none, 0, buf.data(), 1).ok());
}

TEST(GpuDevice, BadShaderIsAClearError) {
  GPU_TEST_DEVICE(dev);
  const uint32_t not_spirv[] = {0xdeadbeef, 1, 2, 3, 4, 5};
  auto p = dev->Pipeline(ShaderCode{"broken", not_spirv, 1, 0});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("GPU kernel 'broken'"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("shader failed"), std::string::npos) << p.status().message();
  const uint32_t too_short[] = {0x07230203};
  EXPECT_FALSE(dev->Pipeline(ShaderCode{"short", too_short, 1, 0}).ok());
  auto empty = dev->Pipeline(ShaderCode{"empty", {}, 1, 0});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("built without Vulkan shaders"), std::string::npos);
}

// CopyAsync on the transfer queue while flushed compute submissions run, several in
// flight (more than the copy ring's 4), each landing where it was sent; Flush'ed
// submissions are waited for by id; the counters and their JSON say what moved.
TEST(GpuDevice, AsyncCopiesAndFlushedSubmissions) {
  GPU_TEST_DEVICE(dev);
  constexpr uint64_t kChunk = 1 << 16;
  constexpr int kCopies = 9;
  auto host = dev->Allocate(kChunk * kCopies, MemoryKind::kHostVisible, "staging");
  ASSERT_TRUE(host.ok());
  auto dst = dev->Allocate(kChunk * kCopies, MemoryKind::kDevice, "ring");
  ASSERT_TRUE(dst.ok());
  std::vector<uint8_t> want(kChunk * kCopies);
  std::mt19937 rng(5);
  for (auto& b : want) b = static_cast<uint8_t>(rng());
  std::memcpy(host.value().data(), want.data(), want.size());
  std::vector<SubmissionId> ids;
  for (int i = 0; i < kCopies; ++i) {
    auto id = dev->CopyAsync(host.value(), i * kChunk, dst.value(), (kCopies - 1 - i) * kChunk, kChunk);
    ASSERT_TRUE(id.ok()) << id.status().message();
    ids.push_back(id.value());
  }
  ASSERT_TRUE(dev->WaitCopy(ids.back()).ok());
  std::vector<uint8_t> got(want.size());
  ASSERT_TRUE(dev->Download(dst.value(), 0, got.data(), got.size()).ok());
  for (int i = 0; i < kCopies; ++i)
    ASSERT_EQ(0, std::memcmp(got.data() + (kCopies - 1 - i) * kChunk, want.data() + i * kChunk, kChunk)) << i;
  EXPECT_EQ(dev->stats().copy_bytes, kChunk * kCopies);
  EXPECT_EQ(dev->stats().copies, static_cast<uint64_t>(kCopies));
  // Nothing recorded: Flush returns 0 and WaitSubmission(0) is a no-op.
  auto none = dev->Flush();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value(), 0u);
  EXPECT_TRUE(dev->WaitSubmission(0).ok());
  const std::string json = DeviceStatsJson(dev->stats());
  EXPECT_NE(json.find("\"copy_bytes\":" + std::to_string(kChunk * kCopies)), std::string::npos) << json;
  EXPECT_NE(json.find("\"copy_gbps\":"), std::string::npos) << json;
}

TEST(GpuDevice, AsyncCopyRangesAreChecked) {
  GPU_TEST_DEVICE(dev);
  auto host = dev->Allocate(1024, MemoryKind::kHostVisible, "staging");
  auto vram = dev->Allocate(1024, MemoryKind::kDevice, "ring");
  ASSERT_TRUE(host.ok() && vram.ok());
  auto from_device = dev->CopyAsync(vram.value(), 0, vram.value(), 0, 16);
  EXPECT_EQ(from_device.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(from_device.status().message().find("not host-visible"), std::string::npos);
  auto past_src = dev->CopyAsync(host.value(), 1000, vram.value(), 0, 100);
  EXPECT_EQ(past_src.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(past_src.status().message().find("outside a buffer of 1024 bytes"), std::string::npos)
      << past_src.status().message();
  EXPECT_EQ(dev->CopyAsync(host.value(), 0, vram.value(), 1020, 8).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace spool::gpu
