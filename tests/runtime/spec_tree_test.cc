// Draft trees (models/tree_attention.h, runtime/speculative.h): the tree attention
// kernel against its reference (random K/V, trees across page boundaries, sliding
// window, bf16 and f32 KV); a tree that is a chain gives the chain verification's
// logits bit for bit; every node's row is bit-identical to decoding its path one token
// at a time (bf16 GEMM model, f16, f32 with bias, qwen3 q/k norm, MoE, stories260K;
// --numerics ggml); keeping a path that is not a prefix of the step leaves a cache whose
// later logits are bit-identical to a run that never saw the other branches (RAM and
// disk KV, spilling); Generate with tree drafters (prompt lookup, a draft model)
// emits exactly the plain ids, on a streamed model too; bad trees are clear errors.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kv/kv_cache.h"
#include "models/tree_attention.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/scheduler.h"
#include "runtime/speculative.h"
#include "synthetic_model.h"

namespace spool::runtime {
namespace {

std::string SyntheticModel(const std::string& name, int64_t n_vocab, uint64_t seed, int64_t n_embd = 128,
                           int64_t n_layer = 2) {
  const std::string d = ::testing::TempDir() + "/spec_tree_test_" + name;
  testing::SyntheticShape s;
  s.n_layer = n_layer;
  s.n_embd = n_embd;
  s.n_ff = 2 * n_embd + 64;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = n_vocab;
  EXPECT_EQ(testing::WriteSyntheticLlama(d, s, seed), "");
  return d;
}

const std::string& Stories() {
  static const std::string p = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";
  return p;
}

std::vector<std::string> ModelPaths() {
  const std::string fx = std::string(SPOOL_TEST_FIXTURES) + "/models/";
  return {SyntheticModel("bf16", 384, 7),    fx + "mistral-gqa-f16",       fx + "qwen2-bias-tied-f32",
          fx + "qwen3-qknorm-bf16",          fx + "qwen2-moe-shared-f32", Stories()};
}

// disk_kv: a 16-token hot window of 16-token pages (ctx 128 > window: DiskKv).
EngineOptions Options(bool disk_kv) {
  EngineOptions o;
  o.threads = 2;
  o.ctx = 128;
  o.prefill_chunk = 64;
  o.load_tokenizer = false;
  o.kv_page_tokens = 16;
  o.kv_window = disk_kv ? 16 : 0;
  o.kv_dir = ::testing::TempDir() + "/spec_tree_test_kv";
  o.max_draft = 32;
  return o;
}

std::unique_ptr<Engine> Open(const std::string& path, const EngineOptions& o) {
  auto e = Engine::Open(path, o);
  EXPECT_TRUE(e.ok()) << e.status().message();
  return e.ok() ? std::move(*e) : nullptr;
}

std::vector<int32_t> RandomIds(int64_t n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(n_vocab));
  return ids;
}

// A random tree of n nodes (parent[0] = -1, parent[i] in [-1, i) with a bias to deep
// chains), as Generate feeds it: node 0 is the root (the sampled token).
std::vector<int32_t> RandomTree(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> parent(static_cast<size_t>(n));
  parent[0] = -1;
  for (int64_t i = 1; i < n; ++i)
    parent[i] = rng() % 3 == 0 ? static_cast<int32_t>(rng() % i) : static_cast<int32_t>(i - 1);
  return parent;
}

std::vector<int32_t> PathTo(const std::vector<int32_t>& parent, int32_t node) {
  std::vector<int32_t> path;
  for (int32_t a = node; a >= 0; a = parent[static_cast<size_t>(a)]) path.insert(path.begin(), a);
  return path;
}

bool SameBits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

Status DecodeOne(Engine& e, Sequence& s, int32_t t, float* logits) {
  Sequence* p = &s;
  return e.Decode(std::span<Sequence* const>(&p, 1), std::span<const int32_t>(&t, 1), logits);
}

// --- the kernel -----------------------------------------------------------------

// Writes n random K/V rows per layer to the cache at its end (a step) without committing.
void WriteRandom(kv::SequenceKv& kv, int64_t n, std::mt19937& rng, bool commit) {
  const int64_t E = kv.layout().row_elems();
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> k(static_cast<size_t>(n * E)), v(k.size());
  for (int64_t l = 0; l < kv.layout().n_layer; ++l) {
    for (auto& x : k) x = nd(rng);
    for (auto& x : v) x = nd(rng);
    ASSERT_TRUE(kv.Write(l, kv.n_tokens(), n, k.data(), v.data()).ok());
  }
  if (commit) ASSERT_TRUE(kv.Commit(n).ok());
}

TEST(TreeKernel, MatchesTheReferenceAndAChainTreeEqualsTheChainFold) {
  for (const DType dt : {DType::kBF16, DType::kF32}) {
    for (const int64_t window : {int64_t{0}, int64_t{11}}) {
      for (const int64_t committed : {int64_t{0}, int64_t{13}, int64_t{32}, int64_t{45}}) {
        SCOPED_TRACE(std::to_string(committed) + " committed, window " + std::to_string(window));
        kv::KvLayout L;
        L.n_layer = 1, L.n_head_kv = 2, L.head_dim = 24, L.page_tokens = 16, L.dtype = dt;
        const AttentionShape shape{4, 2, 24, 0.2f, window, 0.0f};
        ThreadPool pool(2);
        std::mt19937 rng(static_cast<uint32_t>(committed + 100 * window));
        const int64_t m = 23;
        const auto parent = RandomTree(m, static_cast<uint32_t>(committed + 7));
        std::vector<int32_t> depth;
        ASSERT_TRUE(models::TreeDepths(parent, &depth).ok());
        std::vector<int64_t> pos(m);
        for (int64_t i = 0; i < m; ++i) pos[i] = committed + depth[i];
        std::normal_distribution<float> nd(0.f, 1.f);
        std::vector<float> q(static_cast<size_t>(m * 4 * 24));
        for (auto& x : q) x = nd(rng);

        kv::InRamKv cache(L);
        WriteRandom(cache, committed, rng, true);
        WriteRandom(cache, m, rng, false);
        std::vector<float> got(q.size()), want(q.size());
        models::TreeAttention att;
        const models::TreeSpec tree{committed, parent};
        ASSERT_TRUE(att.Run(pool, cache, 0, shape, tree, pos.data(), q.data(), m, false, nullptr, got.data()).ok());
        ASSERT_TRUE(models::TreeAttentionRef(cache, 0, shape, tree, pos.data(), q.data(), m, want.data()).ok());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * 4 + 1e-6) << i;

        // A chain: the tree kernel equals the chain fold (AttentionFoldPage over the real pages) bit for bit.
        std::vector<int32_t> chain(static_cast<size_t>(m));
        std::vector<int64_t> cpos(m);
        for (int64_t i = 0; i < m; ++i) chain[i] = static_cast<int32_t>(i) - 1, cpos[i] = committed + i;
        std::vector<float> tree_out(q.size()), chain_out(q.size());
        ASSERT_TRUE(att.Run(pool, cache, 0, shape, models::TreeSpec{committed, chain}, cpos.data(), q.data(), m, false,
                            nullptr, tree_out.data())
                        .ok());
        AttentionState st;
        st.Reset(m, shape);
        ASSERT_TRUE(cache
                        .ForEachPage(0, committed + m,
                                     [&](const KvPageView& page) {
                                       AttentionFoldPage(pool, shape, q.data(), cpos.data(), m, page, st);
                                     })
                        .ok());
        AttentionFinalize(shape, st, chain_out.data());
        EXPECT_TRUE(SameBits(tree_out.data(), chain_out.data(), static_cast<int64_t>(q.size())));
      }
    }
  }
}

