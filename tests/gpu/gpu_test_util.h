// Opens Vulkan device 0 for a test, or skips the test saying why (no loader, no driver,
// no device). CI installs mesa-vulkan-drivers, so there the tests run on lavapipe.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "gpu/vulkan_device.h"

namespace spool::gpu::testing {

// Sets *dev or skips the calling test (use GPU_TEST_DEVICE(dev) at the top of a test).
inline std::unique_ptr<VulkanDevice> OpenTestDevice(std::string* why) {
  auto d = VulkanDevice::Open(0);
  if (!d.ok()) {
    *why = "no Vulkan device: " + d.status().message();
    return nullptr;
  }
  return std::move(d.value());
}

#define GPU_TEST_DEVICE(dev)                                   \
  std::string gpu_skip_why_;                                   \
  auto dev = ::spool::gpu::testing::OpenTestDevice(&gpu_skip_why_); \
  if (!dev) GTEST_SKIP() << gpu_skip_why_;                     \
  if (!::spool::gpu::BuiltWithShaders()) GTEST_SKIP() << "built without Vulkan shaders (glslc missing)"

}  // namespace spool::gpu::testing
