// StreamingWeights: streamed execution must give bit-identical logits to fully
// resident execution (same kernels, same order; the provider only decides where the
// bytes come from), on both I/O backends, for every fixture model (HF safetensors,
// incl. a sharded one) and a GGUF model; weights are read once per step whatever the
// step's token count; read faults surface as errors and the provider recovers. MoE
// models also run with expert caches smaller than their experts (LRU evictions), whose
// counters and read errors are checked.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "kv/kv_cache.h"
#include "models/transformer.h"
#include "runtime/planner.h"
#include "runtime/resident_weights.h"
#include "runtime/streaming_weights.h"

namespace spool::runtime {
namespace {

struct ModelCase {
  std::string name, path;
};

std::vector<ModelCase> Models() {
  std::vector<ModelCase> out;
  const std::string dir = std::string(SPOOL_TEST_FIXTURES) + "/models";
  std::ifstream f(dir + "/index.json");
  const nlohmann::json index = nlohmann::json::parse(f);
  for (auto& n : index["models"]) out.push_back({n.get<std::string>(), dir + "/" + n.get<std::string>()});
  out.push_back({"stories260K_gguf", std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf"});
  // GGUF mixture of experts: experts sliced out of the 3-D ffn_*_exps tensors.
  out.push_back({"qwen2_moe_gguf", dir + "/qwen2-moe-shared-f32.gguf"});
  out.push_back({"qwen3_moe_gguf", dir + "/qwen3-moe-fused-f32.gguf"});
  // ... as llama.cpp's converter and quantiser write them (quantised experts and shared
  // expert; Mixtral as `llama` with experts; OLMoE).
  const std::string fx = SPOOL_TEST_FIXTURES;
  for (const char* f : {"mixtral-bf16", "olmoe-mha-f32", "qwen2-moe-all-f32"})
    out.push_back({std::string(f) + "_converted_gguf", fx + "/converted/" + f + ".gguf"});
  for (const char* f : {"qwen2moe-h64-q4_0", "qwen2moe-h64-q4_1", "qwen2moe-h64-q5_0", "qwen2moe-h64-q5_1",
                        "qwen2moe-h64-q8_0", "qwen3moe-h256-q4_k", "qwen3moe-h256-q5_k", "qwen3moe-h256-q6_k"})
    out.push_back({std::string(f) + "_gguf", fx + "/moe_quant/" + f + ".gguf"});
  // gpt-oss: MXFP4 experts in OpenAI's split layout (4 extents per expert: blocks and
  // scales of gate_up and down) and in GGUF blocks; sinks, biases, sliding layers.
  out.push_back({"gptoss_hf_mxfp4", fx + "/gptoss/gptoss-h64-mxfp4"});
  out.push_back({"gptoss_gguf_mxfp4", fx + "/gptoss/gptoss-h64-mxfp4.gguf"});
  // Qwen3-Next as llama.cpp's converter writes it: split attn_qkv + attn_gate projections.
  out.push_back({"qwen3next_gguf", fx + "/qwen3next/qwen3next-h64.gguf"});
  return out;
}

// nullptr (and a test failure) when the model cannot be loaded.
std::unique_ptr<models::ModelWeights> LoadWeights(const std::string& path) {
  auto src = formats::OpenModelSource(path);
  EXPECT_TRUE(src.ok()) << src.status().message();
  if (!src.ok()) return nullptr;
  auto w = models::ModelWeights::Load(std::move(*src));
  EXPECT_TRUE(w.ok()) << w.status().message();
  if (!w.ok()) return nullptr;
  return std::move(*w);
}

int64_t TotalExperts(const models::ModelWeights& w) { return w.n_moe_layers() * w.config().moe.n_expert; }

// A plan with the given resident groups (the rest streamed through `depth` slots) and
// an expert cache of `expert_slots` (< 0: every expert, read at open).
ResidencyPlan MakePlan(const models::ModelWeights& w, std::vector<bool> resident, int depth, int64_t expert_slots = -1) {
  ResidencyPlan p;
  p.n_experts_total = TotalExperts(w);
  p.expert_slot_bytes = w.max_expert_bytes();
  p.expert_cache_slots = expert_slots < 0 ? p.n_experts_total : expert_slots;
  p.expert_min_slots = w.config().moe.n_expert_used;
  p.resident = std::move(resident);
  for (int g = 0; g < w.n_groups(); ++g) {
    if (p.resident[g]) continue;
    ++p.n_streamed;
    p.ring_slot_bytes = std::max(p.ring_slot_bytes, w.group(g).bytes);
    p.streamed_bytes_per_step += GroupReadBytes(w, g);
  }
  p.ring_slots = std::min(depth, p.n_streamed);
  return p;
}

std::vector<int32_t> Prompt(int64_t n_vocab, int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 11) % n_vocab));
  return ids;
}

// A prompt prefilled in chunks (all logits), then greedy decode steps; every logit of
// every step, concatenated.
Result<std::vector<float>> RunSteps(const models::ModelWeights& w, models::WeightProvider& provider, ThreadPool& pool,
                                    int n_prompt, int chunk, int n_decode) {
  const auto& c = w.config();
  models::Transformer t(w, pool);
  kv::InRamKv kv(kv::KvLayout{c.n_kv_layers(), c.n_head_kv, c.head_dim, 16, DType::kF32});
  // Linear-attention layers (Qwen3-Next) keep a recurrent state beside the KV.
  std::unique_ptr<kv::RecurrentState> state;
  if (c.has_linear()) state = std::make_unique<kv::RecurrentState>(models::RecurrentLayoutOf(c));
  const auto prompt = Prompt(c.n_vocab, n_prompt);
  std::vector<float> all;
  for (int done = 0; done < n_prompt; done += chunk) {
    const int m = std::min(chunk, n_prompt - done);
    models::SeqStep s{.kv = &kv, .tokens = std::span<const int32_t>(prompt.data() + done, m), .all_logits = true, .state = state.get()};
    std::vector<float> logits(static_cast<size_t>(m) * c.n_vocab);
    SPOOL_TRY(t.Forward(std::span<const models::SeqStep>(&s, 1), provider, logits.data()));
    all.insert(all.end(), logits.begin(), logits.end());
  }
  for (int i = 0; i < n_decode; ++i) {
    const float* last = all.data() + all.size() - c.n_vocab;
    int32_t next = static_cast<int32_t>(std::max_element(last, last + c.n_vocab) - last);
    models::SeqStep s{.kv = &kv, .tokens = std::span<const int32_t>(&next, 1), .state = state.get()};
    std::vector<float> logits(c.n_vocab);
    SPOOL_TRY(t.Forward(std::span<const models::SeqStep>(&s, 1), provider, logits.data()));
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

StreamingOptions Backend(storage::IoBackend b) {
  StreamingOptions o;
  o.reader.backend = b;
  return o;
}

class StreamingParity : public ::testing::TestWithParam<std::tuple<ModelCase, storage::IoBackend>> {};

TEST_P(StreamingParity, BitIdenticalToResident) {
  const auto& [mc, backend] = GetParam();
  auto w = LoadWeights(mc.path);
  ASSERT_TRUE(w);
  ThreadPool pool(2);
  auto resident = ResidentWeights::Load(*w);
  ASSERT_TRUE(resident.ok()) << resident.status().message();
  auto ref = RunSteps(*w, **resident, pool, 11, 4, 5);
  ASSERT_TRUE(ref.ok()) << ref.status().message();

  const int n = w->n_groups();
  struct Case {
    const char* name;
    std::vector<bool> resident;
    int depth;
    int64_t expert_slots = -1;
  };
  std::vector<Case> cases = {
      {"all streamed, depth 2", std::vector<bool>(n, false), 2},
      {"all streamed, depth 3", std::vector<bool>(n, false), 3},
      {"head resident only", std::vector<bool>(n, false), 2},
      {"every other group resident", std::vector<bool>(n, false), 2},
  };
  cases[2].resident[w->head_group()] = true;
  for (int g = 0; g < n; g += 2) cases[3].resident[g] = true;
  if (w->config().has_moe()) {
    // Expert caches smaller than the experts: the smallest one (one token's experts of
    // a layer; prefill blocks need more, in waves) and half of them.
    const int64_t k = w->config().moe.n_expert_used;
    cases.push_back({"all streamed, smallest expert cache", std::vector<bool>(n, false), 2, k});
    cases.push_back({"every other group resident, half the experts cached", cases[3].resident, 2, TotalExperts(*w) / 2});
    cases.push_back({"groups resident, smallest expert cache", std::vector<bool>(n, true), 2, k});
  }
  for (auto& c : cases) {
    ResidencyPlan plan = MakePlan(*w, c.resident, c.depth, c.expert_slots);
    auto s = StreamingWeights::Open(*w, plan, Backend(backend));
    ASSERT_TRUE(s.ok()) << s.status().message();
    EXPECT_EQ((*s)->reader().backend(), backend);
    auto got = RunSteps(*w, **s, pool, 11, 4, 5);
    ASSERT_TRUE(got.ok()) << c.name << ": " << got.status().message();
    EXPECT_TRUE(BitEqual(*ref, *got)) << mc.name << ", " << c.name << ": streamed logits differ from resident";
  }
}

std::string ParamName(const ::testing::TestParamInfo<StreamingParity::ParamType>& info) {
  std::string n = std::get<0>(info.param).name + "_" + storage::IoBackendName(std::get<1>(info.param));
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Models, StreamingParity,
                         ::testing::Combine(::testing::ValuesIn(Models()),
                                            ::testing::Values(storage::IoBackend::kIoUring, storage::IoBackend::kPread)),
                         ParamName);

// Layer-major prefill: each streamed group is read once per step (chunk), not once per
// token. 3 chunks of 8 tokens + 2 decode steps = 5 steps.
TEST(StreamingCounters, EachGroupReadOncePerStep) {
  auto w = LoadWeights(std::string(SPOOL_TEST_FIXTURES) + "/models/llama3-scaled-sharded-bf16");
  ASSERT_TRUE(w);
  ThreadPool pool(2);
  ResidencyPlan plan = MakePlan(*w, std::vector<bool>(w->n_groups(), false), 2);
  auto s = StreamingWeights::Open(*w, plan);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE(RunSteps(*w, **s, pool, 24, 8, 2).ok());
  const uint64_t steps = 5;
  EXPECT_EQ((*s)->stats().groups_streamed, steps * w->n_groups());
  uint64_t per_step = 0;
  for (int g = 0; g < w->n_groups(); ++g) per_step += GroupReadBytes(*w, g);
  EXPECT_EQ(per_step, plan.streamed_bytes_per_step);
  EXPECT_EQ((*s)->stats().streamed_bytes, steps * per_step);
  // The embedding table is not in RAM (untied, not resident): only the rows of the 26
  // tokens were read.
  ASSERT_FALSE(w->config().tied_embeddings);
  EXPECT_GT((*s)->stats().embedding_bytes, 0u);
  EXPECT_LE((*s)->stats().embedding_bytes, 26u * (w->token_embd().row_bytes() + 2 * 4096));
}

// A copy of stories260K.gguf in the build tree (a disk filesystem: O_DIRECT applies).
class ModelCopy {
 public:
  ModelCopy() {
    path_ = std::filesystem::current_path().string() + "/streaming-test-" + std::to_string(getpid()) + ".gguf";
    std::filesystem::copy_file(std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf", path_,
                               std::filesystem::copy_options::overwrite_existing);
  }
  ~ModelCopy() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(StreamingFaults, InjectedReadErrorIsReportedAndRecovered) {
  for (auto backend : {storage::IoBackend::kIoUring, storage::IoBackend::kPread}) {
    auto w = LoadWeights(std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf");
    ASSERT_TRUE(w);
    ThreadPool pool(2);
    auto resident = ResidentWeights::Load(*w);
    ASSERT_TRUE(resident.ok());
    auto ref = RunSteps(*w, **resident, pool, 6, 3, 2);
    ASSERT_TRUE(ref.ok());
    auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), false), 2), Backend(backend));
    ASSERT_TRUE(s.ok()) << s.status().message();
    // Fail every read of layer 2's first matrix.
    const auto* m = w->group(2).matrices[0];
    const uint64_t a = m->info->offset / 4096 * 4096, end = m->info->offset + m->info->nbytes;
    (*s)->reader().SetFaultInjector([&](uint32_t, uint64_t off) { return off >= a && off < end ? EIO : 0; });
    auto bad = RunSteps(*w, **s, pool, 6, 3, 2);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), ErrorCode::kIo);
    EXPECT_NE(bad.status().message().find("layer 2"), std::string::npos) << bad.status().message();
    EXPECT_NE(bad.status().message().find("EIO"), std::string::npos) << bad.status().message();
    // The fault goes away: the same provider recovers and gives the same logits.
    (*s)->reader().SetFaultInjector(nullptr);
    auto good = RunSteps(*w, **s, pool, 6, 3, 2);
    ASSERT_TRUE(good.ok()) << good.status().message();
    EXPECT_TRUE(BitEqual(*ref, *good));
  }
}

