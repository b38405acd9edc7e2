// VulkanDevice: enumeration, buffers, transfers, and the errors a user can hit (too
// little memory, out-of-range copies, a device index that does not exist, a shader
// that fails to load).
#include "gpu/vulkan_device.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace spool::gpu
