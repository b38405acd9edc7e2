#include "gpu/vulkan_device.h"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

#include "base/check.h"
#include "base/log.h"
#include "gpu/shaders_spv.h"

namespace spool::gpu {
namespace {

constexpr uint64_t kStagingBytes = uint64_t{32} << 20;  // one upload/download chunk
constexpr uint32_t kMaxSetsPerSubmit = 2048;
constexpr uint32_t kMaxBindings = 8;

const char* VkResultName(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    default: return "VkResult(other)";
  }
}

Status VkError(const char* call, VkResult r) {
  std::string m = std::string(call) + ": " + VkResultName(r);
  if (r == VK_ERROR_DEVICE_LOST) return InternalError(m + ": the Vulkan device was lost (driver reset or crash)");
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    return ResourceExhausted(m + ": out of memory");
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
    return Unsupported(m + ": no Vulkan driver found (install a GPU driver, or mesa-vulkan-drivers for lavapipe)");
  return InternalError(m);
}

std::string TypeName(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
  }
}

// An instance for enumeration or for one device. Owns the VkInstance.
struct Instance {
  VkInstance instance = VK_NULL_HANDLE;
  ~Instance() {
    if (instance) vkDestroyInstance(instance, nullptr);
  }
};

Status CreateInstance(Instance& inst) {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "spool";
  app.pEngineName = "spool";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  const VkResult r = vkCreateInstance(&ci, nullptr, &inst.instance);
  if (r != VK_SUCCESS) return VkError("vkCreateInstance", r);
  return Status::Ok();
}

Result<std::vector<VkPhysicalDevice>> PhysicalDevices(VkInstance instance) {
  uint32_t n = 0;
  VkResult r = vkEnumeratePhysicalDevices(instance, &n, nullptr);
  if (r != VK_SUCCESS) return VkError("vkEnumeratePhysicalDevices", r);
  std::vector<VkPhysicalDevice> devs(n);
  r = vkEnumeratePhysicalDevices(instance, &n, devs.data());
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return VkError("vkEnumeratePhysicalDevices", r);
  devs.resize(n);
  return devs;
}

bool HasExtension(VkPhysicalDevice pd, const char* name) {
  uint32_t n = 0;
  if (vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr) != VK_SUCCESS) return false;
  std::vector<VkExtensionProperties> ext(n);
  if (vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, ext.data()) != VK_SUCCESS) return false;
  for (const auto& e : ext)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

