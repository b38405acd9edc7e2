// Which device the forward pass runs on: the `--device` flag.
//
//   cpu          the CPU kernels (spool_tensor), the reference
//   vulkan       the first Vulkan device (index 0 of `spool show --devices`)
//   vulkan:N     Vulkan device N
//   auto         Vulkan device 0 when one opens, else the CPU with a message
//
// Parsing is pure (no driver is touched), so bad flags fail before any device work.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace spool::gpu {

struct DeviceSpec {
  enum class Kind : uint8_t { kCpu, kVulkan, kAuto } kind = Kind::kCpu;
  int index = 0;  // kVulkan: the device index (>= 0)
};

// Parses a --device value. Errors (kInvalidArgument) name the value and list the
// accepted forms: "", "gpu", "vulkan:", "vulkan:-1", "vulkan:x", "vulkan:99999999999".
Result<DeviceSpec> ParseDeviceSpec(std::string_view text);

// "cpu", "vulkan:N" or "auto".
std::string DeviceSpecName(const DeviceSpec& spec);

// Resolves a spec against the devices present (this creates a Vulkan instance, ~0.1 s):
//   cpu       → cpu
//   vulkan:N  → vulkan:N when device N exists; else an error (kUnsupported: no Vulkan
//               loader/driver; kNotFound: no device N, saying how many exist)
//   auto      → vulkan:0 when a Vulkan device exists, else cpu with *note saying why
//               ("--device auto: no Vulkan device (...): using the CPU")
Result<DeviceSpec> ResolveDevice(const DeviceSpec& spec, std::string* note);

}  // namespace spool::gpu
