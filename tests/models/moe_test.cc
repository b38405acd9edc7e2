// Mixture of experts: the router's top-k (and llama.cpp's arithmetic of it) against a
// plain reference, and malformed MoE checkpoints — HF folders, spool's own GGUFs and
// llama.cpp's converter output — refused with errors that name the field or tensor
// (label `malformed`).
// Parity with transformers is in hf_parity_test (the *-moe fixtures, mixtral, olmoe).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "formats/model_source.h"
#include "models/config.h"
#include "models/weights.h"
#include "tensor/topk.h"
#include "edited_fixture.h"
#include "../formats/test_writers.h"

namespace spool {
namespace {

namespace fs = std::filesystem;

// Plain reference: full softmax in double, a stable sort by descending probability.
void RouteReference(const float* z, int64_t E, int64_t k, bool renorm, std::vector<int32_t>* ids,
                    std::vector<double>* w) {
  double mx = *std::max_element(z, z + E), sum = 0;
  std::vector<double> p(E);
  for (int64_t e = 0; e < E; ++e) sum += p[e] = std::exp(static_cast<double>(z[e]) - mx);
  for (auto& x : p) x /= sum;
  std::vector<int32_t> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  ids->assign(order.begin(), order.begin() + k);
  w->clear();
  double kept = 0;
  for (int64_t i = 0; i < k; ++i) kept += p[order[i]];
  for (int64_t i = 0; i < k; ++i) w->push_back(renorm ? p[order[i]] / kept : p[order[i]]);
}

TEST(RouteTopK, MatchesReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int64_t E : {1, 2, 8, 60, 128})
    for (int64_t k : {int64_t{1}, int64_t{2}, std::min<int64_t>(E, 8), E})
      for (bool renorm : {false, true}) {
        if (k > E) continue;
        const int64_t rows = 7;
        std::vector<float> z(rows * E);
        for (auto& x : z) x = nd(rng);
        if (E >= 4) z[2] = z[3] = 50.0f;  // a tie at the top of row 0: lower index first
        std::vector<int32_t> ids(rows * k);
        std::vector<float> w(rows * k);
        RouteTopK(z.data(), rows, E, k, renorm, ids.data(), w.data());
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<int32_t> rid;
          std::vector<double> rw;
          RouteReference(z.data() + r * E, E, k, renorm, &rid, &rw);
          for (int64_t i = 0; i < k; ++i) {
            EXPECT_EQ(ids[r * k + i], rid[i]) << "E=" << E << " k=" << k << " row " << r << " rank " << i;
            EXPECT_NEAR(w[r * k + i], rw[i], 1e-6 * (1 + rw[i])) << "E=" << E << " k=" << k;
          }
        }
      }
}

// llama.cpp's arithmetic (ggml softmax with its SIMD expf over 16-wide chunks, double
// sums) equals the reference to float rounding, including expert counts with and
// without a 16-wide body and a tail.
TEST(RouteTopKGgml, MatchesReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int64_t E : {4, 8, 16, 60, 128})
    for (int64_t k : {int64_t{1}, int64_t{2}, std::min<int64_t>(E, 8)})
      for (bool renorm : {false, true}) {
        const int64_t rows = 5;
        std::vector<float> z(rows * E);
        for (auto& x : z) x = nd(rng);
        std::vector<int32_t> ids(rows * k);
        std::vector<float> w(rows * k);
        RouteTopKGgml(z.data(), rows, E, k, renorm, ids.data(), w.data());
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<int32_t> rid;
          std::vector<double> rw;
          RouteReference(z.data() + r * E, E, k, renorm, &rid, &rw);
          for (int64_t i = 0; i < k; ++i) {
            EXPECT_EQ(ids[r * k + i], rid[i]) << "E=" << E << " k=" << k << " row " << r << " rank " << i;
            EXPECT_NEAR(w[r * k + i], rw[i], 2e-6 * (1 + rw[i])) << "E=" << E << " k=" << k;
          }
        }
      }
}

TEST(RouteTopK, RenormalisedWeightsSumToOne) {
  std::vector<float> z = {0.1f, -2.0f, 3.0f, 0.7f, 0.0f, 1.5f};
  std::vector<int32_t> ids(3);
  std::vector<float> w(3);
  RouteTopK(z.data(), 1, 6, 3, true, ids.data(), w.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 5, 3}));
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0f, 1e-6f);
}