DeviceInfo Describe(VkPhysicalDevice pd, int index) {
  DeviceInfo info;
  info.index = index;
  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  const bool has_driver_props = HasExtension(pd, "VK_KHR_driver_properties");
  subgroup.pNext = has_driver_props ? &driver : nullptr;
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(pd, &props);
  const VkPhysicalDeviceProperties& p = props.properties;
  info.name = p.deviceName;
  info.type = TypeName(p.deviceType);
  info.driver = has_driver_props ? std::string(driver.driverName) + " " + driver.driverInfo : "";
  info.api_version = p.apiVersion;
  info.max_buffer_bytes = p.limits.maxStorageBufferRange;
  info.max_workgroup_invocations = p.limits.maxComputeWorkGroupInvocations;
  info.max_push_constant_bytes = p.limits.maxPushConstantsSize;
  info.subgroup_size = subgroup.subgroupSize;
  info.min_offset_align = std::max<uint64_t>(1, p.limits.minStorageBufferOffsetAlignment);

  VkPhysicalDeviceMemoryProperties mem;
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (uint32_t h = 0; h < mem.memoryHeapCount; ++h) {
    const uint64_t size = mem.memoryHeaps[h].size;
    bool host_visible = false;
    for (uint32_t t = 0; t < mem.memoryTypeCount; ++t)
      if (mem.memoryTypes[t].heapIndex == h &&
          (mem.memoryTypes[t].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
        host_visible = true;
    if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      info.device_local_bytes = std::max(info.device_local_bytes, size);
    if (host_visible) info.host_visible_bytes = std::max(info.host_visible_bytes, size);
  }

  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> qf(nq);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf.data());
  for (const auto& q : qf)
    if ((q.queueFlags & VK_QUEUE_TRANSFER_BIT) && !(q.queueFlags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT)))
      info.separate_transfer_queue = true;

  info.cooperative_matrix = HasExtension(pd, "VK_KHR_cooperative_matrix");
  info.integer_dot_product = HasExtension(pd, "VK_KHR_shader_integer_dot_product") || p.apiVersion >= VK_API_VERSION_1_3;
  if (info.integer_dot_product) {
    VkPhysicalDeviceShaderIntegerDotProductPropertiesKHR idot{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES_KHR};
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &idot;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    info.integer_dot_accelerated = idot.integerDotProduct4x8BitPackedSignedAccelerated == VK_TRUE;
  }
  VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.pNext = &s16;
  vkGetPhysicalDeviceFeatures2(pd, &f2);
  info.storage_16bit = s16.storageBuffer16BitAccess;
  if (p.apiVersion >= VK_API_VERSION_1_2) {
    VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceFeatures2 g{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    g.pNext = &f12;
    vkGetPhysicalDeviceFeatures2(pd, &g);
    info.storage_8bit = f12.storageBuffer8BitAccess;
    info.shader_float16 = f12.shaderFloat16;
  }
  return info;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

bool BuiltWithVulkan() { return true; }
bool BuiltWithShaders() { return SPOOL_GPU_HAVE_SHADERS != 0; }

Result<std::vector<DeviceInfo>> ListDevices() {
  Instance inst;
  if (Status s = CreateInstance(inst); !s.ok()) return s;
  auto devs = PhysicalDevices(inst.instance);
  if (!devs.ok()) return devs.status();
  std::vector<DeviceInfo> out;
  for (size_t i = 0; i < devs.value().size(); ++i) out.push_back(Describe(devs.value()[i], static_cast<int>(i)));
  return out;
}

struct PipelineEntry {
  std::string name;
  uint32_t n_buffers = 0;
  uint32_t push_bytes = 0;
  VkShaderModule module = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

struct VulkanDevice::Impl {
  Instance inst;
  VkPhysicalDevice pd = VK_NULL_HANDLE;
  DeviceInfo info;
  VkPhysicalDeviceMemoryProperties mem{};
  uint64_t min_offset_align = 1;
  VkDevice device = VK_NULL_HANDLE;
  uint32_t compute_family = 0, transfer_family = 0;
  VkQueue compute_queue = VK_NULL_HANDLE, transfer_queue = VK_NULL_HANDLE;
  VkCommandPool compute_pool = VK_NULL_HANDLE, transfer_pool = VK_NULL_HANDLE;
  VkCommandBuffer transfer_cmd = VK_NULL_HANDLE;
  VkFence transfer_fence = VK_NULL_HANDLE;
  // Compute submissions in flight: a ring of frames, each a command buffer with its own
  // descriptor pool (reset only once the frame's fence says the device is done with it).
  struct Frame {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    VkDescriptorPool pool = VK_NULL_HANDLE;
    uint32_t sets_used = 0;
    bool in_flight = false;
    SubmissionId id = 0;
  };
  Frame frames[kComputeFrames];
  int cur = 0;             // the frame Dispatch records into
  bool recording = false;  // frames[cur] has begun
  SubmissionId submitted = 0, completed = 0;
  VkQueryPool timestamps = VK_NULL_HANDLE;  // 2 per frame: start, end
  double timestamp_ns = 0;                  // timestampPeriod; 0: no timestamps
  // Asynchronous copies on the transfer queue (CopyAsync).
  struct Copy {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool in_flight = false;
    SubmissionId id = 0;
    uint64_t bytes = 0;
    int tag = 0;
    std::chrono::steady_clock::time_point t0;
  };
  static constexpr int kCopies = 4;
  Copy copies[kCopies];
  SubmissionId copy_submitted = 0;
  Status lost;  // set once the device is lost; every later call returns it
  std::vector<PipelineEntry> pipelines;
  std::map<std::string, PipelineId, std::less<>> pipeline_ids;
  Buffer staging;

  ~Impl() {
    if (!device) return;
    vkDeviceWaitIdle(device);
    for (auto& p : pipelines) {
      if (p.pipeline) vkDestroyPipeline(device, p.pipeline, nullptr);
      if (p.layout) vkDestroyPipelineLayout(device, p.layout, nullptr);
      if (p.set_layout) vkDestroyDescriptorSetLayout(device, p.set_layout, nullptr);
      if (p.module) vkDestroyShaderModule(device, p.module, nullptr);
    }
    for (auto& f : frames) {
      if (f.pool) vkDestroyDescriptorPool(device, f.pool, nullptr);
      if (f.fence) vkDestroyFence(device, f.fence, nullptr);
    }
    for (auto& c : copies)
      if (c.fence) vkDestroyFence(device, c.fence, nullptr);
    if (timestamps) vkDestroyQueryPool(device, timestamps, nullptr);
    if (transfer_fence) vkDestroyFence(device, transfer_fence, nullptr);
    if (compute_pool) vkDestroyCommandPool(device, compute_pool, nullptr);
    if (transfer_pool) vkDestroyCommandPool(device, transfer_pool, nullptr);
    vkDestroyDevice(device, nullptr);
  }

  Status Check(const char* call, VkResult r) {
    if (r == VK_SUCCESS) return Status::Ok();
    Status s = VkError(call, r);
    if (r == VK_ERROR_DEVICE_LOST) lost = s;
    return s;
  }

  // A memory type allowed by `bits` with all of `flags`, or -1.
  int FindMemoryType(uint32_t bits, VkMemoryPropertyFlags flags) const {
    for (uint32_t t = 0; t < mem.memoryTypeCount; ++t)
      if ((bits & (1u << t)) && (mem.memoryTypes[t].propertyFlags & flags) == flags) return static_cast<int>(t);
    return -1;
  }

  Status SubmitAndWait(VkQueue queue, VkCommandBuffer cmd, VkFence fence, const char* what) {
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    if (Status s = Check("vkQueueSubmit", vkQueueSubmit(queue, 1, &si, fence)); !s.ok()) return s.WithContext(what);
    if (Status s = Check("vkWaitForFences", vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX)); !s.ok())
      return s.WithContext(what);
    return Check("vkResetFences", vkResetFences(device, 1, &fence));
  }

  // Waits for frame f (in flight) and makes it reusable; adds its device time.
  Status Retire(int fi, DeviceStats& stats) {
    Frame& f = frames[fi];
    if (!f.in_flight) return Status::Ok();
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = Check("vkWaitForFences", vkWaitForFences(device, 1, &f.fence, VK_TRUE, UINT64_MAX)); !s.ok())
      return s.WithContext("GPU compute");
    stats.sync_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    f.in_flight = false;
    completed = std::max(completed, f.id);
    if (timestamps) {
      uint64_t ts[2] = {0, 0};
      if (vkGetQueryPoolResults(device, timestamps, static_cast<uint32_t>(2 * fi), 2, sizeof(ts), ts, sizeof(uint64_t),
                                VK_QUERY_RESULT_64_BIT) == VK_SUCCESS &&
          ts[1] >= ts[0])
        stats.device_seconds += static_cast<double>(ts[1] - ts[0]) * timestamp_ns * 1e-9;
    }
    if (Status s = Check("vkResetFences", vkResetFences(device, 1, &f.fence)); !s.ok()) return s;
    if (Status s = Check("vkResetCommandBuffer", vkResetCommandBuffer(f.cmd, 0)); !s.ok()) return s;
    if (Status s = Check("vkResetDescriptorPool", vkResetDescriptorPool(device, f.pool, 0)); !s.ok()) return s;
    f.sets_used = 0;
    return Status::Ok();
  }

  Status RetireCopy(Copy& c, DeviceStats& stats) {
    if (!c.in_flight) return Status::Ok();
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = Check("vkWaitForFences", vkWaitForFences(device, 1, &c.fence, VK_TRUE, UINT64_MAX)); !s.ok())
      return s.WithContext("GPU copy");
    const auto t1 = std::chrono::steady_clock::now();
    stats.copy_wait_seconds += std::chrono::duration<double>(t1 - t0).count();
    const double secs = std::chrono::duration<double>(t1 - c.t0).count();
    stats.copy_seconds += secs;
    stats.copy_bytes += c.bytes;
    stats.tag_copy_seconds[c.tag] += secs;
    stats.tag_copy_bytes[c.tag] += c.bytes;
    ++stats.copies;
    c.in_flight = false;
    return Check("vkResetFences", vkResetFences(device, 1, &c.fence));
  }
};

