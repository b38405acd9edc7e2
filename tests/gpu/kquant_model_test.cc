// A whole K-quant model on the GPU against the CPU engine: a small random Llama written
// here as GGUF (llama.cpp's Q4_K_M layout: attention and gate/up Q4_K, ffn_down and the
// output head Q6_K, f32 embeddings and norms; 4 layers of 256, ff 512, 4 heads / 2 KV
// heads of 64). No fixture file: the bytes are random blocks with scales chosen so that
// activations stay in a sane range, generated with a fixed seed at test time.
//  - token by token: logits bit-identical to Engine::Decode where the device has a fused
//    or f64 fma (lavapipe: f64), else within 5e-2 of max|logit|; greedy ids identical;
//  - prefill (tiled K-quant GEMM) then greedy: the same against Engine::Prefill (the CPU
//    prefills quantised weights with its integer GEMV, row by row);
//  - streamed through a VRAM budget of the ring + one resident layer (3 of 4 layers
//    streamed) = resident, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "gpu/kernels.h"
#include "gpu/llama_decoder.h"
#include "gpu_test_util.h"
#include "runtime/engine.h"
#include "runtime/resident_weights.h"
#include "tensor/ops.h"
#include "tensor/quant_blocks.h"

namespace spool::gpu {
namespace {

constexpr int64_t kEmbd = 256, kFf = 512, kHeads = 4, kKvHeads = 2, kLayers = 4, kVocab = 320;

// Little-endian GGUF v3 writer: just what this model needs.
class Gguf {
 public:
  void Kv(const std::string& key, uint32_t v) {
    Str(key, kv_);
    Put<uint32_t>(4, kv_);  // GGUF_TYPE_UINT32
    Put(v, kv_);
    ++n_kv_;
  }
  void Kv(const std::string& key, float v) {
    Str(key, kv_);
    Put<uint32_t>(6, kv_);  // GGUF_TYPE_FLOAT32
    Put(v, kv_);
    ++n_kv_;
  }
  void Kv(const std::string& key, const std::string& v) {
    Str(key, kv_);
    Put<uint32_t>(8, kv_);  // GGUF_TYPE_STRING
    Str(v, kv_);
    ++n_kv_;
  }
  // shape as GGUF stores it: ne0 (the row length) first.
  void Tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t ggml_type, const std::vector<uint8_t>& bytes) {
    Str(name, info_);
    Put<uint32_t>(static_cast<uint32_t>(ne.size()), info_);
    for (uint64_t n : ne) Put(n, info_);
    Put(ggml_type, info_);
    while (data_.size() % 32) data_.push_back(0);
    Put<uint64_t>(data_.size(), info_);
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    ++n_tensors_;
  }
  void Write(const std::string& path) const {
    std::vector<uint8_t> out;
    Put<uint32_t>(0x46554747u, out);  // "GGUF"
    Put<uint32_t>(3, out);
    Put<uint64_t>(n_tensors_, out);
    Put<uint64_t>(n_kv_, out);
    out.insert(out.end(), kv_.begin(), kv_.end());
    out.insert(out.end(), info_.begin(), info_.end());
    while (out.size() % 32) out.push_back(0);
    out.insert(out.end(), data_.begin(), data_.end());
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  }

