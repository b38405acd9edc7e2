// The residency planner: plans never exceed the budget, residency grows with the
// budget, the order of preference is the documented one, and a budget too small for
// even one group + the ring is a clear ResourceExhausted error.
#include <gtest/gtest.h>

#include <cstdlib>

#include "kv/disk_kv.h"
#include "runtime/engine.h"
#include "runtime/planner.h"

namespace spool::runtime {
namespace {

std::unique_ptr<models::ModelWeights> Load(const std::string& path) {
  auto src = formats::OpenModelSource(path);
  SPOOL_CHECK_MSG(src.ok(), src.status().message().c_str());
  auto w = models::ModelWeights::Load(std::move(*src));
  SPOOL_CHECK_MSG(w.ok(), w.status().message().c_str());
  return std::move(*w);
}

PlannerOptions Opts(uint64_t budget) {
  PlannerOptions o;
  o.budget_bytes = budget;
  o.baseline_bytes = 10 << 20;  // fixed, so plans do not depend on this process's RSS
  o.ctx = 256;
  o.prefill_chunk = 64;
  o.threads = 2;
  return o;
}

const std::string kSharded = std::string(SPOOL_TEST_FIXTURES) + "/models/llama3-scaled-sharded-bf16";
const std::string kUntied = std::string(SPOOL_TEST_FIXTURES) + "/models/llama-mha-f32";

TEST(Planner, EverythingResidentWhenItFits) {
  auto w = Load(kUntied);
  auto p = PlanResidency(*w, Opts(8ull << 30));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->all_resident());
  EXPECT_TRUE(p->embedding_resident);
  EXPECT_EQ(p->ring_slots, 0);
  EXPECT_EQ(p->streamed_bytes_per_step, 0u);
  EXPECT_LE(p->planned_bytes(), p->budget_bytes);
}

TEST(Planner, BudgetSweepNeverExceedsBudgetAndResidencyGrows) {
  for (const std::string& path : {kSharded, kUntied}) {
    auto w = Load(path);
    auto all = PlanResidency(*w, Opts(8ull << 30));
    ASSERT_TRUE(all.ok());
    const uint64_t floor = all->fixed_bytes() + all->kv_bytes;
    const uint64_t top = floor + w->total_matrix_bytes() + (64 << 10) * 4;
    int feasible = 0, streaming = 0;
    uint64_t last_resident = 0;
    for (uint64_t b = floor; b <= top; b += 512) {
      auto p = PlanResidency(*w, Opts(b));
      if (!p.ok()) {
        EXPECT_EQ(p.status().code(), ErrorCode::kResourceExhausted) << p.status().message();
        EXPECT_EQ(feasible, 0) << "a larger budget failed after a smaller one succeeded, at " << b;
        continue;
      }
      ++feasible;
      EXPECT_LE(p->planned_bytes(), b) << path << " budget " << b;
      EXPECT_GE(p->resident_bytes, last_resident) << path << " budget " << b;
      last_resident = p->resident_bytes;
      if (!p->all_resident()) {
        ++streaming;
        EXPECT_GE(p->ring_slots, 1);
        uint64_t largest_streamed = 0;
        for (int g = 0; g < w->n_groups(); ++g)
          if (!p->resident[g]) largest_streamed = std::max(largest_streamed, w->group(g).bytes);
        EXPECT_EQ(p->ring_slot_bytes, largest_streamed);
        EXPECT_GT(p->streamed_bytes_per_step, 0u);
      }
    }
    EXPECT_GT(feasible, 0);
    EXPECT_GT(streaming, 10) << path << ": the sweep should cover plans that stream";
    EXPECT_TRUE(PlanResidency(*w, Opts(top))->all_resident());
  }
}

// --prefill-chunk auto (issue 18 item 4): at every budget of a sweep the auto plan keeps
// exactly the 512-row plan's residency, stays within the budget, chooses a candidate
// no larger than the context, and no larger candidate would keep that residency.
TEST(Planner, AutoPrefillChunkOnlyUsesBudgetLeftOver) {
  for (const std::string& path : {kSharded, kUntied}) {
    auto w = Load(path);
    PlannerOptions fixed = Opts(8ull << 30);
    fixed.ctx = 8192;
    fixed.prefill_chunk = 512;
    auto all = PlanResidency(*w, fixed);
    ASSERT_TRUE(all.ok()) << all.status().message();
    const uint64_t floor = all->fixed_bytes() + all->kv_bytes;
    int grew = 0;
    for (uint64_t b = floor; b <= floor + w->total_matrix_bytes() + (64ull << 20); b += 256 << 10) {
      fixed.budget_bytes = b;
      PlannerOptions autoo = fixed;
      autoo.prefill_chunk = 0;
      auto f = PlanResidency(*w, fixed);
      auto a = PlanResidency(*w, autoo);
      ASSERT_EQ(f.ok(), a.ok()) << b;
      if (!f.ok()) continue;
      EXPECT_TRUE(a->prefill_chunk_auto);
      EXPECT_FALSE(f->prefill_chunk_auto);
      EXPECT_EQ(f->prefill_chunk, 512);
      EXPECT_EQ(a->prefill_chunk, a->prefill_rows);
      EXPECT_LE(a->planned_bytes(), b);
      EXPECT_EQ(a->resident, f->resident) << b;
      EXPECT_EQ(a->expert_cache_slots, f->expert_cache_slots) << b;
      if (a->prefill_chunk > 512) ++grew;
      if (a->prefill_chunk < 4096) {
        PlannerOptions bigger = fixed;
        bigger.prefill_chunk = a->prefill_chunk * 2;
        auto g = PlanResidency(*w, bigger);
        EXPECT_TRUE(!g.ok() || g->resident != f->resident) << b << ": " << bigger.prefill_chunk << " would have fit";
      }
    }
    EXPECT_GT(grew, 0) << path << ": a roomy budget should choose a larger chunk";
    PlannerOptions small = Opts(8ull << 30);
    small.ctx = 1024;
    small.prefill_chunk = 0;
    EXPECT_EQ(PlanResidency(*w, small)->prefill_chunk, 1024);
  }
}

TEST(Planner, ResidentLayersAreSpreadAndHeadPreferred) {
  auto w = Load(kSharded);
  const int L = w->head_group();
  ASSERT_GE(L, 2);
  auto all = PlanResidency(*w, Opts(8ull << 30));
  ASSERT_TRUE(all.ok());
  uint64_t layer = w->group(0).bytes, head = w->group(L).bytes;
  const uint64_t row_scratch = (w->token_embd().row_bytes() + 4095) / 4096 * 4096 + 4096;
  // Room for the head, a 2-slot ring of layers and exactly one resident layer.
  const uint64_t b = all->fixed_bytes() + all->kv_bytes + row_scratch + 2 * layer + head + layer;
  auto p = PlanResidency(*w, Opts(b));
  ASSERT_TRUE(p.ok()) << p.status().message();
  if (head >= layer) {
    EXPECT_TRUE(p->resident[L]) << "the head should be resident first";
    int n_res = 0;
    for (int l = 0; l < L; ++l) n_res += p->resident[l];
    EXPECT_EQ(n_res, 1);
  }
}

TEST(Planner, TooSmallBudgetIsAClearError) {
  auto w = Load(kSharded);
  auto p = PlanResidency(*w, Opts(1 << 20));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), ErrorCode::kResourceExhausted);
  const std::string& m = p.status().message();
  EXPECT_NE(m.find("too small"), std::string::npos) << m;
  EXPECT_NE(m.find("streaming ring"), std::string::npos) << m;
  EXPECT_NE(m.find("activations"), std::string::npos) << m;
}