// ---- Buffer ----

Buffer::Buffer(Buffer&& o) noexcept { *this = std::move(o); }
Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    Reset();
    device_ = o.device_;
    buffer_ = o.buffer_;
    memory_ = o.memory_;
    bytes_ = o.bytes_;
    kind_ = o.kind_;
    mapped_ = o.mapped_;
    o.device_ = nullptr;
    o.buffer_ = o.memory_ = o.bytes_ = 0;
    o.mapped_ = nullptr;
  }
  return *this;
}
Buffer::~Buffer() { Reset(); }
void Buffer::Reset() {
  if (device_ && buffer_) device_->FreeBuffer(*this);
  device_ = nullptr;
  buffer_ = memory_ = bytes_ = 0;
  mapped_ = nullptr;
}

void VulkanDevice::FreeBuffer(Buffer& b) {
  // Pending dispatches and copies may still use the buffer: finish them first.
  (void)Sync();
  for (auto& c : impl_->copies) (void)impl_->RetireCopy(c, stats_);
  if (b.mapped_) vkUnmapMemory(impl_->device, reinterpret_cast<VkDeviceMemory>(b.memory_));
  vkDestroyBuffer(impl_->device, reinterpret_cast<VkBuffer>(b.buffer_), nullptr);
  vkFreeMemory(impl_->device, reinterpret_cast<VkDeviceMemory>(b.memory_), nullptr);
}

// ---- VulkanDevice ----

VulkanDevice::VulkanDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VulkanDevice::~VulkanDevice() {
  if (impl_) (void)Sync();
  if (impl_)
    for (auto& c : impl_->copies) (void)impl_->RetireCopy(c, stats_);
  if (impl_) impl_->staging = Buffer();
}
const DeviceInfo& VulkanDevice::info() const { return impl_->info; }