// Copies an MoE fixture and applies `edit` to its config.json.
std::string EditedMoe(const std::string& fixture, const std::string& name,
                      const std::function<void(nlohmann::ordered_json&)>& edit) {
  return testing::EditedFixture(fixture, "moe_" + name, edit);
}

// Renames a tensor inside model.safetensors' header (same length: offsets stay valid).
void RenameTensor(const std::string& dir, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  const std::string path = dir + "/model.safetensors";
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  const size_t at = header.find("\"" + from + "\"");
  ASSERT_NE(at, std::string::npos) << from;
  header.replace(at + 1, from.size(), to);
  f.seekp(8);
  f.write(header.data(), static_cast<std::streamsize>(n));
}

Status LoadStatus(const std::string& dir) {
  auto src = formats::OpenModelSource(dir);
  if (!src.ok()) return src.status();
  auto w = models::ModelWeights::Load(std::move(*src));
  return w.ok() ? Status::Ok() : w.status();
}

void ExpectError(const Status& st, ErrorCode code, const std::string& needle) {
  EXPECT_EQ(st.code(), code) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(MoeConfig, FixturesLoad) {
  for (const char* f : {"qwen3-moe-fused-f32", "qwen2-moe-shared-f32", "mixtral-bf16", "olmoe-f32"}) {
    auto src = formats::OpenModelSource(std::string(SPOOL_TEST_FIXTURES) + "/models/" + f);
    ASSERT_TRUE(src.ok()) << src.status().message();
    auto w = models::ModelWeights::Load(std::move(*src));
    ASSERT_TRUE(w.ok()) << f << ": " << w.status().message();
    EXPECT_TRUE((*w)->config().has_moe()) << f;
    EXPECT_EQ((*w)->config().moe.n_expert, 8) << f;
  }
}

TEST(MoeConfig, LayerSpecsFollowSparseStepAndMlpOnlyLayers) {
  auto src = formats::OpenModelSource(std::string(SPOOL_TEST_FIXTURES) + "/models/qwen2-moe-shared-f32");
  ASSERT_TRUE(src.ok());
  auto c = models::ReadModelConfig(*src);
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->layers.size(), 4u);
  // decoder_sparse_step 2: layers 1 and 3 are MoE.
  EXPECT_EQ(c->layers[0].ffn, models::FfnKind::kDense);
  EXPECT_EQ(c->layers[1].ffn, models::FfnKind::kMoe);
  EXPECT_EQ(c->layers[2].ffn, models::FfnKind::kDense);
  EXPECT_EQ(c->layers[3].ffn, models::FfnKind::kMoe);
  EXPECT_EQ(c->moe.n_ff_shared, 40);
  auto d = EditedMoe("qwen3-moe-fused-f32", "mlponly", [](auto& j) { j["mlp_only_layers"] = {0, 2}; });
  auto src2 = formats::OpenModelSource(d);
  ASSERT_TRUE(src2.ok());
  auto c2 = models::ReadModelConfig(*src2);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->layers[0].ffn, models::FfnKind::kDense);
  EXPECT_EQ(c2->layers[1].ffn, models::FfnKind::kMoe);
  EXPECT_EQ(c2->layers[2].ffn, models::FfnKind::kDense);
}

TEST(MoeMalformed, TopKAboveExpertCount) {
  auto d = EditedMoe("qwen2-moe-shared-f32", "topk", [](auto& j) { j["num_experts_per_tok"] = 9; });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "experts per token 9 must be in [1, expert count 8]");
}

TEST(MoeMalformed, ZeroTopK) {
  auto d = EditedMoe("mixtral-bf16", "topk0", [](auto& j) { j["num_experts_per_tok"] = 0; });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "experts per token 0");
}

TEST(MoeMalformed, ExpertCountBelowCheckpoint) {
  // The router has 8 rows; config.json says 6.
  auto d = EditedMoe("qwen2-moe-shared-f32", "fewer", [](auto& j) { j["num_experts"] = 6; });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "'model.layers.1.mlp.gate.weight' has shape [8, 48], expected [6, 48]");
}