TEST(Planner, EngineRejectsTooSmallBudget) {
  EngineOptions o;
  o.load_tokenizer = false;
  o.threads = 2;
  o.mem_budget = 1 << 20;
  auto e = Engine::Open(kSharded, o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(e.status().message().find("--mem-budget"), std::string::npos) << e.status().message();
}

// The KV term is what Engine::NewSequence creates: a DiskKv's page buffers (hot window
// + read-ahead ring) when ctx > kv_window, the whole context in RAM otherwise.
TEST(Planner, KvTermMatchesTheStoreTheEngineCreates) {
  auto w = Load(kSharded);
  const auto& c = w->config();
  for (DType dt : {DType::kBF16, DType::kF32}) {
    for (int64_t window : {1, 16, 100, 256}) {
      kv::KvLayout layout{c.n_layer, c.n_head_kv, c.head_dim, 16, dt};
      kv::DiskKvOptions d;
      d.window_tokens = window;
      d.max_tokens = 512;
      d.dir = "/nonexistent";  // no I/O happens before the first spill
      kv::DiskKv disk(layout, d);
      EXPECT_EQ(EstimateSequenceKvBytes(c, 512, window, 16, dt), disk.max_ram_bytes()) << window;
    }
    EXPECT_EQ(EstimateSequenceKvBytes(c, 512, 0, 16, dt), EstimateKvBytes(c, 512, 16, dt));
    EXPECT_EQ(EstimateSequenceKvBytes(c, 512, 512, 16, dt), EstimateKvBytes(c, 512, 16, dt));
  }
  auto o = Opts(1ull << 30);
  o.ctx = 4096;
  o.n_seq = 3;
  o.kv_window_tokens = 256;
  auto p = PlanResidency(*w, o);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->kv_on_disk);
  EXPECT_EQ(p->kv_bytes, 3 * EstimateSequenceKvBytes(w->config(), 4096, 256, o.kv_page_tokens, o.kv_dtype));
  // (For this tiny model the disk store's 8 MiB read-ahead ring outweighs the whole
  // context; tests/py/test_plan_cli.py shows the window freeing budget on SmolLM2.)
}