Result<std::unique_ptr<VulkanDevice>> VulkanDevice::Open(int index) {
  auto impl = std::make_unique<Impl>();
  if (Status s = CreateInstance(impl->inst); !s.ok()) return s;
  auto devs = PhysicalDevices(impl->inst.instance);
  if (!devs.ok()) return devs.status();
  const int n = static_cast<int>(devs.value().size());
  if (n == 0) return NotFound("no Vulkan device found (vkEnumeratePhysicalDevices returned none)");
  if (index < 0 || index >= n)
    return NotFound("Vulkan device " + std::to_string(index) + " does not exist: " + std::to_string(n) +
                    " device(s), indices 0.." + std::to_string(n - 1) + " (spool show --devices)");
  impl->pd = devs.value()[static_cast<size_t>(index)];
  impl->info = Describe(impl->pd, index);
  vkGetPhysicalDeviceMemoryProperties(impl->pd, &impl->mem);
  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(impl->pd, &props);
  impl->min_offset_align = std::max<uint64_t>(1, props.limits.minStorageBufferOffsetAlignment);

  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(impl->pd, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> qf(nq);
  vkGetPhysicalDeviceQueueFamilyProperties(impl->pd, &nq, qf.data());
  int compute = -1, transfer = -1;
  for (uint32_t i = 0; i < nq; ++i) {
    if (compute < 0 && (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) compute = static_cast<int>(i);
    if (transfer < 0 && (qf[i].queueFlags & VK_QUEUE_TRANSFER_BIT) &&
        !(qf[i].queueFlags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT)))
      transfer = static_cast<int>(i);
  }
  if (compute < 0) return Unsupported("Vulkan device " + impl->info.name + " has no compute queue");
  if (transfer < 0) transfer = compute;  // compute queues can always transfer
  impl->compute_family = static_cast<uint32_t>(compute);
  impl->transfer_family = static_cast<uint32_t>(transfer);

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci[2]{};
  for (int i = 0; i < 2; ++i) {
    qci[i].sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    qci[i].queueCount = 1;
    qci[i].pQueuePriorities = &priority;
  }
  qci[0].queueFamilyIndex = impl->compute_family;
  qci[1].queueFamilyIndex = impl->transfer_family;
  // f64 in shaders, where the device has it: the exact-fma emulation of the quantised
  // GEMV (kernels.h) on devices whose fma() is not fused (lavapipe).
  VkPhysicalDeviceFeatures supported{}, enabled{};
  vkGetPhysicalDeviceFeatures(impl->pd, &supported);
  enabled.shaderFloat64 = supported.shaderFloat64;
  impl->info.shader_float64 = supported.shaderFloat64 == VK_TRUE;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.pEnabledFeatures = &enabled;
  // Integer dot products, where the device has the feature: the *_idot GEMV variants
  // (kernels.h IntDotPath). The extension is enabled by name where the device lists it
  // (Vulkan 1.3 devices have it in core and list it too, as lavapipe does).
  VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR idot{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR};
  const char* idot_ext = "VK_KHR_shader_integer_dot_product";
  if (HasExtension(impl->pd, idot_ext)) {
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &idot;
    vkGetPhysicalDeviceFeatures2(impl->pd, &f2);
    if (idot.shaderIntegerDotProduct == VK_TRUE) {
      idot.pNext = nullptr;
      dci.pNext = &idot;
      dci.enabledExtensionCount = 1;
      dci.ppEnabledExtensionNames = &idot_ext;
      impl->info.integer_dot_enabled = true;
    }
  }
  dci.queueCreateInfoCount = impl->transfer_family == impl->compute_family ? 1 : 2;
  dci.pQueueCreateInfos = qci;
  if (Status s = impl->Check("vkCreateDevice", vkCreateDevice(impl->pd, &dci, nullptr, &impl->device)); !s.ok())
    return s;
  vkGetDeviceQueue(impl->device, impl->compute_family, 0, &impl->compute_queue);
  vkGetDeviceQueue(impl->device, impl->transfer_family, 0, &impl->transfer_queue);

  std::vector<std::tuple<uint32_t, VkCommandPool*, VkCommandBuffer*, VkFence*>> cmds;
  for (auto& f : impl->frames) cmds.emplace_back(impl->compute_family, &impl->compute_pool, &f.cmd, &f.fence);
  cmds.emplace_back(impl->transfer_family, &impl->transfer_pool, &impl->transfer_cmd, &impl->transfer_fence);
  for (auto& c : impl->copies) cmds.emplace_back(impl->transfer_family, &impl->transfer_pool, &c.cmd, &c.fence);
  for (auto [family, pool, cmd, fence] : cmds) {
    if (!*pool) {
      VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
      pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
      pci.queueFamilyIndex = family;
      if (Status s = impl->Check("vkCreateCommandPool", vkCreateCommandPool(impl->device, &pci, nullptr, pool));
          !s.ok())
        return s;
    }
    VkCommandBufferAllocateInfo cai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    cai.commandPool = *pool;
    cai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    cai.commandBufferCount = 1;
    if (Status s = impl->Check("vkAllocateCommandBuffers", vkAllocateCommandBuffers(impl->device, &cai, cmd));
        !s.ok())
      return s;
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (Status s = impl->Check("vkCreateFence", vkCreateFence(impl->device, &fci, nullptr, fence)); !s.ok()) return s;
  }
  VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kMaxSetsPerSubmit * kMaxBindings};
  VkDescriptorPoolCreateInfo dpci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  dpci.maxSets = kMaxSetsPerSubmit;
  dpci.poolSizeCount = 1;
  dpci.pPoolSizes = &ps;
  for (auto& f : impl->frames)
    if (Status s = impl->Check("vkCreateDescriptorPool", vkCreateDescriptorPool(impl->device, &dpci, nullptr, &f.pool));
        !s.ok())
      return s;
  // Device timestamps around each compute submission (DeviceStats::device_seconds),
  // where the compute queue has them.
  if (qf[impl->compute_family].timestampValidBits > 0 && props.limits.timestampPeriod > 0) {
    VkQueryPoolCreateInfo qpci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    qpci.queryType = VK_QUERY_TYPE_TIMESTAMP;
    qpci.queryCount = 2 * kComputeFrames;
    if (vkCreateQueryPool(impl->device, &qpci, nullptr, &impl->timestamps) == VK_SUCCESS)
      impl->timestamp_ns = props.limits.timestampPeriod;
    else
      impl->timestamps = VK_NULL_HANDLE;
  }

  std::unique_ptr<VulkanDevice> dev(new VulkanDevice(std::move(impl)));
  auto staging = dev->Allocate(kStagingBytes, MemoryKind::kHostVisible, "staging buffer");
  if (!staging.ok()) return staging.status();
  dev->impl_->staging = std::move(staging.value());
  return dev;
}