TEST(MoeMalformed, ExpertCountAboveCheckpoint) {
  auto d = EditedMoe("mixtral-bf16", "more", [](auto& j) { j["num_local_experts"] = 9; });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "block_sparse_moe.gate.weight' has shape [8, 48], expected [9, 48]");
}

TEST(MoeMalformed, FusedExpertsShapeMismatch) {
  auto d = EditedMoe("qwen3-moe-fused-f32", "fusedff", [](auto& j) { j["moe_intermediate_size"] = 20; });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile,
              "'model.layers.0.mlp.experts.gate_up_proj' has shape [8, 48, 48], expected [8, 40, 48]");
}

TEST(MoeMalformed, MissingExpertTensor) {
  auto d = EditedMoe("olmoe-f32", "missing", [](auto&) {});
  RenameTensor(d, "model.layers.1.mlp.experts.3.up_proj.weight", "model.layers.1.mlp.experts.3.up_xxxx.weight");
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "missing tensor 'model.layers.1.mlp.experts.3.up_proj.weight'");
}

TEST(MoeMalformed, MissingSharedExpertSize) {
  auto d = EditedMoe("qwen2-moe-shared-f32", "noshared", [](auto& j) { j.erase("shared_expert_intermediate_size"); });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "shared_expert_intermediate_size must be positive");
}

TEST(MoeMalformed, ClipQkvIsRefused) {
  auto d = EditedMoe("olmoe-f32", "clip", [](auto& j) { j["clip_qkv"] = 8.0; });
  ExpectError(LoadStatus(d), ErrorCode::kUnsupported, "clip_qkv");
}

TEST(MoeMalformed, BadMlpOnlyLayers) {
  auto d = EditedMoe("qwen3-moe-fused-f32", "mlponlybad", [](auto& j) { j["mlp_only_layers"] = "1"; });
  ExpectError(LoadStatus(d), ErrorCode::kInvalidFile, "mlp_only_layers");
}

// GGUF mixture-of-experts files are read for qwen2moe, qwen3moe, olmoe and llama with
// experts (Mixtral's conversion): a clear refusal for the other architectures with an
// expert count.
TEST(MoeMalformed, GgufMoeIsRefused) {
  formats::testing::TempDir dir;
  for (const std::string arch : {"qwen2", "qwen3", "mistral"}) {
    formats::testing::GgufBuilder g;
    g.KvStr("general.architecture", arch).KvU32(arch + ".expert_count", 8).KvU32(arch + ".block_count", 1);
    g.Tensor("token_embd.weight", {4, 4}, /*f32*/ 0, 64);
    const std::string path = dir.File(arch + ".gguf");
    formats::testing::WriteFile(path, g.Build());
    auto src = formats::OpenModelSource(path);
    ASSERT_TRUE(src.ok()) << src.status().message();
    auto c = models::ReadModelConfig(*src);
    ASSERT_FALSE(c.ok()) << arch;
    ExpectError(c.status(), ErrorCode::kUnsupported, "GGUF mixture-of-experts models ('" + arch + "' with " + arch +
                                                         ".expert_count 8) are not supported");
  }
}

// A tiny GGUF of architecture `arch` with the hyper-parameters ReadModelConfig needs
// before it looks at the experts, plus `extra` keys and tensors.
std::string MinimalMoeGguf(formats::testing::TempDir& dir, const std::string& arch, uint32_t experts,
                           const std::function<void(formats::testing::GgufBuilder&)>& extra) {
  formats::testing::GgufBuilder g;
  g.KvStr("general.architecture", arch).KvU32(arch + ".block_count", 1).KvU32(arch + ".embedding_length", 4);
  g.KvU32(arch + ".feed_forward_length", 4).KvU32(arch + ".attention.head_count", 1);
  if (experts > 0) g.KvU32(arch + ".expert_count", experts).KvU32(arch + ".expert_used_count", 2);
  g.Tensor("token_embd.weight", {4, 4}, /*f32*/ 0, 64);
  extra(g);
  const std::string path = dir.File(arch + std::to_string(experts) + ".gguf");
  formats::testing::WriteFile(path, g.Build());
  return path;
}

Status ConfigStatus(const std::string& path) {
  auto src = formats::OpenModelSource(path);
  if (!src.ok()) return src.status();
  auto c = models::ReadModelConfig(*src);
  return c.ok() ? Status::Ok() : c.status();
}