// --- the engine -----------------------------------------------------------------

class Tree : public ::testing::TestWithParam<bool> {};  // param: disk KV

// Runs `fed` as a tree step after `prompt` on a new sequence; rows_out gets the logits.
std::unique_ptr<Sequence> TreeStep(Engine& e, const std::vector<int32_t>& prompt, const std::vector<int32_t>& fed,
                                   const std::vector<int32_t>& parent, std::vector<float>* rows_out,
                                   models::TreeRows* rows) {
  const int64_t V = e.n_vocab();
  std::vector<float> scratch(V);
  auto s = e.NewSequence();
  EXPECT_TRUE(e.Prefill(*s, prompt, scratch.data()).ok());
  rows_out->resize(fed.size() * V);
  Engine::StepItem item{s.get(), fed, true, true};
  item.tree_base = s->n_tokens();
  item.tree_parent = parent;
  item.tree_rows = rows;
  const Status st = e.Step(std::span<const Engine::StepItem>(&item, 1), rows_out->data());
  EXPECT_TRUE(st.ok()) << st.message();
  return s;
}

TEST_P(Tree, AChainTreeEqualsTheChainVerification) {
  for (const std::string& path : ModelPaths()) {
    SCOPED_TRACE(path);
    auto e = Open(path, Options(GetParam()));
    ASSERT_NE(e, nullptr);
    const int64_t V = e->n_vocab(), k = 12;
    const auto prompt = RandomIds(30, V, 1), tokens = RandomIds(k, V, 2);
    std::vector<int32_t> chain(k);
    for (int64_t i = 0; i < k; ++i) chain[i] = static_cast<int32_t>(i) - 1;
    std::vector<float> tree_logits, scratch(V), verify(k * V);
    auto a = TreeStep(*e, prompt, tokens, chain, &tree_logits, nullptr);
    auto b = e->NewSequence();
    ASSERT_TRUE(e->Prefill(*b, prompt, scratch.data()).ok());
    const Engine::StepItem item{b.get(), tokens, true, true};
    ASSERT_TRUE(e->Step(std::span<const Engine::StepItem>(&item, 1), verify.data()).ok());
    for (int64_t i = 0; i < k; ++i) EXPECT_TRUE(SameBits(tree_logits.data() + i * V, verify.data() + i * V, V)) << i;
  }
}