Result<Buffer> VulkanDevice::Allocate(uint64_t bytes, MemoryKind kind, std::string_view what) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (bytes == 0) return InvalidArgument("GPU buffer '" + std::string(what) + "': zero bytes");
  const uint64_t padded = (bytes + 3) & ~uint64_t{3};
  const uint64_t limit = kind == MemoryKind::kDevice ? d.info.device_local_bytes : d.info.host_visible_bytes;
  if (padded > d.info.max_buffer_bytes || padded > limit)
    return ResourceExhausted("GPU buffer '" + std::string(what) + "': " + std::to_string(padded) +
                             " bytes asked, the device allows " +
                             std::to_string(std::min<uint64_t>(d.info.max_buffer_bytes, limit)) +
                             " (maxStorageBufferRange " + std::to_string(d.info.max_buffer_bytes) + ", heap " +
                             std::to_string(limit) + ")");
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = padded;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  const uint32_t families[2] = {d.compute_family, d.transfer_family};
  if (d.compute_family != d.transfer_family) {
    bci.sharingMode = VK_SHARING_MODE_CONCURRENT;
    bci.queueFamilyIndexCount = 2;
    bci.pQueueFamilyIndices = families;
  } else {
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  }
  VkBuffer buf = VK_NULL_HANDLE;
  if (Status s = d.Check("vkCreateBuffer", vkCreateBuffer(d.device, &bci, nullptr, &buf)); !s.ok())
    return s.WithContext("GPU buffer '" + std::string(what) + "'");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(d.device, buf, &req);
  const VkMemoryPropertyFlags flags = kind == MemoryKind::kDevice
                                          ? VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT
                                          : VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const int type = d.FindMemoryType(req.memoryTypeBits, flags);
  if (type < 0) {
    vkDestroyBuffer(d.device, buf, nullptr);
    return Unsupported("GPU buffer '" + std::string(what) + "': no memory type with the needed properties");
  }
  VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = static_cast<uint32_t>(type);
  VkDeviceMemory memory = VK_NULL_HANDLE;
  if (Status s = d.Check("vkAllocateMemory", vkAllocateMemory(d.device, &mai, nullptr, &memory)); !s.ok()) {
    vkDestroyBuffer(d.device, buf, nullptr);
    return s.WithContext("GPU buffer '" + std::string(what) + "' (" + std::to_string(padded) + " bytes)");
  }
  if (Status s = d.Check("vkBindBufferMemory", vkBindBufferMemory(d.device, buf, memory, 0)); !s.ok()) {
    vkDestroyBuffer(d.device, buf, nullptr);
    vkFreeMemory(d.device, memory, nullptr);
    return s;
  }
  Buffer b;
  b.device_ = this;
  b.buffer_ = reinterpret_cast<uint64_t>(buf);
  b.memory_ = reinterpret_cast<uint64_t>(memory);
  b.bytes_ = padded;
  b.kind_ = kind;
  if (kind == MemoryKind::kHostVisible) {
    if (Status s = d.Check("vkMapMemory", vkMapMemory(d.device, memory, 0, VK_WHOLE_SIZE, 0, &b.mapped_)); !s.ok())
      return s;  // b's destructor frees
  }
  return b;
}

namespace {
Status CheckRange(const Buffer& b, uint64_t offset, uint64_t bytes, const char* what) {
  if (!b.valid()) return InvalidArgument(std::string(what) + ": invalid buffer");
  if (offset > b.bytes() || bytes > b.bytes() - offset)
    return InvalidArgument(std::string(what) + ": range [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                           ") outside a buffer of " + std::to_string(b.bytes()) + " bytes");
  return Status::Ok();
}
}  // namespace