TEST(StreamingFaults, FileTruncatedBetweenStepsIsAnError) {
  ModelCopy copy;
  auto w = LoadWeights(copy.path());
  ASSERT_TRUE(w);
  ThreadPool pool(2);
  auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), false), 2));
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE(RunSteps(*w, **s, pool, 3, 3, 0).ok());
  // Cut the file in the middle of the last layer: the next steps cannot read it.
  const auto* m = w->group(w->head_group() - 1).matrices.back();
  ASSERT_EQ(::truncate(copy.path().c_str(), static_cast<off_t>(m->info->offset + m->info->nbytes / 2)), 0);
  auto r = RunSteps(*w, **s, pool, 3, 3, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIo);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(copy.path()), std::string::npos) << r.status().message();
  // And again (the ring restarts cleanly after a failed step, no hang).
  auto r2 = RunSteps(*w, **s, pool, 3, 3, 1);
  EXPECT_FALSE(r2.ok());
}

TEST(StreamingFaults, FileReplacedAfterOpenKeepsReadingTheOpenFile) {
  ModelCopy copy;
  auto w = LoadWeights(copy.path());
  ASSERT_TRUE(w);
  ThreadPool pool(2);
  auto resident = ResidentWeights::Load(*w);
  ASSERT_TRUE(resident.ok());
  auto ref = RunSteps(*w, **resident, pool, 5, 5, 3);
  ASSERT_TRUE(ref.ok());
  auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), false), 2));
  ASSERT_TRUE(s.ok()) << s.status().message();
  // Rename garbage over the path: the open descriptors still name the original inode.
  const std::string junk = copy.path() + ".junk";
  {
    std::ofstream f(junk, std::ios::binary);
    std::string zeros(std::filesystem::file_size(copy.path()), '\x7f');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  std::filesystem::rename(junk, copy.path());
  auto got = RunSteps(*w, **s, pool, 5, 5, 3);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_TRUE(BitEqual(*ref, *got));
}

}  // namespace
}  // namespace spool::runtime