// Every node's logits equal decoding its path token by token; keeping a deep path that
// is not a prefix of the step, later logits equal those of a run that decoded the path.
void CheckTreeAgainstPaths(Engine& e, int64_t n_prompt, int64_t n_nodes, uint32_t seed) {
  const int64_t V = e.n_vocab();
  const auto prompt = RandomIds(n_prompt, V, seed), fed = RandomIds(n_nodes, V, seed + 1);
  const auto parent = RandomTree(n_nodes, seed + 2);
  std::vector<float> tree_logits, scratch(V), want(V);
  models::TreeRows rows;
  auto t = TreeStep(e, prompt, fed, parent, &tree_logits, &rows);
  ASSERT_EQ(t->n_tokens(), n_prompt + n_nodes);
  for (int32_t node = 0; node < n_nodes; ++node) {
    auto s = e.NewSequence();
    ASSERT_TRUE(e.Prefill(*s, prompt, scratch.data()).ok());
    for (const int32_t a : PathTo(parent, node)) ASSERT_TRUE(DecodeOne(e, *s, fed[a], want.data()).ok());
    ASSERT_TRUE(SameBits(want.data(), tree_logits.data() + node * V, V)) << "node " << node;
  }
  // The deepest node whose path leaves the step's order somewhere.
  int32_t deep = 0;
  for (int32_t i = 0; i < n_nodes; ++i)
    if (PathTo(parent, i).size() >= PathTo(parent, deep).size() && PathTo(parent, i).back() != static_cast<int32_t>(PathTo(parent, i).size()) - 1) deep = i;
  const auto path = PathTo(parent, deep);
  ASSERT_TRUE(e.KeepTreePath(*t, rows, path).ok());
  ASSERT_EQ(t->n_tokens(), n_prompt + static_cast<int64_t>(path.size()));
  auto s = e.NewSequence();
  ASSERT_TRUE(e.Prefill(*s, prompt, scratch.data()).ok());
  for (const int32_t a : path) ASSERT_TRUE(DecodeOne(e, *s, fed[a], scratch.data()).ok());
  EXPECT_EQ(s->tokens(), t->tokens());
  const auto after = RandomIds(6, V, seed + 3);
  std::vector<float> got(V);
  for (const int32_t x : after) {
    ASSERT_TRUE(DecodeOne(e, *s, x, want.data()).ok());
    ASSERT_TRUE(DecodeOne(e, *t, x, got.data()).ok());
    EXPECT_TRUE(SameBits(want.data(), got.data(), V));
  }
}