Status VulkanDevice::Upload(const Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (Status s = CheckRange(dst, offset, bytes, "GPU upload"); !s.ok()) return s;
  if (Status s = Sync(); !s.ok()) return s;
  const auto t0 = std::chrono::steady_clock::now();
  if (dst.kind() == MemoryKind::kHostVisible) {
    std::memcpy(static_cast<uint8_t*>(dst.data()) + offset, src, bytes);
  } else {
    for (uint64_t done = 0; done < bytes;) {
      const uint64_t n = std::min(bytes - done, kStagingBytes);
      std::memcpy(d.staging.data(), static_cast<const uint8_t*>(src) + done, n);
      VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
      bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
      if (Status s = d.Check("vkBeginCommandBuffer", vkBeginCommandBuffer(d.transfer_cmd, &bi)); !s.ok()) return s;
      VkBufferCopy region{0, offset + done, n};
      vkCmdCopyBuffer(d.transfer_cmd, reinterpret_cast<VkBuffer>(d.staging.buffer_),
                      reinterpret_cast<VkBuffer>(dst.buffer_), 1, &region);
      if (Status s = d.Check("vkEndCommandBuffer", vkEndCommandBuffer(d.transfer_cmd)); !s.ok()) return s;
      if (Status s = d.SubmitAndWait(d.transfer_queue, d.transfer_cmd, d.transfer_fence, "GPU upload"); !s.ok())
        return s;
      done += n;
    }
  }
  stats_.upload_bytes += bytes;
  stats_.upload_seconds += Seconds(t0);
  return Status::Ok();
}

Status VulkanDevice::Download(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (Status s = CheckRange(src, offset, bytes, "GPU download"); !s.ok()) return s;
  if (Status s = Sync(); !s.ok()) return s;
  const auto t0 = std::chrono::steady_clock::now();
  if (src.kind() == MemoryKind::kHostVisible) {
    std::memcpy(dst, static_cast<const uint8_t*>(src.data()) + offset, bytes);
  } else {
    for (uint64_t done = 0; done < bytes;) {
      const uint64_t n = std::min(bytes - done, kStagingBytes);
      VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
      bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
      if (Status s = d.Check("vkBeginCommandBuffer", vkBeginCommandBuffer(d.transfer_cmd, &bi)); !s.ok()) return s;
      VkBufferCopy region{offset + done, 0, n};
      vkCmdCopyBuffer(d.transfer_cmd, reinterpret_cast<VkBuffer>(src.buffer_),
                      reinterpret_cast<VkBuffer>(d.staging.buffer_), 1, &region);
      VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      vkCmdPipelineBarrier(d.transfer_cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                           nullptr, 0, nullptr);
      if (Status s = d.Check("vkEndCommandBuffer", vkEndCommandBuffer(d.transfer_cmd)); !s.ok()) return s;
      if (Status s = d.SubmitAndWait(d.transfer_queue, d.transfer_cmd, d.transfer_fence, "GPU download"); !s.ok())
        return s;
      std::memcpy(static_cast<uint8_t*>(dst) + done, d.staging.data(), n);
      done += n;
    }
  }
  stats_.download_bytes += bytes;
  stats_.download_seconds += Seconds(t0);
  return Status::Ok();
}

Result<PipelineId> VulkanDevice::Pipeline(const ShaderCode& code) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (auto it = d.pipeline_ids.find(code.name); it != d.pipeline_ids.end()) return it->second;
  const std::string name(code.name);
  if (code.spirv.empty()) return Unsupported("GPU kernel '" + name + "': built without Vulkan shaders (glslc missing)");
  if (code.n_buffers > kMaxBindings || code.push_bytes > d.info.max_push_constant_bytes)
    return InternalError("GPU kernel '" + name + "': too many buffers or push constants");
  // vkCreateShaderModule trusts its input; check the SPIR-V header ourselves so that a
  // corrupt blob is an error, not undefined behaviour in the driver.
  if (code.spirv.size() < 5 || code.spirv[0] != 0x07230203u)
    return InternalError("GPU kernel '" + name + "': shader failed to load: not SPIR-V (bad magic or too short)");
  PipelineEntry e;
  e.name = name;
  e.n_buffers = code.n_buffers;
  e.push_bytes = code.push_bytes;
  auto fail = [&](Status s) {
    if (e.pipeline) vkDestroyPipeline(d.device, e.pipeline, nullptr);
    if (e.layout) vkDestroyPipelineLayout(d.device, e.layout, nullptr);
    if (e.set_layout) vkDestroyDescriptorSetLayout(d.device, e.set_layout, nullptr);
    if (e.module) vkDestroyShaderModule(d.device, e.module, nullptr);
    return s.WithContext("GPU kernel '" + name + "': shader failed to compile");
  };
  VkShaderModuleCreateInfo smci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  smci.codeSize = code.spirv.size() * 4;
  smci.pCode = code.spirv.data();
  if (Status s = d.Check("vkCreateShaderModule", vkCreateShaderModule(d.device, &smci, nullptr, &e.module)); !s.ok())
    return fail(s);
  VkDescriptorSetLayoutBinding bindings[kMaxBindings];
  for (uint32_t i = 0; i < code.n_buffers; ++i)
    bindings[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  VkDescriptorSetLayoutCreateInfo dslci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  dslci.bindingCount = code.n_buffers;
  dslci.pBindings = bindings;
  if (Status s = d.Check("vkCreateDescriptorSetLayout",
                         vkCreateDescriptorSetLayout(d.device, &dslci, nullptr, &e.set_layout));
      !s.ok())
    return fail(s);
  VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, code.push_bytes};
  VkPipelineLayoutCreateInfo plci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &e.set_layout;
  plci.pushConstantRangeCount = code.push_bytes ? 1 : 0;
  plci.pPushConstantRanges = &pcr;
  if (Status s = d.Check("vkCreatePipelineLayout", vkCreatePipelineLayout(d.device, &plci, nullptr, &e.layout));
      !s.ok())
    return fail(s);
  VkComputePipelineCreateInfo cpci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  cpci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cpci.stage.module = e.module;
  cpci.stage.pName = "main";
  cpci.layout = e.layout;
  if (Status s = d.Check("vkCreateComputePipelines",
                         vkCreateComputePipelines(d.device, VK_NULL_HANDLE, 1, &cpci, nullptr, &e.pipeline));
      !s.ok())
    return fail(s);
  const PipelineId id = static_cast<PipelineId>(d.pipelines.size());
  d.pipelines.push_back(e);
  d.pipeline_ids.emplace(name, id);
  return id;
}

