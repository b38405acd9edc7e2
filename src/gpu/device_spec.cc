#include "gpu/device_spec.h"

#include <charconv>

#include "gpu/vulkan_device.h"

namespace spool::gpu {

Result<DeviceSpec> ParseDeviceSpec(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("--device '" + std::string(text) + "': " + std::string(why) +
                           " (expected cpu, vulkan, vulkan:N or auto)");
  };
  DeviceSpec spec;
  if (text == "cpu") return spec;
  if (text == "auto") {
    spec.kind = DeviceSpec::Kind::kAuto;
    return spec;
  }
  constexpr std::string_view kVulkan = "vulkan";
  if (text.substr(0, kVulkan.size()) != kVulkan) return bad("unknown device");
  spec.kind = DeviceSpec::Kind::kVulkan;
  std::string_view rest = text.substr(kVulkan.size());
  if (rest.empty()) return spec;
  if (rest[0] != ':') return bad("unknown device");
  rest.remove_prefix(1);
  if (rest.empty()) return bad("missing device index after ':'");
  int index = -1;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
  if (ec == std::errc::result_out_of_range) return bad("device index out of range");
  if (ec != std::errc() || end != rest.data() + rest.size()) return bad("device index is not a number");
  if (index < 0) return bad("device index is negative");
  spec.index = index;
  return spec;
}

std::string DeviceSpecName(const DeviceSpec& spec) {
  switch (spec.kind) {
    case DeviceSpec::Kind::kCpu: return "cpu";
    case DeviceSpec::Kind::kAuto: return "auto";
    case DeviceSpec::Kind::kVulkan: return "vulkan:" + std::to_string(spec.index);
  }
  return "?";
}

Result<DeviceSpec> ResolveDevice(const DeviceSpec& spec, std::string* note) {
  if (spec.kind == DeviceSpec::Kind::kCpu) return spec;
  auto devs = ListDevices();
  const size_t n = devs.ok() ? devs.value().size() : 0;
  if (spec.kind == DeviceSpec::Kind::kAuto) {
    if (n > 0) return DeviceSpec{DeviceSpec::Kind::kVulkan, 0};
    if (note)
      *note = "--device auto: no Vulkan device (" +
              (devs.ok() ? std::string("the Vulkan loader lists none") : devs.status().message()) + "): using the CPU";
    return DeviceSpec{};
  }
  if (!devs.ok()) return devs.status().WithContext("--device " + DeviceSpecName(spec));
  if (static_cast<size_t>(spec.index) >= n)
    return NotFound("--device " + DeviceSpecName(spec) + ": Vulkan device " + std::to_string(spec.index) +
                    " does not exist (" + std::to_string(n) + " device(s); spool show --devices lists them)");
  return spec;
}

}  // namespace spool::gpu
