// The three weight tiers of the GPU decoder (gpu/weight_tiers.h, issue 17 item 3): every
// mix of VRAM, host memory and disk gives the logits of everything resident in VRAM, bit
// for bit (the same kernels on the same bytes), and the bytes each tier moves per forward
// pass are the plan's. Also: the buffered-read path (O_DIRECT off) equals the direct one,
// and bad inputs are clear errors (label malformed): host_layers of the wrong length, a
// model file truncated under a running decoder.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cpu_reference.h"
#include "gpu/llama_decoder.h"
#include "gpu_test_util.h"
#include "runtime/planner.h"
#include "tensor/ops.h"

namespace spool::gpu {
namespace {

const std::string kStories = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<int32_t> Prompt(runtime::Engine& e) {
  auto p = e.tokenizer()->Encode("Once upon a time, there was a little girl named Lily", true, false);
  SPOOL_CHECK(p.ok());
  return *p;
}

struct TierRun {
  std::vector<float> logits;  // every pass's logits, concatenated
  WeightTierStats tiers;
  VramPlan plan;
  int64_t passes = 0;
  uint64_t device_bytes = 0;
  uint64_t host_tag_bytes = 0, disk_tag_bytes = 0;  // DeviceStats per copy tag
};

// Prefill in chunks of max_rows, then n_decode greedy steps.
TierRun RunWith(VulkanDevice& dev, const models::ModelWeights& w, models::WeightProvider& p, const LlamaDecoderOptions& o,
            std::span<const int32_t> prompt, int n_decode) {
  const DeviceStats before = dev.stats();
  auto dec = LlamaDecoder::Open(dev, w, p, o);
  SPOOL_CHECK_MSG(dec.ok(), dec.status().message().c_str());
  const size_t V = static_cast<size_t>(w.config().n_vocab);
  TierRun r;
  std::vector<float> logits(V);
  SPOOL_CHECK((*dec)->Prefill(prompt, logits.data()).ok());
  r.logits.insert(r.logits.end(), logits.begin(), logits.end());
  for (int i = 0; i < n_decode; ++i) {
    const int32_t next = static_cast<int32_t>(Argmax(logits.data(), static_cast<int64_t>(V)));
    Status s = (*dec)->Step(next, logits.data());
    SPOOL_CHECK_MSG(s.ok(), s.message().c_str());
    r.logits.insert(r.logits.end(), logits.begin(), logits.end());
  }
  r.tiers = (*dec)->tier_stats();
  r.plan = (*dec)->plan();
  r.passes = (static_cast<int64_t>(prompt.size()) + o.max_rows - 1) / o.max_rows + n_decode;
  r.device_bytes = (*dec)->device_bytes();
  r.host_tag_bytes = dev.stats().tag_copy_bytes[1] - before.tag_copy_bytes[1];
  r.disk_tag_bytes = dev.stats().tag_copy_bytes[2] - before.tag_copy_bytes[2];
  return r;
}

class GpuWeightTiers : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = OpenCpu(kStories, 64, DType::kF32, 32);
    o_.ctx = 64;
    o_.page_tokens = 32;
    o_.max_rows = 8;
  }
  Opened m_;
  LlamaDecoderOptions o_;
};