namespace spool::runtime {
namespace {

const std::string kMoeFixture = std::string(SPOOL_TEST_FIXTURES) + "/models/qwen3-moe-fused-f32";

// One token, then the same token again on a fresh KV cache: the first run reads every
// expert it routes to (all misses), the second finds them all in the cache.
TEST(ExpertCache, RepeatedTokenHitsAndCountersAddUp) {
  auto w = LoadWeights(kMoeFixture);
  ASSERT_TRUE(w);
  ThreadPool pool(2);
  const auto& c = w->config();
  const uint64_t lookups = static_cast<uint64_t>(w->n_moe_layers() * c.moe.n_expert_used);
  auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), true), 2, TotalExperts(*w) - 1));
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto first = RunSteps(*w, **s, pool, 1, 1, 0);
  ASSERT_TRUE(first.ok()) << first.status().message();
  StreamStats a = (*s)->stats();
  EXPECT_EQ(a.expert_misses, lookups);
  EXPECT_EQ(a.expert_hits, 0u);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int64_t l = 0; l < c.n_layer; ++l)
    for (int64_t e = 0; e < c.moe.n_expert && c.layers[l].ffn == models::FfnKind::kMoe; ++e) {
      lo = std::min(lo, ExpertReadBytes(*w, l, e));
      hi = std::max(hi, ExpertReadBytes(*w, l, e));
    }
  EXPECT_GE(a.expert_bytes, lookups * lo - 4096);  // the file's last tensor: its read ends at EOF
  EXPECT_LE(a.expert_bytes, lookups * hi);
  EXPECT_EQ(a.streamed_bytes, 0u);  // every dense group resident
  auto second = RunSteps(*w, **s, pool, 1, 1, 0);
  ASSERT_TRUE(second.ok()) << second.status().message();
  StreamStats b = (*s)->stats();
  EXPECT_EQ(b.expert_misses, lookups);
  EXPECT_EQ(b.expert_hits, lookups);
  EXPECT_EQ(b.expert_bytes, a.expert_bytes);
  EXPECT_TRUE(BitEqual(*first, *second));

  // A cache of every expert reads them at open and never again.
  auto all = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), false), 2));
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_TRUE(RunSteps(*w, **all, pool, 9, 4, 3).ok());
  EXPECT_EQ((*all)->stats().expert_misses, 0u);
  EXPECT_EQ((*all)->stats().expert_bytes, 0u);
  EXPECT_GT((*all)->stats().expert_hits, 0u);
}

