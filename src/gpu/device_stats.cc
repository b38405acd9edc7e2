// DeviceStats as JSON (gpu/vulkan_device.h): built with and without Vulkan.
#include <cstdio>
#include <string>

#include "gpu/vulkan_device.h"

namespace spool::gpu {

std::string DeviceStatsJson(const DeviceStats& s) {
  auto num = [](double v) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.9g", v);
    return std::string(b);
  };
  std::string j = "{";
  j += "\"dispatches\":" + std::to_string(s.dispatches);
  j += ",\"submits\":" + std::to_string(s.submits);
  j += ",\"flushes\":" + std::to_string(s.flushes);
  j += ",\"upload_bytes\":" + std::to_string(s.upload_bytes);
  j += ",\"download_bytes\":" + std::to_string(s.download_bytes);
  j += ",\"upload_seconds\":" + num(s.upload_seconds);
  j += ",\"download_seconds\":" + num(s.download_seconds);
  j += ",\"sync_seconds\":" + num(s.sync_seconds);
  j += ",\"device_seconds\":" + num(s.device_seconds);
  j += ",\"copy_bytes\":" + std::to_string(s.copy_bytes);
  j += ",\"copies\":" + std::to_string(s.copies);
  j += ",\"copy_seconds\":" + num(s.copy_seconds);
  j += ",\"copy_wait_seconds\":" + num(s.copy_wait_seconds);
  j += ",\"copy_gbps\":" + num(s.copy_seconds > 0 ? static_cast<double>(s.copy_bytes) / s.copy_seconds / 1e9 : 0.0);
  j += ",\"upload_gbps\":" +
       num(s.upload_seconds > 0 ? static_cast<double>(s.upload_bytes) / s.upload_seconds / 1e9 : 0.0);
  return j + "}";
}

}  // namespace spool::gpu
