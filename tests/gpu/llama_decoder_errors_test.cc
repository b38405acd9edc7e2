// The GPU decoder's error paths (label malformed): a full context, tokens outside the
// vocabulary, a prompt that does not fit, a VRAM budget too small for the fixed buffers
// and the ring, a lost device, a host KV cache of the wrong layout for the KV window.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpu/llama_decoder.h"
#include "cpu_reference.h"
#include "gpu_test_util.h"
#include "runtime/engine.h"
#include "runtime/resident_weights.h"

namespace spool::gpu {
namespace {

const std::string kStories = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";


TEST(GpuLlamaDecoder, FullContextAndBadTokensAreErrors) {
  GPU_TEST_DEVICE(dev);
  runtime::EngineOptions o;
  o.threads = 1;
  o.ctx = 8;
  auto engine = runtime::Engine::Open(kStories, o);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  auto provider = runtime::ResidentWeights::Load((*engine)->weights());
  ASSERT_TRUE(provider.ok());
  auto dec = LlamaDecoder::Open(*dev, (*engine)->weights(), **provider, 2, DType::kF32);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  std::vector<float> logits(static_cast<size_t>((*engine)->n_vocab()));
  EXPECT_EQ((*dec)->Step(-1, logits.data()).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ((*dec)->Step(static_cast<int32_t>((*engine)->n_vocab()), logits.data()).code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE((*dec)->Step(1, logits.data()).ok());
  ASSERT_TRUE((*dec)->Step(2, logits.data()).ok());
  Status full = (*dec)->Step(3, logits.data());
  EXPECT_EQ(full.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(full.message().find("context of 2 tokens is full"), std::string::npos) << full.message();
  EXPECT_EQ(LlamaDecoder::Open(*dev, (*engine)->weights(), **provider, 4, DType::kQ8_0).status().code(),
            ErrorCode::kUnsupported);
}

// A budget that cannot hold the fixed buffers and two layer slots is refused up front,
// with the numbers; so is a device allocation beyond the device's limits.
TEST(GpuLlamaDecoder, TooSmallVramBudgetIsAClearError) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 64, DType::kF32, 32, /*threads=*/1);
  LlamaDecoderOptions o;
  o.ctx = 64;
  auto full = LlamaDecoder::Plan(*dev, m.engine->weights(), o);
  ASSERT_TRUE(full.ok());
  o.vram_budget = full->fixed_bytes + 2 * full->largest_layer - 1;
  auto d = LlamaDecoder::Open(*dev, m.engine->weights(), *m.provider, o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kResourceExhausted);
  const std::string msg = d.status().message();
  EXPECT_NE(msg.find("--vram-budget " + std::to_string(o.vram_budget) + " bytes is too small"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs at least " + std::to_string(full->fixed_bytes + 2 * full->largest_layer)), std::string::npos)
      << msg;
  o.vram_budget = 1;
  EXPECT_EQ(LlamaDecoder::Open(*dev, m.engine->weights(), *m.provider, o).status().code(), ErrorCode::kResourceExhausted);
  // A context whose KV cache exceeds the device's buffer limit is no longer refused: the
  // plan keeps a window of it in VRAM (tests/gpu/kv_window_test.cc runs such a cache).
  LlamaDecoderOptions huge;
  huge.ctx = static_cast<int64_t>(dev->info().max_buffer_bytes / 4 / static_cast<uint64_t>(m.engine->weights().config().kv_dim())) + 1;
  huge.ctx = huge.ctx / m.engine->weights().config().n_layer + 1;
  auto big = LlamaDecoder::Plan(*dev, m.engine->weights(), huge);
  ASSERT_TRUE(big.ok()) << big.status().message();
  EXPECT_TRUE(big->kv_windowed()) << big->ToString();
  EXPECT_LE(big->kv_seq_bytes / 2, dev->info().max_buffer_bytes) << big->ToString();
}

TEST(GpuLlamaDecoder, PrefillErrors) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 16, DType::kF32, 32, /*threads=*/1);
  LlamaDecoderOptions o;
  o.ctx = 8;
  o.max_rows = 4;
  auto dec = LlamaDecoder::Open(*dev, m.engine->weights(), *m.provider, o);
  ASSERT_TRUE(dec.ok());
  std::vector<float> logits(static_cast<size_t>(m.engine->n_vocab()));
  const std::vector<int32_t> bad = {1, 2, -3};
  EXPECT_EQ((*dec)->Prefill(bad, logits.data()).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ((*dec)->Prefill({}, logits.data()).code(), ErrorCode::kInvalidArgument);
  const std::vector<int32_t> nine(9, 1);
  Status s = (*dec)->Prefill(nine, logits.data());
  EXPECT_EQ(s.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(s.message().find("does not fit the context of 8"), std::string::npos) << s.message();
  EXPECT_EQ((*dec)->n_tokens(), 0);  // nothing ran
  o.max_rows = 0;
  EXPECT_EQ(LlamaDecoder::Open(*dev, m.engine->weights(), *m.provider, o).status().code(), ErrorCode::kInvalidArgument);
}

// A device lost in the middle of a run (simulated: lavapipe cannot lose one): the next
// step fails with the driver's error, saying the device was lost, and so does every
// later call — no crash, no partial logits reported as a result.
TEST(GpuLlamaDecoder, LostDeviceIsAClearError) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 16, DType::kF32, 32, /*threads=*/1);
  LlamaDecoderOptions o;
  o.ctx = 16;
  auto full = LlamaDecoder::Plan(*dev, m.engine->weights(), o);
  ASSERT_TRUE(full.ok());
  o.vram_budget = full->fixed_bytes + 2 * full->largest_layer;  // streaming: copies in flight too
  auto dec = LlamaDecoder::Open(*dev, m.engine->weights(), *m.provider, o);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  std::vector<float> logits(static_cast<size_t>(m.engine->n_vocab()));
  ASSERT_TRUE((*dec)->Step(1, logits.data()).ok());
  dev->SimulateDeviceLostForTesting();
  for (int i = 0; i < 2; ++i) {
    Status s = (*dec)->Step(2, logits.data());
    EXPECT_EQ(s.code(), ErrorCode::kInternal);
    EXPECT_NE(s.message().find("VK_ERROR_DEVICE_LOST: the Vulkan device was lost"), std::string::npos) << s.message();
  }
  EXPECT_EQ((*dec)->n_tokens(), 1);
  EXPECT_FALSE(dev->Allocate(64, MemoryKind::kDevice, "after loss").ok());
  EXPECT_FALSE(dev->Flush().ok());
}

// The KV window's host cache must have the decoder's layout and be empty: otherwise a
// clear error naming both layouts, nothing allocated for the sequence.
TEST(GpuLlamaDecoder, KvWindowHostCacheErrors) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 64, DType::kF32, 8, /*threads=*/1);
  const models::ModelConfig& c = m.engine->weights().config();
  LlamaDecoderOptions o;
  o.ctx = 64;
  o.page_tokens = 8;
  o.kv_hot_tokens = 16;
  o.own_kv = false;
  auto dec = LlamaDecoder::Open(*dev, m.engine->weights(), *m.provider, o);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  ASSERT_TRUE((*dec)->plan().kv_windowed());
  kv::InRamKv wrong_pages(kv::KvLayout{c.n_layer, c.n_head_kv, c.head_dim, 16, DType::kF32, {}});
  auto a = (*dec)->NewKv(&wrong_pages);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("in pages of 16; expected"), std::string::npos) << a.status().message();
  kv::InRamKv wrong_type(kv::KvLayout{c.n_layer, c.n_head_kv, c.head_dim, 8, DType::kBF16, {}});
  EXPECT_EQ((*dec)->NewKv(&wrong_type).status().code(), ErrorCode::kInvalidArgument);
  kv::InRamKv used(kv::KvLayout{c.n_layer, c.n_head_kv, c.head_dim, 8, DType::kF32, {}});
  std::vector<float> row(static_cast<size_t>(c.kv_dim()), 1.0f);
  for (int64_t l = 0; l < c.n_layer; ++l) ASSERT_TRUE(used.Write(l, 0, 1, row.data(), row.data()).ok());
  ASSERT_TRUE(used.Commit(1).ok());
  auto b = (*dec)->NewKv(&used);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("holds 1 tokens (expected an empty one)"), std::string::npos)
      << b.status().message();
  // Truncating beyond the cache's length is refused.
  auto ok = (*dec)->NewKv();
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*dec)->Truncate(**ok, 1).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace spool::gpu
