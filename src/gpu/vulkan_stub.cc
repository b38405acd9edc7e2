// spool_gpu without the Vulkan headers/loader at build time: every call says so.
#include "gpu/vulkan_device.h"

namespace spool::gpu {
namespace {
Status NoVulkan() { return Unsupported("spool was built without Vulkan (libvulkan-dev was not found at build time)"); }
}  // namespace

struct VulkanDevice::Impl {};

bool BuiltWithVulkan() { return false; }
bool BuiltWithShaders() { return false; }
Result<std::vector<DeviceInfo>> ListDevices() { return NoVulkan(); }

Buffer::Buffer(Buffer&& o) noexcept { *this = std::move(o); }
Buffer& Buffer::operator=(Buffer&&) noexcept { return *this; }
Buffer::~Buffer() = default;
void Buffer::Reset() {}

VulkanDevice::VulkanDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VulkanDevice::~VulkanDevice() = default;
void VulkanDevice::FreeBuffer(Buffer&) {}
const DeviceInfo& VulkanDevice::info() const {
  static const DeviceInfo kNone;
  return kNone;
}
Result<std::unique_ptr<VulkanDevice>> VulkanDevice::Open(int) { return NoVulkan(); }
Result<Buffer> VulkanDevice::Allocate(uint64_t, MemoryKind, std::string_view) { return NoVulkan(); }
Status VulkanDevice::Upload(const Buffer&, uint64_t, const void*, uint64_t) { return NoVulkan(); }
Status VulkanDevice::Download(const Buffer&, uint64_t, void*, uint64_t) { return NoVulkan(); }
Result<PipelineId> VulkanDevice::Pipeline(const ShaderCode&) { return NoVulkan(); }
Status VulkanDevice::Dispatch(PipelineId, std::span<const BufferRange>, std::span<const uint8_t>, uint32_t, uint32_t,
                              uint32_t) {
  return NoVulkan();
}
Status VulkanDevice::Sync() { return NoVulkan(); }
Result<SubmissionId> VulkanDevice::Flush() { return NoVulkan(); }
SubmissionId VulkanDevice::last_submission() const { return 0; }
Status VulkanDevice::WaitSubmission(SubmissionId) { return NoVulkan(); }
Result<SubmissionId> VulkanDevice::CopyAsync(const Buffer&, const Buffer&, std::span<const CopyRegion>, int) {
  return NoVulkan();
}
Result<SubmissionId> VulkanDevice::CopyAsync(const Buffer&, uint64_t, const Buffer&, uint64_t, uint64_t) {
  return NoVulkan();
}
Status VulkanDevice::WaitCopy(SubmissionId) { return NoVulkan(); }
void VulkanDevice::SimulateDeviceLostForTesting() {}

}  // namespace spool::gpu
