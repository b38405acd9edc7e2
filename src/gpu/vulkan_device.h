// One Vulkan device: selection, memory, queues, compute pipelines, dispatch.
//
// No Vulkan type appears here (handles are opaque), so parts above include this
// without the Vulkan headers; a build without Vulkan links vulkan_stub.cc, whose calls
// all fail with "built without Vulkan".
//
// Execution model: Dispatch() records into a command buffer of the compute queue, with
// a compute→compute barrier after each dispatch (so each kernel sees the previous one's
// writes); Sync() submits it and waits. Flush() submits without waiting (a ring of
// kComputeFrames command buffers, each with its own descriptor pool, so the host records
// the next batch while the device runs the last); WaitSubmission() waits for one.
// CopyAsync() copies host-visible → device memory on the transfer queue without waiting
// (the streamed weights of gpu/llama_decoder.h), WaitCopy() waits for it on the host. Upload()/Download() go through a
// host-visible staging buffer and the transfer queue (its own queue family when the
// device has one, else the compute queue) and are synchronous: they first Sync()
// pending dispatches. Buffers are shared by both queue families (concurrent sharing).
//
// Errors: every call that touches the driver returns a Status that names the call and
// the Vulkan result ("vkQueueSubmit: VK_ERROR_DEVICE_LOST: the Vulkan device was lost").
// After a lost device every further call fails with the same message.
// Thread-safety: none; one thread drives a device.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace spool::gpu {

// What `spool show --devices` prints about one physical device.
struct DeviceInfo {
  int index = 0;
  std::string name;              // "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string type;              // "discrete GPU", "integrated GPU", "CPU", "virtual GPU", "other"
  std::string driver;            // driver name + info
  uint32_t api_version = 0;      // VK_MAKE_API_VERSION
  uint64_t device_local_bytes = 0;   // size of the largest device-local heap
  uint64_t host_visible_bytes = 0;   // size of the largest host-visible heap
  uint64_t max_buffer_bytes = 0;     // maxStorageBufferRange
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_push_constant_bytes = 0;
  uint32_t subgroup_size = 0;
  uint64_t min_offset_align = 1;     // minStorageBufferOffsetAlignment (BufferRange::offset)
  bool separate_transfer_queue = false;  // a transfer-only queue family exists
  bool cooperative_matrix = false;       // VK_KHR_cooperative_matrix
  bool integer_dot_product = false;      // VK_KHR_shader_integer_dot_product
  bool integer_dot_accelerated = false;  // integerDotProduct4x8BitPackedSignedAccelerated
  bool integer_dot_enabled = false;      // shaderIntegerDotProduct enabled at Open (the *_idot GEMVs)
  bool shader_float16 = false;
  bool shader_float64 = false;           // enabled at Open when present
  bool storage_8bit = false;
  bool storage_16bit = false;
};

// True when this binary was built with the Vulkan loader / with the SPIR-V shaders.
bool BuiltWithVulkan();
bool BuiltWithShaders();

// Every physical device the loader reports, in its order (the index of --device
// vulkan:N). Fails (kUnsupported) with a clear message when the loader or an instance
// is missing; an instance with no devices returns an empty list.
Result<std::vector<DeviceInfo>> ListDevices();

enum class MemoryKind : uint8_t {
  kDevice,       // device-local (VRAM); written by Upload, read by Download
  kHostVisible,  // host-visible + coherent, mapped: data() is usable from the host
};

class VulkanDevice;

// A device buffer. Move-only; freed by its destructor (the device must outlive it).
// Sizes are in bytes and rounded up to 4 (shaders address 32-bit words).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  bool valid() const { return buffer_ != 0; }
  uint64_t bytes() const { return bytes_; }
  MemoryKind kind() const { return kind_; }
  // Host pointer of a kHostVisible buffer (null for kDevice).
  void* data() const { return mapped_; }

 private:
  friend class VulkanDevice;
  VulkanDevice* device_ = nullptr;
  uint64_t buffer_ = 0;  // VkBuffer
  uint64_t memory_ = 0;  // VkDeviceMemory
  uint64_t bytes_ = 0;
  MemoryKind kind_ = MemoryKind::kDevice;
  void* mapped_ = nullptr;
  void Reset();
};

// A slice of a buffer bound to one shader binding. bytes 0: to the end of the buffer.
struct BufferRange {
  const Buffer* buffer;
  uint64_t offset = 0;  // a multiple of the device's minStorageBufferOffsetAlignment
  uint64_t bytes = 0;
};

// SPIR-V of one compute shader: `n_buffers` storage buffers at bindings 0..n-1 of set 0
// and `push_bytes` of push constants.
struct ShaderCode {
  std::string_view name;
  std::span<const uint32_t> spirv;
  uint32_t n_buffers;
  uint32_t push_bytes;
};

using PipelineId = uint32_t;

// Counters for --stats.
struct DeviceStats {
  uint64_t dispatches = 0;
  uint64_t submits = 0;         // completed Sync()s that waited for work (sync_count)
  uint64_t flushes = 0;         // compute submissions (Sync and Flush)
  uint64_t upload_bytes = 0;
  uint64_t download_bytes = 0;
  double upload_seconds = 0;    // host wall time in Upload (staging copy + transfer)
  double download_seconds = 0;
  double sync_seconds = 0;      // host wall time waiting for compute (Sync, WaitSubmission)
  double device_seconds = 0;    // compute time measured by the device's timestamps (0 where
                                // the compute queue has none)
  uint64_t copy_bytes = 0;      // CopyAsync: host-visible → device on the transfer queue
  uint64_t copies = 0;
  double copy_seconds = 0;      // Σ per copy: submit → its fence seen signalled (an upper bound)
  double copy_wait_seconds = 0; // host wall time blocked in WaitCopy
  // The same per copy tag (CopyAsync's `tag`; the decoder's weight tiers use 1 and 2):
  // bytes and submit → fence seconds of the copies carrying each tag.
  static constexpr int kCopyTags = 4;
  uint64_t tag_copy_bytes[kCopyTags] = {};
  double tag_copy_seconds[kCopyTags] = {};
};