Status VulkanDevice::Dispatch(PipelineId pipeline, std::span<const BufferRange> buffers, std::span<const uint8_t> push,
                              uint32_t gx, uint32_t gy, uint32_t gz) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  SPOOL_CHECK(pipeline < d.pipelines.size());
  const PipelineEntry& p = d.pipelines[pipeline];
  SPOOL_CHECK_MSG(buffers.size() == p.n_buffers && push.size() == p.push_bytes, p.name.c_str());
  if (gx == 0 || gy == 0 || gz == 0) return Status::Ok();
  // A full descriptor pool: submit this frame and go on in the next (not Sync: host
  // parameters of the dispatch being recorded must stay valid, see Kernels::Param).
  if (d.recording && d.frames[d.cur].sets_used == kMaxSetsPerSubmit)
    if (auto f = Flush(); !f.ok()) return f.status();
  if (!d.recording) {
    if (Status s = d.Retire(d.cur, stats_); !s.ok()) return s;  // a frame from kComputeFrames flushes ago
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VkCommandBuffer cmd = d.frames[d.cur].cmd;
    if (Status s = d.Check("vkBeginCommandBuffer", vkBeginCommandBuffer(cmd, &bi)); !s.ok()) return s;
    if (d.timestamps) {
      vkCmdResetQueryPool(cmd, d.timestamps, static_cast<uint32_t>(2 * d.cur), 2);
      vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, d.timestamps, static_cast<uint32_t>(2 * d.cur));
    }
    // Uploads (transfer queue, host writes) finished before this submit: make them visible.
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    d.recording = true;
  }
  Impl::Frame& frame = d.frames[d.cur];
  const VkCommandBuffer cmd = frame.cmd;
  VkDescriptorSetAllocateInfo dsai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  dsai.descriptorPool = frame.pool;
  dsai.descriptorSetCount = 1;
  dsai.pSetLayouts = &p.set_layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  if (Status s = d.Check("vkAllocateDescriptorSets", vkAllocateDescriptorSets(d.device, &dsai, &set)); !s.ok())
    return s;
  ++frame.sets_used;
  VkDescriptorBufferInfo infos[kMaxBindings];
  VkWriteDescriptorSet writes[kMaxBindings];
  for (uint32_t i = 0; i < p.n_buffers; ++i) {
    const BufferRange& r = buffers[i];
    SPOOL_CHECK_MSG(r.buffer && r.buffer->valid(), p.name.c_str());
    SPOOL_CHECK_MSG(r.offset % d.min_offset_align == 0 && r.offset < r.buffer->bytes(), p.name.c_str());
    const uint64_t bytes = r.bytes ? r.bytes : r.buffer->bytes() - r.offset;
    SPOOL_CHECK_MSG(bytes <= r.buffer->bytes() - r.offset, p.name.c_str());
    infos[i] = {reinterpret_cast<VkBuffer>(r.buffer->buffer_), r.offset, bytes};
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstSet = set;
    writes[i].dstBinding = i;
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  vkUpdateDescriptorSets(d.device, p.n_buffers, writes, 0, nullptr);
  vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
  vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
  if (p.push_bytes) vkCmdPushConstants(cmd, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p.push_bytes, push.data());
  vkCmdDispatch(cmd, gx, gy, gz);
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, nullptr,
                       0, nullptr);
  ++stats_.dispatches;
  return Status::Ok();
}