TEST_P(Tree, EveryNodeEqualsDecodingItsPathAndKeepingAPathForgetsTheOthers) {
  for (const std::string& path : ModelPaths()) {
    SCOPED_TRACE(path);
    auto e = Open(path, Options(GetParam()));
    ASSERT_NE(e, nullptr);
    // 29 committed tokens, 24 nodes: the tree crosses page boundaries (16-token pages) and,
    // with disk KV, spills.
    CheckTreeAgainstPaths(*e, 29, 24, 11);
  }
}

TEST_P(Tree, GgmlNumerics) {
  EngineOptions o = Options(GetParam());
  o.ggml_numerics = true;
  o.kv_dtype = DType::kF32;
  auto e = Open(Stories(), o);
  ASSERT_NE(e, nullptr);
  CheckTreeAgainstPaths(*e, 37, 20, 21);
}

std::vector<int32_t> GenerateIds(Engine& e, const std::vector<int32_t>& prompt, Drafter* d,
                                 const sampling::SamplingParams& sp, int64_t n, SpecStats* stats = nullptr) {
  auto seq = e.NewSequence();
  GenerateRequest req;
  req.prompt = prompt;
  req.sampling = sp;
  req.max_tokens = n;
  req.ignore_eos = true;
  req.drafter = d;
  auto r = Generate(e, *seq, req);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return {};
  if (stats) *stats = r->spec;
  EXPECT_EQ(seq->n_tokens(), static_cast<int64_t>(prompt.size() + r->ids.size()) - 1);
  return r->ids;
}

std::vector<sampling::SamplingParams> SamplingCases() {
  sampling::SamplingParams greedy;
  greedy.temperature = 0;
  sampling::SamplingParams hot;
  hot.temperature = 1.0f;
  hot.top_k = 0;
  hot.top_p = 1.0f;
  hot.seed = 1234;
  sampling::SamplingParams penal = hot;
  penal.repeat_penalty = 1.3f;
  penal.top_k = 20;
  return {greedy, hot, penal};
}

// Several different continuations of the same n-grams: lookup trees branch.
std::vector<int32_t> BranchyPrompt(int64_t V) {
  std::vector<int32_t> p;
  const auto a = RandomIds(3, V, 9), b = RandomIds(5, V, 10), c = RandomIds(5, V, 12);
  for (int r = 0; r < 4; ++r) {
    p.insert(p.end(), a.begin(), a.end());
    const auto& tail = r % 2 ? b : c;
    p.insert(p.end(), tail.begin(), tail.end());
  }
  return p;
}

TEST_P(Tree, LookupTreesEmitExactlyThePlainIds) {
  for (const std::string& path : {SyntheticModel("bf16", 384, 7), Stories()}) {
    SCOPED_TRACE(path);
    auto e = Open(path, Options(GetParam()));
    ASSERT_NE(e, nullptr);
    const auto prompt = BranchyPrompt(e->n_vocab());
    for (const auto& sp : SamplingCases()) {
      SCOPED_TRACE(sp.temperature);
      const auto plain = GenerateIds(*e, prompt, nullptr, sp, 80);
      for (const int64_t nodes : {8, 32}) {
        PromptLookupDrafter lookup(3, 1, 8, nodes);
        SpecStats st;
        EXPECT_EQ(plain, GenerateIds(*e, prompt, &lookup, sp, 80, &st)) << nodes << " nodes";
        EXPECT_GT(st.drafted, 0u);
        EXPECT_LE(st.passes, 79u);
      }
    }
  }
}