TEST_F(GpuWeightTiers, EveryMixEqualsAllInVramBitForBit) {
  GPU_TEST_DEVICE(dev);
  const auto& w = m_.engine->weights();
  const int L = static_cast<int>(w.config().n_layer);  // 5
  const auto prompt = Prompt(*m_.engine);
  const TierRun vram = RunWith(*dev, w, *m_.provider, o_, prompt, 6);
  ASSERT_EQ(vram.plan.n_resident, L);
  EXPECT_EQ(vram.tiers.host_copy_bytes + vram.tiers.disk_read_bytes, 0u);
  auto full = LlamaDecoder::Plan(*dev, w, o_);
  ASSERT_TRUE(full.ok());
  struct Mix {
    const char* name;
    int vram;                 // layers VRAM holds
    std::vector<bool> host;   // host_layers
    int want_host, want_disk;
  };
  const std::vector<bool> all(static_cast<size_t>(L), true), none;
  const std::vector<bool> odd = {false, true, false, true, false};
  const std::vector<Mix> mixes = {
      {"VRAM + host", 2, all, 3, 0},
      {"VRAM + host + disk", 1, odd, 2, 2},
      {"host + disk", 0, odd, 2, 3},
      {"host only", 0, all, 5, 0},
      {"VRAM + disk", 2, none, 0, 3},
  };
  for (const Mix& mix : mixes) {
    SCOPED_TRACE(mix.name);
    LlamaDecoderOptions o = o_;
    o.vram_budget = full->fixed_bytes + 2 * full->largest_layer + static_cast<uint64_t>(mix.vram) * full->largest_layer;
    o.host_layers = mix.host;
    const TierRun r = RunWith(*dev, w, *m_.provider, o, prompt, 6);
    std::printf("%s: %s; read path: %s\n", mix.name, r.plan.ToString().c_str(), r.tiers.read_path.c_str());
    EXPECT_EQ(r.plan.n_resident, mix.vram);
    EXPECT_EQ(r.plan.n_host, mix.want_host);
    EXPECT_EQ(r.plan.n_disk, mix.want_disk);
    for (int l = 0; l < L; ++l) {
      const WeightTier want = l < mix.vram                                   ? WeightTier::kVram
                              : !mix.host.empty() && mix.host[static_cast<size_t>(l)] ? WeightTier::kHost
                                                                             : WeightTier::kDisk;
      EXPECT_EQ(r.plan.tiers[static_cast<size_t>(l)], want) << "layer " << l;
    }
    EXPECT_TRUE(SameBits(r.logits, vram.logits)) << "logits differ from all-in-VRAM";
    EXPECT_LE(r.device_bytes, o.vram_budget);
    // Per pass, each tier moves exactly the plan's bytes.
    const uint64_t passes = static_cast<uint64_t>(r.passes);
    EXPECT_EQ(r.tiers.passes, passes);
    EXPECT_EQ(r.tiers.host_copy_bytes, passes * r.plan.host_copy_bytes_per_pass);
    EXPECT_EQ(r.tiers.disk_read_bytes, passes * r.plan.disk_bytes_per_pass);
    EXPECT_EQ(r.tiers.disk_copy_bytes, passes * r.plan.disk_bytes_per_pass);
    EXPECT_LE(r.tiers.disk_device_bytes, passes * r.plan.disk_read_bytes_upper);
    EXPECT_GE(r.tiers.disk_device_bytes, r.tiers.disk_read_bytes);
    EXPECT_EQ(r.host_tag_bytes, r.tiers.host_copy_bytes);  // the device counted the same copies
    EXPECT_EQ(r.disk_tag_bytes, r.tiers.disk_copy_bytes);
    EXPECT_EQ(mix.want_host > 0, r.plan.host_copy_bytes_per_pass > 0);
    EXPECT_EQ(mix.want_disk > 0, r.plan.disk_bytes_per_pass > 0);
    EXPECT_EQ(r.plan.staging_bytes > 0, mix.want_disk > 0);  // staging only for the disk tier
    // Loaded once at open: the VRAM and host tiers and the head, nothing per pass.
    uint64_t load = w.output().info->nbytes;
    for (int l = 0; l < L; ++l)
      if (r.plan.tiers[static_cast<size_t>(l)] != WeightTier::kDisk)
        for (const models::MatrixRef* mat : w.group(l).matrices) load += mat->info->nbytes;
    EXPECT_EQ(r.tiers.load_bytes, load);
  }
}

TEST_F(GpuWeightTiers, BufferedReadsEqualDirectReads) {
  GPU_TEST_DEVICE(dev);
  const auto& w = m_.engine->weights();
  const auto prompt = Prompt(*m_.engine);
  auto full = LlamaDecoder::Plan(*dev, w, o_);
  ASSERT_TRUE(full.ok());
  LlamaDecoderOptions o = o_;
  o.vram_budget = full->fixed_bytes + 2 * full->largest_layer;  // every layer from disk
  const TierRun direct = RunWith(*dev, w, *m_.provider, o, prompt, 3);
  o.reader.direct = false;
  const TierRun buffered = RunWith(*dev, w, *m_.provider, o, prompt, 3);
  EXPECT_TRUE(SameBits(direct.logits, buffered.logits));
  EXPECT_NE(buffered.tiers.read_path.find("buffered"), std::string::npos) << buffered.tiers.read_path;
  std::printf("direct: %s\nbuffered: %s\n", direct.tiers.read_path.c_str(), buffered.tiers.read_path.c_str());
  EXPECT_EQ(direct.tiers.disk_read_bytes, buffered.tiers.disk_read_bytes);
}

TEST_F(GpuWeightTiers, HostLayersOfAnotherLengthAreAClearError) {
  GPU_TEST_DEVICE(dev);
  LlamaDecoderOptions o = o_;
  o.vram_budget = 1;  // checked before the budget
  o.host_layers = {true, false};
  auto p = LlamaDecoder::Plan(*dev, m_.engine->weights(), o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("host_layers has 2 entries, the model 5 layers"), std::string::npos)
      << p.status().message();
}