Result<SubmissionId> VulkanDevice::Flush() {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (!d.recording) return SubmissionId{0};
  d.recording = false;
  Impl::Frame& f = d.frames[d.cur];
  if (d.timestamps)
    vkCmdWriteTimestamp(f.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, d.timestamps, static_cast<uint32_t>(2 * d.cur + 1));
  if (Status s = d.Check("vkEndCommandBuffer", vkEndCommandBuffer(f.cmd)); !s.ok()) return s;
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &f.cmd;
  if (Status s = d.Check("vkQueueSubmit", vkQueueSubmit(d.compute_queue, 1, &si, f.fence)); !s.ok())
    return s.WithContext("GPU compute");
  f.in_flight = true;
  f.id = ++d.submitted;
  ++stats_.flushes;
  d.cur = (d.cur + 1) % kComputeFrames;
  return f.id;
}

void VulkanDevice::SimulateDeviceLostForTesting() {
  (void)impl_->Check("vkQueueSubmit", VK_ERROR_DEVICE_LOST);
}

SubmissionId VulkanDevice::last_submission() const { return impl_->submitted; }

Status VulkanDevice::WaitSubmission(SubmissionId id) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (id == 0 || id <= d.completed) return Status::Ok();
  for (int i = 0; i < kComputeFrames; ++i)
    if (d.frames[i].in_flight && d.frames[i].id <= id)
      if (Status s = d.Retire(i, stats_); !s.ok()) return s;
  return Status::Ok();
}

Status VulkanDevice::Sync() {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  bool pending = d.recording;
  for (const auto& f : d.frames) pending = pending || f.in_flight;
  if (!pending) return Status::Ok();
  auto id = Flush();
  if (!id.ok()) return id.status();
  if (Status s = WaitSubmission(d.submitted); !s.ok()) return s;
  ++stats_.submits;
  return Status::Ok();
}

Result<SubmissionId> VulkanDevice::CopyAsync(const Buffer& src, uint64_t src_offset, const Buffer& dst,
                                             uint64_t dst_offset, uint64_t bytes) {
  const CopyRegion region{src_offset, dst_offset, bytes};
  return CopyAsync(src, dst, std::span<const CopyRegion>(&region, 1), 0);
}

Result<SubmissionId> VulkanDevice::CopyAsync(const Buffer& src, const Buffer& dst, std::span<const CopyRegion> regions,
                                             int tag) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  if (src.kind() != MemoryKind::kHostVisible) return InvalidArgument("GPU copy: the source is not host-visible");
  if (tag < 0 || tag >= DeviceStats::kCopyTags) return InvalidArgument("GPU copy: tag " + std::to_string(tag) + " out of range");
  uint64_t bytes = 0;
  std::vector<VkBufferCopy> vk;
  vk.reserve(regions.size());
  for (const CopyRegion& r : regions) {
    if (Status s = CheckRange(src, r.src_offset, r.bytes, "GPU copy source"); !s.ok()) return s;
    if (Status s = CheckRange(dst, r.dst_offset, r.bytes, "GPU copy destination"); !s.ok()) return s;
    if (r.bytes == 0) continue;
    vk.push_back(VkBufferCopy{r.src_offset, r.dst_offset, r.bytes});
    bytes += r.bytes;
  }
  if (bytes == 0) return SubmissionId{0};
  Impl::Copy& c = d.copies[d.copy_submitted % Impl::kCopies];
  if (Status s = d.RetireCopy(c, stats_); !s.ok()) return s;
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  if (Status s = d.Check("vkResetCommandBuffer", vkResetCommandBuffer(c.cmd, 0)); !s.ok()) return s;
  if (Status s = d.Check("vkBeginCommandBuffer", vkBeginCommandBuffer(c.cmd, &bi)); !s.ok()) return s;
  vkCmdCopyBuffer(c.cmd, reinterpret_cast<VkBuffer>(src.buffer_), reinterpret_cast<VkBuffer>(dst.buffer_),
                  static_cast<uint32_t>(vk.size()), vk.data());
  if (Status s = d.Check("vkEndCommandBuffer", vkEndCommandBuffer(c.cmd)); !s.ok()) return s;
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &c.cmd;
  c.t0 = std::chrono::steady_clock::now();
  if (Status s = d.Check("vkQueueSubmit", vkQueueSubmit(d.transfer_queue, 1, &si, c.fence)); !s.ok())
    return s.WithContext("GPU copy");
  c.in_flight = true;
  c.bytes = bytes;
  c.tag = tag;
  c.id = ++d.copy_submitted;
  return c.id;
}

Status VulkanDevice::WaitCopy(SubmissionId id) {
  Impl& d = *impl_;
  if (!d.lost.ok()) return d.lost;
  for (auto& c : d.copies)
    if (c.in_flight && c.id <= id)
      if (Status s = d.RetireCopy(c, stats_); !s.ok()) return s;
  return Status::Ok();
}

}  // namespace spool::gpu