TEST_P(Tree, DraftModelTreesEmitExactlyThePlainIds) {
  const std::string target = SyntheticModel("bf16", 384, 7);
  for (const std::string& draft : {target, SyntheticModel("draft", 384, 99, 64)}) {
    SCOPED_TRACE(draft);
    EngineOptions o = Options(GetParam());
    o.draft_model = draft;
    o.max_draft = 24;
    auto e = Open(target, o);
    ASSERT_NE(e, nullptr);
    SpeculativeOptions so;
    so.draft_model = true;
    so.max_draft = 6;
    so.tree_nodes = 24;  // 4 candidates per level, 6 levels
    auto d = MakeDrafter(*e, so);
    ASSERT_TRUE(d.ok()) << d.status().message();
    const auto prompt = RandomIds(20, e->n_vocab(), 11);
    for (const auto& sp : SamplingCases()) {
      const auto plain = GenerateIds(*e, prompt, nullptr, sp, 60);
      SpecStats st;
      EXPECT_EQ(plain, GenerateIds(*e, prompt, d->get(), sp, 60, &st));
      EXPECT_GT(st.drafted, 0u);
      if (draft == target && sp.temperature == 0) {
        EXPECT_GT(TokensPerPass(st), 4.0);  // a model agrees with itself: 6 levels accepted
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kv, Tree, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "DiskKv" : "RamKv"; });

TEST(TreeStreamed, LookupTreesOnAStreamedModelEmitThePlainIds) {
  const std::string path = SyntheticModel("streamed", 2048, 5, 512, 6);
  ::setenv("SPOOL_TEST_PLAN_BASELINE", "67108864", 1);
  for (bool disk : {false, true}) {
    EngineOptions o = Options(disk);
    o.mem_budget = uint64_t{1} << 40;
    auto full = Engine::Plan(path, o);
    ASSERT_TRUE(full.ok()) << full.status().message();
    o.mem_budget = full->plan.planned_bytes() - 3 * full->weights->group(0).bytes;
    auto e = Open(path, o);
    ASSERT_NE(e, nullptr);
    EXPECT_GT(e->plan().n_streamed, 0);
    const auto prompt = BranchyPrompt(e->n_vocab());
    sampling::SamplingParams greedy;
    greedy.temperature = 0;
    const auto plain = GenerateIds(*e, prompt, nullptr, greedy, 40);
    PromptLookupDrafter lookup(3, 1, 8, 16);
    SpecStats st;
    EXPECT_EQ(plain, GenerateIds(*e, prompt, &lookup, greedy, 40, &st));
    EXPECT_GT(st.drafted, 0u);
  }
  ::unsetenv("SPOOL_TEST_PLAN_BASELINE");
}

Completion Wait(RequestHandle& h) {
  RequestHandle::Event ev;
  for (;;) {
    EXPECT_TRUE(h.Next(&ev, 60000));
    if (ev.kind == RequestHandle::Event::Kind::kDone) return ev.completion;
    if (ev.kind == RequestHandle::Event::Kind::kError) {
      ADD_FAILURE() << ev.error.message();
      return Completion{};
    }
  }
}

// The scheduler (serve, batch): requests with lookup trees, draft-model trees and none
// share steps; each gets the ids it gets alone without speculation.
TEST(TreeScheduler, RequestsWithTreesShareStepsAndKeepTheirIds) {
  for (bool disk : {false, true}) {
    SCOPED_TRACE(disk);
    EngineOptions o = Options(disk);
    o.draft_model = SyntheticModel("bf16", 384, 7);  // drafting for itself
    o.max_draft = 16;
    PlanForScheduler(&o, 4);
    auto e = Open(SyntheticModel("bf16", 384, 7), o);
    ASSERT_NE(e, nullptr);
    const int64_t V = e->n_vocab();
    std::vector<ScheduledRequest> reqs;
    for (int i = 0; i < 6; ++i) {
      ScheduledRequest r;
      r.prompt = i % 2 ? BranchyPrompt(V) : RandomIds(9 + i, V, 40 + i);
      r.max_tokens = 30 + i;
      r.sampling = SamplingCases()[i % 3];
      reqs.push_back(r);
    }
    std::vector<std::vector<int32_t>> alone;
    {
      SchedulerOptions so;
      so.max_active = 1;
      so.prefix_cache_entries = 0;
      Scheduler s(*e, so);
      for (const auto& r : reqs) alone.push_back(Wait(*s.Submit(r)).ids);
    }
    for (size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].speculative.lookup = i % 2 == 1;
      reqs[i].speculative.draft_model = i % 2 == 0 && i != 4;
      reqs[i].speculative.max_draft = 4;
      reqs[i].speculative.tree_nodes = 12;
    }
    SchedulerOptions so;
    so.max_active = 4;
    Scheduler s(*e, so);
    auto handles = s.SubmitMany(reqs);
    for (size_t i = 0; i < handles.size(); ++i) {
      const Completion c = Wait(*handles[i]);
      EXPECT_EQ(c.ids, alone[i]) << "request " << i;
      if (reqs[i].speculative.draft_model) {
        EXPECT_GT(c.spec.drafted, 0u) << "request " << i;
      }
      if (reqs[i].speculative.draft_model && reqs[i].sampling.temperature == 0) {
        EXPECT_GT(TokensPerPass(c.spec), 3.0) << "request " << i;
      }
    }
  }
}

// --draft-sample in the scheduler: the rejection rule, as Generate applies it — a
// request alone gets Generate's ids for the same seed (which follow the target's
// distribution: SpecSampling.RejectionRuleKeepsTheTargetsDistribution).
TEST(TreeScheduler, SampledDraftsTakeTheRejectionRuleAsGenerate) {
  EngineOptions o = Options(false);
  o.draft_model = SyntheticModel("draft", 384, 99, 64);
  o.max_draft = 6;
  PlanForScheduler(&o, 2);
  auto e = Open(SyntheticModel("bf16", 384, 7), o);
  ASSERT_NE(e, nullptr);
  SpeculativeOptions spec;
  spec.draft_model = true;
  spec.max_draft = 6;
  spec.sample_drafts = true;
  uint64_t accepted = 0, drafted = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    sampling::SamplingParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.seed = seed;
    const auto prompt = RandomIds(12, e->n_vocab(), static_cast<uint32_t>(seed));
    auto d = MakeDrafter(*e, spec);
    ASSERT_TRUE(d.ok());
    const auto want = GenerateIds(*e, prompt, d->get(), sp, 40);
    ScheduledRequest r;
    r.prompt = prompt;
    r.max_tokens = 40;
    r.ignore_eos = true;
    r.sampling = sp;
    r.speculative = spec;
    Scheduler s(*e, SchedulerOptions{});
    const Completion c = Wait(*s.Submit(r));
    EXPECT_EQ(c.ids, want) << "seed " << seed;
    accepted += c.spec.accepted, drafted += c.spec.drafted;
  }
  EXPECT_GT(drafted, 0u);
  EXPECT_LT(accepted, drafted);  // the residual is sampled too
}

