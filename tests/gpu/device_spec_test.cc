// --device parsing: the accepted forms and a clear error for everything else.
#include "gpu/device_spec.h"

#include <gtest/gtest.h>

namespace spool::gpu {
namespace {

TEST(DeviceSpec, AcceptedForms) {
  auto cpu = ParseDeviceSpec("cpu");
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu.value().kind, DeviceSpec::Kind::kCpu);
  auto autos = ParseDeviceSpec("auto");
  ASSERT_TRUE(autos.ok());
  EXPECT_EQ(autos.value().kind, DeviceSpec::Kind::kAuto);
  auto v = ParseDeviceSpec("vulkan");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.value().kind, DeviceSpec::Kind::kVulkan);
  EXPECT_EQ(v.value().index, 0);
  auto v3 = ParseDeviceSpec("vulkan:3");
  ASSERT_TRUE(v3.ok());
  EXPECT_EQ(v3.value().index, 3);
  EXPECT_EQ(DeviceSpecName(v3.value()), "vulkan:3");
  EXPECT_EQ(DeviceSpecName(cpu.value()), "cpu");
  EXPECT_EQ(DeviceSpecName(autos.value()), "auto");
}

TEST(DeviceSpec, BadValuesAreClearErrors) {
  for (const char* bad : {"", "gpu", "cuda", "vulkan:", "vulkan:-1", "vulkan:x", "vulkan:1x", "vulkan:99999999999",
                          "vulkan1", "Vulkan", "cpu:0", " vulkan"}) {
    auto r = ParseDeviceSpec(bad);
    ASSERT_FALSE(r.ok()) << "'" << bad << "'";
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("--device '" + std::string(bad) + "'"), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("expected cpu, vulkan, vulkan:N or auto"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace spool::gpu