// Sliding-window layers count as their window (InRamKv releases what falls out): the
// Gemma 3 fixture's 5 sliding layers (window 4) hold at most ceil((4 - 1 + chunk) / page)
// + 1 pages each, its global layer the whole context; the plan text says so.
TEST(Planner, SlidingLayersCountAsTheirWindow) {
  auto w = Load(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16");
  const auto& c = w->config();
  const uint64_t page = 16ull * c.kv_dim() * 2 * 2;  // bf16 K and V of one 16-token page
  EXPECT_EQ(EstimateKvBytes(c, 256, 16, DType::kBF16, 64), page * (16 + 5 * ((3 + 64 + 15) / 16 + 1)));
  EXPECT_EQ(EstimateKvBytes(c, 256, 16, DType::kBF16, 1), page * (16 + 5 * 2));
  EXPECT_EQ(EstimateKvBytes(c, 8, 16, DType::kBF16, 1), page * 6);  // context shorter than a page
  EXPECT_EQ(SlidingWindows(c), (std::vector<int64_t>{4, 4, 4, 4, 4, 0}));
  auto o = Opts(1ull << 30);
  auto p = PlanResidency(*w, o);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kv_bytes, EstimateKvBytes(c, o.ctx, o.kv_page_tokens, o.kv_dtype, o.prefill_chunk));
  const std::string text = FormatPlan(*w, *p);
  EXPECT_NE(text.find("5 of 6 layers slide over 4 tokens"), std::string::npos) << text;
  EXPECT_EQ(p->kv_disk_bytes, 0u);
}

// A window not shorter than the context is accepted as full attention (transformers and
// llama.cpp do the same; the kernel's equality is tests/tensor/attention_test.cc): the
// engine opens, runs, and the plan says so.
TEST(Planner, WindowLongerThanTheContextIsFullAttentionAndSaidSo) {
  const std::string model = std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16";
  auto w = Load(model);
  EXPECT_EQ(SlidingWindowNote(w->config(), 64), "");
  const std::string note = SlidingWindowNote(w->config(), 4);
  EXPECT_NE(note.find("5 layers (4 tokens) is not shorter than the context (4)"), std::string::npos) << note;
  EngineOptions o;
  o.load_tokenizer = false;
  o.threads = 2;
  o.ctx = 3;
  auto e = Engine::Open(model, o);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_NE(FormatPlan((*e)->weights(), (*e)->plan()).find("attend to every position"), std::string::npos);
  auto seq = (*e)->NewSequence();
  std::vector<float> logits(3 * (*e)->n_vocab());
  EXPECT_TRUE((*e)->Prefill(*seq, std::vector<int32_t>{2, 7, 9}, logits.data(), /*all_logits=*/true).ok());
}