TEST(TreeLookup, MergesSeveralMatchesIntoATrie) {
  // ... 1 2 3 | 1 2 4 5 | 1 2 3 6 | 1 2  →  after "1 2": 3 6 (latest), 4 5, 3 (shared).
  PromptLookupDrafter lookup(2, 1, 3, 16);
  const std::vector<int32_t> ctx{1, 2, 3, 1, 2, 4, 5, 1, 2, 3, 6, 1, 2};
  DraftTree t;
  ASSERT_TRUE(lookup.Propose(ctx, 3, 16, &t).ok());
  ASSERT_GE(t.size(), 4u);
  EXPECT_EQ(t.tokens[0], 3);
  EXPECT_EQ(t.parent[0], -1);
  EXPECT_EQ(t.tokens[1], 6);
  EXPECT_EQ(t.parent[1], 0);
  // Siblings are distinct; the chain drafter's draft is the first path.
  std::vector<int32_t> chain;
  ASSERT_TRUE(lookup.Draft(ctx, 3, &chain).ok());
  EXPECT_EQ(chain[0], 3);
  EXPECT_EQ(chain[1], 6);
  for (size_t i = 0; i < t.size(); ++i)
    for (size_t j = i + 1; j < t.size(); ++j)
      EXPECT_FALSE(t.parent[i] == t.parent[j] && t.tokens[i] == t.tokens[j]);
  // The node budget holds.
  PromptLookupDrafter small(2, 1, 3, 2);
  ASSERT_TRUE(small.Propose(ctx, 3, 2, &t).ok());
  EXPECT_EQ(t.size(), 2u);
}