// A model file truncated while a decoder streams from it: the next pass fails with an
// error naming the layer and the file, nothing crashes, and nothing is appended.
TEST_F(GpuWeightTiers, TruncatedFileUnderTheDiskTierIsAClearError) {
  GPU_TEST_DEVICE(dev);
  const std::string dir = ::testing::TempDir() + "/gpu_tiers_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string copy = dir + "/stories260K.gguf";
  std::filesystem::copy_file(kStories, copy, std::filesystem::copy_options::overwrite_existing);
  Opened m = OpenCpu(copy, 64, DType::kF32, 32);
  const auto& w = m.engine->weights();
  auto full = LlamaDecoder::Plan(*dev, w, o_);
  ASSERT_TRUE(full.ok());
  LlamaDecoderOptions o = o_;
  o.vram_budget = full->fixed_bytes + 2 * full->largest_layer;  // every layer from disk
  auto dec = LlamaDecoder::Open(*dev, w, *m.provider, o);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  std::vector<float> logits(static_cast<size_t>(w.config().n_vocab));
  ASSERT_TRUE((*dec)->Step(1, logits.data()).ok());
  std::filesystem::resize_file(copy, w.layer(0).wq.info->offset);  // cuts every layer
  Status s = (*dec)->Step(2, logits.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("GPU decoder: streaming layer 0"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("stories260K.gguf"), std::string::npos) << s.message();
  EXPECT_EQ((*dec)->n_tokens(), 1);
  std::filesystem::remove_all(dir);
}

// The host plan under --device vulkan (runtime/planner.h, PlannerOptions::device_groups):
// VRAM holds layer 0 and the head; the other layers go to host RAM while they fit beside
// two staging buffers, spread over the depth, the rest to disk; a budget below the
// fixed part plus the staging buffers is a clear error. Needs no device.
TEST_F(GpuWeightTiers, HostPlanPlacesHostAndDiskTiers) {
  const auto& w = m_.engine->weights();
  const int head = w.head_group();
  runtime::PlannerOptions po;
  po.ctx = 64;
  po.kv_page_tokens = 32;
  po.kv_dtype = DType::kF32;
  po.prefill_chunk = 8;
  po.threads = 1;
  po.baseline_bytes = 64ull << 20;
  po.device_groups.assign(static_cast<size_t>(w.n_groups()), false);
  po.device_groups[0] = po.device_groups[static_cast<size_t>(head)] = true;
  po.device_kv_in_vram = true;
  po.budget_bytes = 1ull << 40;
  auto all = runtime::PlanResidency(w, po);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->on_device, po.device_groups);
  EXPECT_EQ(all->kv_bytes, 0u);  // the KV cache is in VRAM
  EXPECT_EQ(all->n_streamed, 0);
  EXPECT_EQ(all->ring_slots, 0);
  for (int l = 1; l < head; ++l) EXPECT_TRUE(all->resident[static_cast<size_t>(l)]) << l;
  EXPECT_FALSE(all->resident[0]);  // in VRAM, not held in RAM too
  EXPECT_FALSE(all->resident[static_cast<size_t>(head)]);
  const uint64_t group = w.group(1).bytes;  // the largest of stories260K's layers (they differ by a page)
  EXPECT_EQ(all->device_largest_bytes, group);
  // Not all four placed layers fit (3.5 groups): two staging buffers and one layer in
  // RAM (the last, as the spread puts one of four), layers 1-3 from disk.
  po.budget_bytes = all->device_min_bytes + 3 * group + group / 2;
  auto mixed = runtime::PlanResidency(w, po);
  ASSERT_TRUE(mixed.ok()) << mixed.status().message();
  const std::vector<bool> want = {false, false, false, false, true, false};
  EXPECT_EQ(mixed->resident, want);
  EXPECT_EQ(mixed->n_streamed, 3);
  EXPECT_EQ(mixed->ring_slots, 2);
  EXPECT_EQ(mixed->ring_slot_bytes, group);
  EXPECT_EQ(mixed->resident_bytes, w.group(4).bytes);
  EXPECT_LE(mixed->planned_bytes(), po.budget_bytes);
  EXPECT_EQ(mixed->streamed_bytes_per_step, runtime::GroupReadBytes(w, 1) + runtime::GroupReadBytes(w, 2) +
                                                runtime::GroupReadBytes(w, 3) +
                                                (w.token_embd().row_bytes() + 4095) / 4096 * 4096);
  const std::string text = runtime::FormatPlan(w, *mixed);
  EXPECT_NE(text.find("weights in VRAM"), std::string::npos) << text;
  EXPECT_NE(text.find("3/6: layers 1-3 (O_DIRECT"), std::string::npos) << text;
  // Below the fixed part + the staging buffers: refused, naming the staging buffers.
  po.budget_bytes = all->device_min_bytes + 2 * group - 1;
  auto small = runtime::PlanResidency(w, po);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(small.status().message().find("on the GPU"), std::string::npos) << small.status().message();
  EXPECT_NE(small.status().message().find("2 staging buffers of the largest layer read from disk"), std::string::npos)
      << small.status().message();
  // device_groups of the wrong length, or without the head: InvalidArgument.
  po.device_groups.pop_back();
  EXPECT_EQ(runtime::PlanResidency(w, po).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace spool::gpu