// Older Mixtral conversions stored experts one tensor each (blk.N.ffn_gate.E.weight);
// current llama.cpp does not load them: refused, naming the tensor.
TEST(MoeMalformed, GgufPerExpertTensorsRefused) {
  formats::testing::TempDir dir;
  auto p = MinimalMoeGguf(dir, "llama", 8, [](auto& g) {
    g.Tensor("blk.0.ffn_gate_inp.weight", {4, 8}, 0, 128);
    g.Tensor("blk.0.ffn_gate.0.weight", {4, 4}, 0, 64);
  });
  ExpectError(ConfigStatus(p), ErrorCode::kUnsupported, "tensor 'blk.0.ffn_gate.0.weight': experts stored one tensor each");
}

TEST(MoeMalformed, GgufMoeArchitectureWithoutExpertCount) {
  formats::testing::TempDir dir;
  auto p = MinimalMoeGguf(dir, "olmoe", 0, [](auto&) {});
  ExpectError(ConfigStatus(p), ErrorCode::kInvalidFile, "olmoe.expert_count is missing, expected a positive expert count");
}

TEST(MoeMalformed, GgufExpertCountWithoutRouter) {
  formats::testing::TempDir dir;
  auto p = MinimalMoeGguf(dir, "llama", 8, [](auto&) {});
  ExpectError(ConfigStatus(p), ErrorCode::kInvalidFile, "no layer has a router (missing tensor 'blk.0.ffn_gate_inp.weight')");
}

TEST(MoeMalformed, GgufExpertWeightsScaleRefused) {
  formats::testing::TempDir dir;
  auto p = MinimalMoeGguf(dir, "llama", 8, [](auto& g) { g.KvF32("llama.expert_weights_scale", 2.5f); });
  ExpectError(ConfigStatus(p), ErrorCode::kUnsupported, "llama.expert_weights_scale 2.5");
}

// A copy of a GGUF fixture (path under tests/fixtures) with the u32 value of metadata
// key `key` replaced.
std::string PatchedGguf(const std::string& fixture, const std::string& key, uint32_t value) {
  const std::string src = std::string(SPOOL_TEST_FIXTURES) + "/" + (fixture.find('/') == std::string::npos ? "models/" : "") + fixture;
  const std::string dst = (fs::temp_directory_path() / ("spool_moe_" + std::to_string(getpid()) + "_" + key + ".gguf")).string();
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Key string, then its type (u32 = 4), then the value.
  const size_t at = bytes.find(key);
  EXPECT_NE(at, std::string::npos) << key;
  uint32_t type = 0;
  std::memcpy(&type, bytes.data() + at + key.size(), 4);
  EXPECT_EQ(type, 4u) << key;
  std::memcpy(bytes.data() + at + key.size() + 4, &value, 4);
  std::ofstream(dst, std::ios::binary) << bytes;
  return dst;
}

// A copy of a GGUF fixture with `edit` applied to its bytes; `at` is where `find` starts
// (the tensor-info table: name, n_dims u32, ne u64 each, type u32, offset u64).
std::string EditedGguf(const std::string& fixture, const std::string& tag,
                       const std::function<void(std::string& bytes)>& edit) {
  std::ifstream in(std::string(SPOOL_TEST_FIXTURES) + "/" + fixture, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  edit(bytes);
  const std::string dst = (fs::temp_directory_path() / ("spool_moe_" + std::to_string(getpid()) + "_" + tag + ".gguf")).string();
  std::ofstream(dst, std::ios::binary) << bytes;
  return dst;
}

// Renames tensor `from` to `to` (same length) in a GGUF's tensor-info table.
void RenameGgufTensor(std::string& bytes, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  const size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  bytes.replace(at, from.size(), to);
}

// llama.cpp's converter output (tests/fixtures/converted) made inconsistent: each error
// names the tensor or key and the numbers.
TEST(MoeMalformed, GgufConvertedExpsExpertDimDisagreesWithExpertCount) {
  // blk.1.ffn_up_exps of the converted OLMoE: ne = {48, 24, 8} → {48, 24, 4} (a smaller
  // tensor: the file stays valid, the expert dimension disagrees with olmoe.expert_count).
  auto p = EditedGguf("converted/olmoe-mha-f32.gguf", "expdim", [](std::string& b) {
    const std::string name = "blk.1.ffn_up_exps.weight";
    const size_t at = b.find(name);
    ASSERT_NE(at, std::string::npos);
    uint32_t n_dims = 0;
    std::memcpy(&n_dims, b.data() + at + name.size(), 4);
    ASSERT_EQ(n_dims, 3u);
    uint64_t ne2 = 0;
    std::memcpy(&ne2, b.data() + at + name.size() + 4 + 16, 8);
    ASSERT_EQ(ne2, 8u);
    ne2 = 4;
    std::memcpy(b.data() + at + name.size() + 4 + 16, &ne2, 8);
  });
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile, "'blk.1.ffn_up_exps.weight' has shape [4, 24, 48], expected [8, 24, 48]");
  fs::remove(p);
}