// Both eviction policies give resident-identical logits with caches too small for the
// experts (the policy only changes which bytes are re-read).
TEST(ExpertCache, EvictionPoliciesAreBitIdenticalToResident) {
  for (const char* f : {"qwen3-moe-fused-f32", "olmoe-f32"}) {
    auto w = LoadWeights(std::string(SPOOL_TEST_FIXTURES) + "/models/" + f);
    ASSERT_TRUE(w);
    ThreadPool pool(2);
    auto resident = ResidentWeights::Load(*w);
    ASSERT_TRUE(resident.ok());
    auto ref = RunSteps(*w, **resident, pool, 13, 5, 6);
    ASSERT_TRUE(ref.ok());
    for (auto ev : {ExpertEviction::kLru, ExpertEviction::kFrequency})
      for (int64_t slots : {w->config().moe.n_expert_used, TotalExperts(*w) / 3}) {
        StreamingOptions o;
        o.expert_eviction = ev;
        auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), true), 2, slots), o);
        ASSERT_TRUE(s.ok()) << s.status().message();
        auto got = RunSteps(*w, **s, pool, 13, 5, 6);
        ASSERT_TRUE(got.ok()) << got.status().message();
        EXPECT_TRUE(BitEqual(*ref, *got)) << f << " slots " << slots;
        EXPECT_GT((*s)->stats().expert_misses, 0u);
      }
  }
}