// Malformed trees and paths: clear errors, the sequence unchanged.
TEST(TreeMalformed, BadTreesAndPathsAreRefused) {
  auto e = Open(Stories(), Options(false));
  ASSERT_NE(e, nullptr);
  const int64_t V = e->n_vocab();
  std::vector<float> logits(8 * V);
  auto s = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*s, RandomIds(5, V, 1), logits.data()).ok());
  const auto fed = RandomIds(4, V, 2);
  auto step = [&](std::vector<int32_t> parent, int64_t base) {
    Engine::StepItem item{s.get(), fed, true, true};
    item.tree_base = base;
    item.tree_parent = parent;
    return e->Step(std::span<const Engine::StepItem>(&item, 1), logits.data());
  };
  for (const auto& [parent, base] : std::vector<std::pair<std::vector<int32_t>, int64_t>>{
           {{-1, 0, 2, 1}, 5},     // a parent after its child
           {{-1, -2, 0, 1}, 5},    // below -1
           {{-1, 0, 1}, 5},        // too few nodes
           {{-1, 0, 1, 2}, 6},     // base after the sequence's end
           {{-1, 0, 1, 2}, -1}}) {
    const Status st = step(parent, base);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.message();
    EXPECT_EQ(s->n_tokens(), 5);
  }
  models::TreeRows rows;
  Engine::StepItem item{s.get(), fed, true, true};
  item.tree_base = 5;
  const std::vector<int32_t> parent{-1, 0, 0, 2};
  item.tree_parent = parent;
  item.tree_rows = &rows;
  ASSERT_TRUE(e->Step(std::span<const Engine::StepItem>(&item, 1), logits.data()).ok());
  for (const std::vector<int32_t>& path : std::vector<std::vector<int32_t>>{{0, 0}, {1, 0}, {0, 9}, {-1}}) {
    const Status st = e->KeepTreePath(*s, rows, path);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.message();
  }
  EXPECT_TRUE(e->KeepTreePath(*s, rows, std::vector<int32_t>{0, 2, 3}).ok());
  EXPECT_EQ(s->n_tokens(), 8);
  // Rows of an earlier step no longer fit the sequence.
  EXPECT_EQ(e->KeepTreePath(*s, rows, std::vector<int32_t>{0}).code(), ErrorCode::kInvalidArgument);
  // Drafter options.
  SpeculativeOptions so;
  so.lookup = true;
  so.tree_nodes = 65;
  EXPECT_FALSE(MakeDrafter(*e, so).ok());
}

}  // namespace
}  // namespace spool::runtime