// One region of a multi-region CopyAsync.
struct CopyRegion {
  uint64_t src_offset = 0, dst_offset = 0, bytes = 0;
};

// The counters as one JSON object (what tests and bench/gpu read): the fields above plus
// copy_gbps = copy_bytes / copy_seconds / 1e9 and upload_gbps likewise (0 when no time).
std::string DeviceStatsJson(const DeviceStats& s);

// Identifies one Flush()ed compute submission or one CopyAsync(); 0 is "none".
using SubmissionId = uint64_t;
inline constexpr int kComputeFrames = 3;

class VulkanDevice {
 public:
  // Opens physical device `index` (of ListDevices()) with a compute queue and a transfer
  // queue. Errors: no Vulkan (kUnsupported), index out of range (kNotFound, saying how
  // many devices exist), no compute queue (kUnsupported), driver errors.
  static Result<std::unique_ptr<VulkanDevice>> Open(int index);
  ~VulkanDevice();
  VulkanDevice(const VulkanDevice&) = delete;
  VulkanDevice& operator=(const VulkanDevice&) = delete;

  const DeviceInfo& info() const;
  const DeviceStats& stats() const { return stats_; }
  // Number of completed Sync() submissions: host-visible scratch written for dispatches
  // recorded before it may be reused once this changes.
  uint64_t sync_count() const { return stats_.submits; }

  // Allocates `bytes` (> 0) of the given memory. `what` names the buffer in errors.
  // Errors (kResourceExhausted): larger than the device's buffer limit or heap, or the
  // driver is out of memory — the message says how many bytes were asked and allowed.
  Result<Buffer> Allocate(uint64_t bytes, MemoryKind kind, std::string_view what);

  // Host → buffer / buffer → host, synchronous; offset + bytes must lie in the buffer
  // (checked: kInvalidArgument).
  Status Upload(const Buffer& dst, uint64_t offset, const void* src, uint64_t bytes);
  Status Download(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes);

  // Creates (once; later calls return the cached id) a compute pipeline. Errors
  // (kInternal) name the shader: invalid SPIR-V, a driver that rejects it.
  Result<PipelineId> Pipeline(const ShaderCode& code);

  // Records one dispatch of `groups` workgroups. buffers.size() must equal the shader's
  // n_buffers and push.size() its push_bytes (checked).
  Status Dispatch(PipelineId pipeline, std::span<const BufferRange> buffers, std::span<const uint8_t> push,
                  uint32_t groups_x, uint32_t groups_y = 1, uint32_t groups_z = 1);

  // Submits what Dispatch recorded and waits for it and for every earlier Flush (no-op
  // when nothing is pending).
  Status Sync();

  // Submits what Dispatch recorded without waiting; returns its id (0 when nothing was
  // recorded: the last submission's id is then returned by last_submission()). Host
  // parameters read by the flushed dispatches stay in use until WaitSubmission / Sync.
  Result<SubmissionId> Flush();
  SubmissionId last_submission() const;
  // Waits until submission `id` (and every earlier one) has finished on the device.
  Status WaitSubmission(SubmissionId id);

  // Starts copying `bytes` from host-visible `src` at src_offset to `dst` at dst_offset
  // on the transfer queue and returns at once. The host must not write src's range, and
  // no dispatch may read dst's range, before WaitCopy(id) returned; dispatches recorded
  // after WaitCopy see the data. Ranges are checked (kInvalidArgument); src must be
  // kHostVisible.
  Result<SubmissionId> CopyAsync(const Buffer& src, uint64_t src_offset, const Buffer& dst, uint64_t dst_offset,
                                 uint64_t bytes);
  // The same for several regions of src into dst in one submission (one copy in the
  // stats, its bytes the regions' sum); `tag` in [0, DeviceStats::kCopyTags) also counts
  // them in DeviceStats::tag_copy_*. Every region is checked before anything is recorded.
  Result<SubmissionId> CopyAsync(const Buffer& src, const Buffer& dst, std::span<const CopyRegion> regions, int tag = 0);
  Status WaitCopy(SubmissionId id);

  // Tests only: from now on behave as after the driver returned VK_ERROR_DEVICE_LOST
  // (every call fails with the lost-device error). A real loss cannot be provoked
  // portably (lavapipe has no watchdog), so the error path is tested through this.
  void SimulateDeviceLostForTesting();

  struct Impl;

 private:
  explicit VulkanDevice(std::unique_ptr<Impl> impl);
  friend class Buffer;
  void FreeBuffer(Buffer& b);
  std::unique_ptr<Impl> impl_;
  DeviceStats stats_;
};

// Push constants of a kernel as bytes (a trivially copyable struct).
template <typename T>
std::span<const uint8_t> PushBytes(const T& t) {
  return {reinterpret_cast<const uint8_t*>(&t), sizeof(T)};
}

}  // namespace spool::gpu