// Disk bytes: a DiskKv at the full context spills every page before its hot window; a
// sliding layer only the live pages that are not hot. Checked against a DiskKv fed the
// whole context in steps of the chunk (its high-water mark).
TEST(Planner, KvDiskBytesMatchTheDiskStore) {
  auto w = Load(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16");
  const auto& c = w->config();
  const int64_t ctx = 256, pt = 4, chunk = 8;
  for (int64_t window : {4, 16}) {
    kv::KvLayout layout{c.n_layer, c.n_head_kv, c.head_dim, pt, DType::kBF16, SlidingWindows(c)};
    kv::DiskKvOptions d;
    d.window_tokens = window;
    d.max_tokens = ctx;
    d.dir = ::testing::TempDir() + "/planner-kv-disk";
    kv::DiskKv disk(layout, d);
    std::vector<float> rows(chunk * c.kv_dim(), 0.25f);
    uint64_t peak = 0;
    while (disk.n_tokens() < ctx) {
      for (int64_t l = 0; l < c.n_layer; ++l) ASSERT_TRUE(disk.Write(l, disk.n_tokens(), chunk, rows.data(), rows.data()).ok());
      peak = std::max(peak, disk.disk_bytes());  // before the commit releases anything
      ASSERT_TRUE(disk.Commit(chunk).ok());
    }
    const uint64_t est = EstimateSequenceKvDiskBytes(c, ctx, window, pt, DType::kBF16, chunk);
    // An upper bound, at most one page per sliding layer above what the store reached
    // (a step's pages need not straddle the window's first page).
    EXPECT_GE(est, peak) << window;
    EXPECT_LE(est, peak + 5 * 2 * disk.slot_bytes()) << window;
    // Without the sliding layers' release the file would hold every layer's context.
    EXPECT_LT(est, static_cast<uint64_t>(c.n_layer * (ctx / pt - (window + pt - 1) / pt)) * 2 * disk.slot_bytes());
  }
  EXPECT_EQ(EstimateSequenceKvDiskBytes(c, ctx, 0, pt, DType::kBF16, chunk), 0u);
  auto o = Opts(1ull << 30);
  o.ctx = 256;
  o.kv_window_tokens = 16;
  o.n_seq = 2;
  auto p = PlanResidency(*w, o);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->kv_disk_bytes,
            2 * EstimateSequenceKvDiskBytes(c, 256, 16, o.kv_page_tokens, o.kv_dtype, o.prefill_chunk));
  const std::string text = FormatPlan(*w, *p);
  EXPECT_NE(text.find("KV on disk"), std::string::npos) << text;
  EXPECT_NE(text.find("5 of 6 layers slide over 4 tokens"), std::string::npos) << text;
  EXPECT_EQ(PlanToJson(*w, *p)["kv_disk_bytes"], p->kv_disk_bytes);
}

// Engine options reach the planner through one function; Engine::Plan (show --plan)
// and Engine::Open plan the same.
TEST(Planner, EnginePlanEqualsOpenPlan) {
  EngineOptions o;
  o.load_tokenizer = false;
  o.threads = 2;
  o.ctx = 512;
  o.kv_window = 64;
  o.max_sequences = 2;
  o.max_step_rows = 96;
  o.prefill_chunk = 32;
  o.mem_budget = 1ull << 30;
  const PlannerOptions po = PlannerOptionsFor(o, 512, 2);
  EXPECT_EQ(po.kv_window_tokens, 64);
  EXPECT_EQ(po.n_seq, 2);
  EXPECT_EQ(po.prefill_chunk, 96);
  ::setenv("SPOOL_TEST_PLAN_BASELINE", "20971520", 1);
  auto plan = Engine::Plan(kSharded, o);
  auto e = Engine::Open(kSharded, o);
  ::unsetenv("SPOOL_TEST_PLAN_BASELINE");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(PlanToJson(*plan->weights, plan->plan), PlanToJson((*e)->weights(), (*e)->plan()));
  EXPECT_EQ(plan->plan.baseline_bytes, 20u << 20);
  EXPECT_EQ(plan->plan.n_seq, 2);
  EXPECT_EQ(plan->ctx, 512);
}