TEST(MoeMalformed, GgufConvertedTopKAboveExpertCount) {
  auto p = PatchedGguf("converted/mixtral-bf16.gguf", "llama.expert_used_count", 9);
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile, "experts per token 9 must be in [1, expert count 8]");
  fs::remove(p);
}

TEST(MoeMalformed, GgufConvertedMissingDownExps) {
  auto p = EditedGguf("converted/qwen3-moe-f32.gguf", "nodown",
                      [](std::string& b) { RenameGgufTensor(b, "blk.1.ffn_down_exps.weight", "blk.1.ffn_down_expX.weight"); });
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile,
              "missing tensor 'blk.1.ffn_down_exps.weight': layer 1 is a mixture of experts");
  fs::remove(p);
}

TEST(MoeMalformed, GgufConvertedSharedExpertWithoutGate) {
  auto p = EditedGguf("converted/qwen2-moe-all-f32.gguf", "noshgate", [](std::string& b) {
    RenameGgufTensor(b, "blk.0.ffn_gate_inp_shexp.weight", "blk.0.ffn_gate_inp_shexX.weight");
  });
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile,
              "missing tensor 'blk.0.ffn_gate_inp_shexp.weight': layer 0 is a mixture of experts (it has "
              "'blk.0.ffn_gate_inp.weight'), and its shared expert needs this gate");
  fs::remove(p);
}

// The shared expert's gate must be one row of n_embd ([1, n_embd], or a vector).
TEST(MoeMalformed, GgufConvertedShexpGateShapeMismatch) {
  auto p = EditedGguf("converted/qwen2-moe-all-f32.gguf", "shgate2", [](std::string& b) {
    // ffn_gate_inp_shexp ne = {48, 1} → {24, 1} (smaller: the file stays valid).
    const std::string name = "blk.0.ffn_gate_inp_shexp.weight";
    const size_t at = b.find(name);
    ASSERT_NE(at, std::string::npos);
    uint64_t ne0 = 24;
    std::memcpy(b.data() + at + name.size() + 4, &ne0, 8);
  });
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile, "'blk.0.ffn_gate_inp_shexp.weight' has shape [1, 24], expected [1, 48]");
  fs::remove(p);
}

TEST(MoeMalformed, GgufExpertCountMismatch) {
  auto p = PatchedGguf("qwen3-moe-fused-f32.gguf", "qwen3moe.expert_count", 6);
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile, "'blk.0.ffn_gate_inp.weight' has shape [8, 48], expected [6, 48]");
  fs::remove(p);
}

TEST(MoeMalformed, GgufTopKAboveExpertCount) {
  auto p = PatchedGguf("qwen2-moe-shared-f32.gguf", "qwen2moe.expert_used_count", 9);
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile, "experts per token 9 must be in [1, expert count 8]");
  fs::remove(p);
}

TEST(MoeMalformed, GgufExpertSizeMismatch) {
  auto p = PatchedGguf("qwen2-moe-shared-f32.gguf", "qwen2moe.expert_feed_forward_length", 20);
  ExpectError(LoadStatus(p), ErrorCode::kInvalidFile, "'blk.1.ffn_gate_exps.weight' has shape [8, 24, 48], expected [8, 20, 48]");
  fs::remove(p);
}

}  // namespace
}  // namespace spool