TEST(ExpertCache, PlanBelowOneTokensExpertsIsRefused) {
  auto w = LoadWeights(kMoeFixture);
  ASSERT_TRUE(w);
  auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), true), 2,
                                               w->config().moe.n_expert_used - 1));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cannot hold one token's 2 routed experts"), std::string::npos)
      << s.status().message();
}

// A failed expert read is returned by the step (naming the expert, its layer and the
// errno), the slot is not left holding garbage, and the same provider recovers.
TEST(ExpertCache, InjectedExpertReadErrorIsReportedAndRecovered) {
  auto w = LoadWeights(kMoeFixture);
  ASSERT_TRUE(w);
  ThreadPool pool(2);
  auto resident = ResidentWeights::Load(*w);
  ASSERT_TRUE(resident.ok());
  auto ref = RunSteps(*w, **resident, pool, 6, 3, 2);
  ASSERT_TRUE(ref.ok());
  const auto& c = w->config();
  for (auto backend : {storage::IoBackend::kIoUring, storage::IoBackend::kPread}) {
    auto s = StreamingWeights::Open(*w, MakePlan(*w, std::vector<bool>(w->n_groups(), false), 2, c.moe.n_expert_used),
                                    Backend(backend));
    ASSERT_TRUE(s.ok()) << s.status().message();
    // Fail the reads that start an expert extent of the last MoE layer (not those of
    // dense groups).
    int64_t L = c.n_layer - 1;
    while (c.layers[L].ffn != models::FfnKind::kMoe) --L;
    std::set<uint64_t> dense, bad_offsets;
    for (int g = 0; g < w->n_groups(); ++g)
      for (const auto* m : w->group(g).matrices) dense.insert(m->info->offset / 4096 * 4096);
    for (int64_t e = 0; e < c.moe.n_expert; ++e)
      for (const auto& x : w->expert(L, e).extents)
        if (!dense.count(x.offset / 4096 * 4096)) bad_offsets.insert(x.offset / 4096 * 4096);
    ASSERT_FALSE(bad_offsets.empty());
    (*s)->reader().SetFaultInjector([&](uint32_t, uint64_t off) { return bad_offsets.count(off) ? EIO : 0; });
    auto bad = RunSteps(*w, **s, pool, 6, 3, 2);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), ErrorCode::kIo);
    EXPECT_NE(bad.status().message().find("of layer " + std::to_string(L)), std::string::npos) << bad.status().message();
    EXPECT_NE(bad.status().message().find("reading expert"), std::string::npos) << bad.status().message();
    EXPECT_NE(bad.status().message().find("EIO"), std::string::npos) << bad.status().message();
    (*s)->reader().SetFaultInjector(nullptr);
    auto good = RunSteps(*w, **s, pool, 6, 3, 2);
    ASSERT_TRUE(good.ok()) << good.status().message();
    EXPECT_TRUE(BitEqual(*ref, *good));
  }
}

}  // namespace
}  // namespace spool::runtime