 private:
  template <typename T>
  static void Put(T v, std::vector<uint8_t>& b) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  static void Str(const std::string& s, std::vector<uint8_t>& b) {
    Put<uint64_t>(s.size(), b);
    b.insert(b.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> kv_, info_, data_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
};

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Random Q4_K / Q6_K blocks: random quants and scale bytes, block scales small enough
// that weights have |w| ≲ 0.1.
std::vector<uint8_t> RandomKQuant(std::mt19937& rng, DType t, int64_t n) {
  const auto& ti = GetDTypeInfo(t);
  std::vector<uint8_t> b(static_cast<size_t>(n / ti.block_elems * ti.block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (auto& x : b) x = static_cast<uint8_t>(byte(rng));
  for (size_t i = 0; i < b.size(); i += ti.block_bytes) {
    if (t == DType::kQ4_K) {
      const uint16_t d = F32ToF16(1e-4f * u(rng)), dmin = F32ToF16(1e-4f * u(rng));
      std::memcpy(&b[i], &d, 2);
      std::memcpy(&b[i + 2], &dmin, 2);
    } else {
      const uint16_t d = F32ToF16(2e-5f * u(rng));
      std::memcpy(&b[i + 208], &d, 2);
    }
  }
  return b;
}

std::string WriteModel() {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("spool_gpu_kquant_" + std::to_string(::getpid()) + ".gguf")).string();
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Gguf g;
  g.Kv("general.architecture", std::string("llama"));
  g.Kv("llama.block_count", static_cast<uint32_t>(kLayers));
  g.Kv("llama.embedding_length", static_cast<uint32_t>(kEmbd));
  g.Kv("llama.feed_forward_length", static_cast<uint32_t>(kFf));
  g.Kv("llama.attention.head_count", static_cast<uint32_t>(kHeads));
  g.Kv("llama.attention.head_count_kv", static_cast<uint32_t>(kKvHeads));
  g.Kv("llama.context_length", static_cast<uint32_t>(256));
  g.Kv("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  constexpr uint32_t kF32 = 0, kQ4K = 12, kQ6K = 14;
  std::vector<float> emb(static_cast<size_t>(kVocab * kEmbd));
  for (float& x : emb) x = normal(rng);
  g.Tensor("token_embd.weight", {kEmbd, kVocab}, kF32, F32Bytes(emb));
  const std::vector<float> ones(kEmbd, 1.0f);
  const int64_t kv = kEmbd / kHeads * kKvHeads;
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    g.Tensor(p + "attn_norm.weight", {kEmbd}, kF32, F32Bytes(ones));
    g.Tensor(p + "attn_q.weight", {kEmbd, kEmbd}, kQ4K, RandomKQuant(rng, DType::kQ4_K, kEmbd * kEmbd));
    g.Tensor(p + "attn_k.weight", {kEmbd, static_cast<uint64_t>(kv)}, kQ4K, RandomKQuant(rng, DType::kQ4_K, kEmbd * kv));
    g.Tensor(p + "attn_v.weight", {kEmbd, static_cast<uint64_t>(kv)}, kQ4K, RandomKQuant(rng, DType::kQ4_K, kEmbd * kv));
    g.Tensor(p + "attn_output.weight", {kEmbd, kEmbd}, kQ4K, RandomKQuant(rng, DType::kQ4_K, kEmbd * kEmbd));
    g.Tensor(p + "ffn_norm.weight", {kEmbd}, kF32, F32Bytes(ones));
    g.Tensor(p + "ffn_gate.weight", {kEmbd, kFf}, kQ4K, RandomKQuant(rng, DType::kQ4_K, kEmbd * kFf));
    g.Tensor(p + "ffn_up.weight", {kEmbd, kFf}, kQ4K, RandomKQuant(rng, DType::kQ4_K, kEmbd * kFf));
    g.Tensor(p + "ffn_down.weight", {kFf, kEmbd}, kQ6K, RandomKQuant(rng, DType::kQ6_K, kFf * kEmbd));
  }
  g.Tensor("output_norm.weight", {kEmbd}, kF32, F32Bytes(ones));
  g.Tensor("output.weight", {kEmbd, kVocab}, kQ6K, RandomKQuant(rng, DType::kQ6_K, kEmbd * kVocab));
  g.Write(path);
  return path;
}

class KQuantModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { path_ = new std::string(WriteModel()); }
  static void TearDownTestSuite() {
    std::filesystem::remove(*path_);
    delete path_;
  }
  void OpenCpu(int64_t ctx) {
    runtime::EngineOptions o;
    o.threads = 2;
    o.ctx = ctx;
    o.load_tokenizer = false;
    o.kv_page_tokens = 16;
    o.kv_dtype = DType::kF32;  // the decoder's default below
    auto e = runtime::Engine::Open(*path_, o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    engine_ = std::move(e.value());
    auto p = runtime::ResidentWeights::Load(engine_->weights());
    ASSERT_TRUE(p.ok());
    provider_ = std::move(p.value());
  }
  static std::string* path_;
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<models::WeightProvider> provider_;
};
std::string* KQuantModel::path_ = nullptr;

const std::vector<int32_t> kPrompt = {1, 17, 42, 99, 7, 250, 3, 64, 128, 11, 300, 5, 77};

float Tolerance(VulkanDevice& dev) {
  Kernels k(dev);
  auto fused = k.FusedFma();
  return (fused.ok() && fused.value()) || dev.info().shader_float64 ? 0.0f : 5e-2f;
}

double RelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float lmax = 0, dmax = 0;
  for (size_t j = 0; j < a.size(); ++j) {
    lmax = std::max(lmax, std::fabs(a[j]));
    dmax = std::max(dmax, std::fabs(a[j] - b[j]));
  }
  return dmax / std::max(lmax, 1e-30f);
}

TEST_F(KQuantModel, WeightsAreKQuants) {
  OpenCpu(64);
  const auto& w = engine_->weights();
  EXPECT_EQ(w.layer(0).wq.dtype, DType::kQ4_K);
  EXPECT_EQ(w.layer(1).dense.down.dtype, DType::kQ6_K);
  EXPECT_EQ(w.output().dtype, DType::kQ6_K);
}

TEST_F(KQuantModel, TokenByTokenEqualsCpu) {
  GPU_TEST_DEVICE(dev);
  OpenCpu(64);
  const float tol = Tolerance(*dev);
  LlamaDecoderOptions o;
  o.ctx = 64;
  o.page_tokens = 16;
  auto dec = LlamaDecoder::Open(*dev, engine_->weights(), *provider_, o);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  const size_t V = static_cast<size_t>(engine_->n_vocab());
  std::vector<float> cpu(V), gpu(V);
  auto seq = engine_->NewSequence();
  runtime::Sequence* seqs[] = {seq.get()};
  double worst = 0;
  int32_t token = kPrompt[0];
  for (size_t i = 0; i < kPrompt.size() + 16; ++i) {
    ASSERT_TRUE(engine_->Decode(seqs, {&token, 1}, cpu.data()).ok());
    ASSERT_TRUE((*dec)->Step(token, gpu.data()).ok());
    worst = std::max(worst, RelDiff(cpu, gpu));
    ASSERT_LE(RelDiff(cpu, gpu), tol) << "step " << i;
    const int32_t c = static_cast<int32_t>(Argmax(cpu.data(), static_cast<int64_t>(V)));
    ASSERT_EQ(c, static_cast<int32_t>(Argmax(gpu.data(), static_cast<int64_t>(V)))) << "step " << i;
    token = i + 1 < kPrompt.size() ? kPrompt[i + 1] : c;
  }
  std::printf("K-quant model token by token: worst |Δlogit| / max|logit| = %.3g\n", worst);
}

TEST_F(KQuantModel, PrefillThenGreedyEqualsCpu) {
  GPU_TEST_DEVICE(dev);
  OpenCpu(64);
  const float tol = Tolerance(*dev);
  LlamaDecoderOptions o;
  o.ctx = 64;
  o.page_tokens = 16;
  o.max_rows = 5;
  auto dec = LlamaDecoder::Open(*dev, engine_->weights(), *provider_, o);
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  const size_t V = static_cast<size_t>(engine_->n_vocab());
  std::vector<float> cpu(V), gpu(V);
  auto seq = engine_->NewSequence();
  ASSERT_TRUE(engine_->Prefill(*seq, kPrompt, cpu.data()).ok());
  ASSERT_TRUE((*dec)->Prefill(kPrompt, gpu.data()).ok());
  runtime::Sequence* seqs[] = {seq.get()};
  for (int i = 0; i < 12; ++i) {
    ASSERT_LE(RelDiff(cpu, gpu), tol) << "step " << i;
    const int32_t c = static_cast<int32_t>(Argmax(cpu.data(), static_cast<int64_t>(V)));
    ASSERT_EQ(c, static_cast<int32_t>(Argmax(gpu.data(), static_cast<int64_t>(V)))) << "step " << i;
    ASSERT_TRUE(engine_->Decode(seqs, {&c, 1}, cpu.data()).ok());
    ASSERT_TRUE((*dec)->Step(c, gpu.data()).ok());
  }
}

TEST_F(KQuantModel, StreamedEqualsResident) {
  GPU_TEST_DEVICE(dev);
  OpenCpu(64);
  LlamaDecoderOptions o;
  o.ctx = 64;
  o.page_tokens = 16;
  o.max_rows = 4;
  auto run = [&](const LlamaDecoderOptions& opts) {
    auto dec = LlamaDecoder::Open(*dev, engine_->weights(), *provider_, opts);
    SPOOL_CHECK_MSG(dec.ok(), dec.status().message().c_str());
    const size_t V = static_cast<size_t>(engine_->n_vocab());
    std::vector<float> logits(V), all;
    SPOOL_CHECK((*dec)->Prefill(kPrompt, logits.data()).ok());
    all = logits;
    for (int i = 0; i < 6; ++i) {
      SPOOL_CHECK((*dec)->Step(static_cast<int32_t>(Argmax(logits.data(), static_cast<int64_t>(V))), logits.data()).ok());
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return std::make_pair(all, (*dec)->plan());
  };
  const auto [resident, full] = run(o);
  o.vram_budget = full.fixed_bytes + 3 * full.largest_layer;  // the ring and 1 resident layer: 3 streamed
  const auto [streamed, plan] = run(o);
  EXPECT_EQ(plan.n_streamed, 3) << plan.ToString();
  ASSERT_EQ(streamed.size(), resident.size());
  EXPECT_EQ(0, std::memcmp(streamed.data(), resident.data(), resident.size() * 4));
}

}  // namespace
}  // namespace spool::gpu