// The disk probe's two buffers fit in the ring's share of the plan.
TEST(Planner, DiskProbeFitsInTheRing) {
  auto w = Load(kSharded);
  auto all = PlanResidency(*w, Opts(8ull << 30));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(DiskProbeBatchBytes(*all), 0u);
  const uint64_t floor = all->fixed_bytes() + all->kv_bytes;
  int streaming = 0;
  for (uint64_t b = floor; b <= floor + w->total_matrix_bytes(); b += 4096) {
    auto p = PlanResidency(*w, Opts(b));
    if (!p.ok() || p->all_resident()) continue;
    ++streaming;
    EXPECT_GT(DiskProbeBatchBytes(*p), 0u);
    EXPECT_LE(2 * DiskProbeBatchBytes(*p), std::max<uint64_t>(p->ring_bytes(), 2 * 4096));
  }
  EXPECT_GT(streaming, 0);
  auto bw = MeasureDiskBandwidth(w->source(), 1 << 20, 64 << 10);
  ASSERT_TRUE(bw.ok()) << bw.status().message();
  EXPECT_GT(*bw, 0);
}

TEST(Planner, BadOptions) {
  auto w = Load(kSharded);
  auto o = Opts(1ull << 30);
  o.prefetch_depth = 1;
  EXPECT_EQ(PlanResidency(*w, o).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace spool::runtime

namespace spool::runtime {
namespace {

// MoE: the dense parts are placed as for any model, the rest of the budget is an expert
// cache of at least one token's experts of a layer; below that the budget is refused,
// naming the expert cache; with room for everything every expert is held.
TEST(Planner, MoeExpertCacheTakesTheRestOfTheBudget) {
  auto w = Load(std::string(SPOOL_TEST_FIXTURES) + "/models/qwen3-moe-fused-f32");
  const auto& c = w->config();
  const int64_t total = w->n_moe_layers() * c.moe.n_expert;
  auto all = PlanResidency(*w, Opts(1ull << 32));
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_TRUE(all->all_resident());
  EXPECT_EQ(all->expert_cache_slots, total);
  EXPECT_EQ(all->expert_slot_bytes, w->max_expert_bytes());
  const uint64_t top = all->planned_bytes();
  bool refused = false, cached = false;
  for (uint64_t b = top + 8192; b + (1ull << 20) > top && b > 8192; b -= 4096) {
    auto p = PlanResidency(*w, Opts(b));
    if (!p.ok()) {
      refused = true;
      EXPECT_EQ(p.status().code(), ErrorCode::kResourceExhausted);
      EXPECT_NE(p.status().message().find("expert cache " + std::to_string(c.moe.n_expert_used) + " x"), std::string::npos)
          << p.status().message();
      EXPECT_NE(p.status().message().find("never hits"), std::string::npos) << p.status().message();
      break;
    }
    EXPECT_LE(p->planned_bytes(), b);
    EXPECT_GE(p->expert_cache_slots, c.moe.n_expert_used);
    EXPECT_LE(p->expert_cache_slots, total);
    if (!p->experts_resident()) {
      cached = true;
      EXPECT_FALSE(p->all_resident());
      EXPECT_GT(p->expert_bytes_per_token, 0u);
      const std::string text = FormatPlan(*w, *p);
      EXPECT_NE(text.find("holds " + std::to_string(p->expert_cache_slots) + " of " + std::to_string(total)),
                std::string::npos)
          << text;
      EXPECT_EQ(PlanToJson(*w, *p)["expert_cache_slots"], p->expert_cache_slots);
    }
  }
  EXPECT_TRUE(cached) << "no budget gave a cache smaller than the experts";
  EXPECT_TRUE(refused) << "no budget was refused";
}

}  // namespace
}  // namespace spool::runtime
