// Speculative decoding (runtime/speculative.h): verification rows are bit-identical to
// decoding the same tokens one step at a time (bf16 GEMM model, f16, f32, MoE, GGUF
// stories260K; RAM and disk KV; streamed weights); after a rejection, Truncate leaves a
// KV state whose later logits are bit-identical to a run that never saw the rejected
// tokens (RAM and disk KV, truncating into spilled pages); Generate with prompt lookup
// and with a draft model emits exactly the ids of plain decoding (greedy and seeded
// sampling); a draft model with another vocabulary is refused; the planner counts the
// draft model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/scheduler.h"
#include "runtime/speculative.h"
#include "synthetic_model.h"

namespace spool::runtime {
namespace {

std::string SyntheticModel(const std::string& name, int64_t n_vocab, uint64_t seed, int64_t n_embd = 128,
                           int64_t n_layer = 2) {
  const std::string d = ::testing::TempDir() + "/speculative_test_" + name;
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

// bf16 (oneDNN GEMM for multi-row steps), f16, f32 with QKV bias, qwen3 q/k norm, a
// mixture of experts, and stories260K (GGUF f32).
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
  o.kv_dir = ::testing::TempDir() + "/speculative_test_kv";
  o.max_draft = 16;
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

bool SameBits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

Status DecodeOne(Engine& e, Sequence& s, int32_t t, float* logits) {
  Sequence* p = &s;
  return e.Decode(std::span<Sequence* const>(&p, 1), std::span<const int32_t>(&t, 1), logits);
}

class Spec : public ::testing::TestWithParam<bool> {};  // param: disk KV

TEST_P(Spec, VerificationRowsAreBitIdenticalToDecodeSteps) {
  for (const std::string& path : ModelPaths()) {
    SCOPED_TRACE(path);
    auto e = Open(path, Options(GetParam()));
    ASSERT_NE(e, nullptr);
    const int64_t V = e->n_vocab(), k = 12;
    const auto prompt = RandomIds(30, V, 1), tokens = RandomIds(k, V, 2);
    std::vector<float> scratch(V), plain(k * V), verify(k * V);
    auto a = e->NewSequence();
    ASSERT_TRUE(e->Prefill(*a, prompt, scratch.data()).ok());
    for (int64_t i = 0; i < k; ++i) ASSERT_TRUE(DecodeOne(*e, *a, tokens[i], plain.data() + i * V).ok());
    auto b = e->NewSequence();
    ASSERT_TRUE(e->Prefill(*b, prompt, scratch.data()).ok());
    const Engine::StepItem item{b.get(), tokens, true, true};
    ASSERT_TRUE(e->Step(std::span<const Engine::StepItem>(&item, 1), verify.data()).ok());
    for (int64_t i = 0; i < k; ++i) EXPECT_TRUE(SameBits(plain.data() + i * V, verify.data() + i * V, V)) << "row " << i;
    EXPECT_EQ(a->tokens(), b->tokens());
  }
}

TEST_P(Spec, VerificationRowsEqualDecodeStepsWithGgmlNumerics) {
  // --numerics ggml: verification rows take llama.cpp's single-token attention kernel.
  EngineOptions o = Options(GetParam());
  o.ggml_numerics = true;
  o.kv_dtype = DType::kF32;
  auto e = Open(Stories(), o);
  ASSERT_NE(e, nullptr);
  const int64_t V = e->n_vocab(), k = 10;
  const auto prompt = RandomIds(40, V, 1), tokens = RandomIds(k, V, 2);
  std::vector<float> scratch(V), plain(k * V), verify(k * V);
  auto a = e->NewSequence(), b = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*a, prompt, scratch.data()).ok());
  for (int64_t i = 0; i < k; ++i) ASSERT_TRUE(DecodeOne(*e, *a, tokens[i], plain.data() + i * V).ok());
  ASSERT_TRUE(e->Prefill(*b, prompt, scratch.data()).ok());
  const Engine::StepItem item{b.get(), tokens, true, true};
  ASSERT_TRUE(e->Step(std::span<const Engine::StepItem>(&item, 1), verify.data()).ok());
  for (int64_t i = 0; i < k; ++i) EXPECT_TRUE(SameBits(plain.data() + i * V, verify.data() + i * V, V)) << "row " << i;
}

TEST_P(Spec, RollbackGivesTheLogitsOfARunThatNeverSawTheRejectedTokens) {
  for (const std::string& path : ModelPaths()) {
    SCOPED_TRACE(path);
    auto e = Open(path, Options(GetParam()));
    ASSERT_NE(e, nullptr);
    const int64_t V = e->n_vocab();
    // 40 prompt tokens, then a verification of 1 + 40 tokens (crossing pages and, with
    // disk KV, spilling), of which only the first two are kept.
    const auto prompt = RandomIds(40, V, 3), fed = RandomIds(41, V, 4), after = RandomIds(6, V, 5);
    std::vector<float> scratch(41 * V), want(after.size() * V), got(after.size() * V);
    auto a = e->NewSequence();
    ASSERT_TRUE(e->Prefill(*a, prompt, scratch.data()).ok());
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(DecodeOne(*e, *a, fed[i], scratch.data()).ok());
    for (size_t i = 0; i < after.size(); ++i) ASSERT_TRUE(DecodeOne(*e, *a, after[i], want.data() + i * V).ok());

    auto b = e->NewSequence();
    ASSERT_TRUE(e->Prefill(*b, prompt, scratch.data()).ok());
    const Engine::StepItem item{b.get(), fed, true, true};
    ASSERT_TRUE(e->Step(std::span<const Engine::StepItem>(&item, 1), scratch.data()).ok());
    ASSERT_EQ(b->n_tokens(), 81);
    ASSERT_TRUE(e->Truncate(*b, 42).ok());
    for (size_t i = 0; i < after.size(); ++i) ASSERT_TRUE(DecodeOne(*e, *b, after[i], got.data() + i * V).ok());
    EXPECT_TRUE(SameBits(want.data(), got.data(), static_cast<int64_t>(want.size())));
    EXPECT_EQ(a->tokens(), b->tokens());
    // A second verification on the rolled-back sequence (rows after a truncation).
    const std::vector<int32_t> more = RandomIds(5, V, 6);
    std::vector<float> p1(5 * V), p2(5 * V);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(DecodeOne(*e, *a, more[i], p1.data() + i * V).ok());
    const Engine::StepItem item2{b.get(), more, true, true};
    ASSERT_TRUE(e->Step(std::span<const Engine::StepItem>(&item2, 1), p2.data()).ok());
    EXPECT_TRUE(SameBits(p1.data(), p2.data(), 5 * V));
  }
}

// ids of Generate with the given drafter (nullptr: plain).
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
  // Invariant: every generated id but the last was fed.
  EXPECT_EQ(seq->n_tokens(), static_cast<int64_t>(prompt.size() + r->ids.size()) - 1);
  return r->ids;
}

// A repetitive prompt (lookup finds matches) and greedy / seeded sampling.
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

std::vector<int32_t> RepetitivePrompt(int64_t V) {
  std::vector<int32_t> p;
  const auto unit = RandomIds(7, V, 9);
  for (int r = 0; r < 4; ++r) p.insert(p.end(), unit.begin(), unit.end());
  return p;
}

TEST_P(Spec, PromptLookupEmitsExactlyThePlainIds) {
  for (const std::string& path : {SyntheticModel("bf16", 384, 7), Stories()}) {
    SCOPED_TRACE(path);
    auto e = Open(path, Options(GetParam()));
    ASSERT_NE(e, nullptr);
    const auto prompt = RepetitivePrompt(e->n_vocab());
    for (const auto& sp : SamplingCases()) {
      SCOPED_TRACE(sp.temperature);
      const auto plain = GenerateIds(*e, prompt, nullptr, sp, 80);
      PromptLookupDrafter lookup(3, 1, 8);
      SpecStats st;
      const auto spec = GenerateIds(*e, prompt, &lookup, sp, 80, &st);
      EXPECT_EQ(plain, spec);
      EXPECT_GT(st.drafted, 0u);
      EXPECT_LE(st.accepted, st.drafted);
      EXPECT_LE(st.passes, 79u);
    }
  }
}

TEST_P(Spec, DraftModelEmitsExactlyThePlainIds) {
  // Drafting for itself (every draft accepted) and with another model of the same
  // vocabulary (random weights: most drafts rejected).
  const std::string target = SyntheticModel("bf16", 384, 7);
  for (const std::string& draft : {target, SyntheticModel("draft", 384, 99, 64)}) {
    SCOPED_TRACE(draft);
    EngineOptions o = Options(GetParam());
    o.draft_model = draft;
    o.max_draft = 6;
    auto e = Open(target, o);
    ASSERT_NE(e, nullptr);
    ASSERT_NE(e->draft_engine(), nullptr);
    EXPECT_GT(e->plan().draft_bytes, 0u);
    SpeculativeOptions so;
    so.draft_model = true;
    so.max_draft = 6;
    auto d = MakeDrafter(*e, so);
    ASSERT_TRUE(d.ok()) << d.status().message();
    const auto prompt = RandomIds(20, e->n_vocab(), 11);
    for (const auto& sp : SamplingCases()) {
      const auto plain = GenerateIds(*e, prompt, nullptr, sp, 60);
      SpecStats st;
      const auto spec = GenerateIds(*e, prompt, d->get(), sp, 60, &st);
      EXPECT_EQ(plain, spec);
      EXPECT_GT(st.drafted, 0u);
      if (draft == target && sp.temperature == 0) {
        EXPECT_EQ(st.accepted, st.drafted);  // a model agrees with itself
        EXPECT_GT(TokensPerPass(st), 3.0);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kv, Spec, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "DiskKv" : "RamKv"; });

// The scheduler: requests with and without drafts share steps; each gets the ids it
// gets alone without speculation (greedy and seeded), and the counters add up.
TEST(SpecScheduler, RequestsWithDraftsShareStepsAndKeepTheirIds) {
  for (bool disk : {false, true}) {
    SCOPED_TRACE(disk);
    EngineOptions o = Options(disk);
    o.draft_model = SyntheticModel("bf16", 384, 7);  // drafting for itself
    o.max_draft = 6;
    PlanForScheduler(&o, 4);
    auto e = Open(SyntheticModel("bf16", 384, 7), o);
    ASSERT_NE(e, nullptr);
    const int64_t V = e->n_vocab();
    std::vector<ScheduledRequest> reqs;
    for (int i = 0; i < 6; ++i) {
      ScheduledRequest r;
      r.prompt = i % 2 ? RepetitivePrompt(V) : RandomIds(9 + i, V, 40 + i);
      r.max_tokens = 30 + i;
      r.sampling = SamplingCases()[i % 3];
      reqs.push_back(r);
    }
    auto wait = [](RequestHandle& h) {
      RequestHandle::Event ev;
      for (;;) {
        EXPECT_TRUE(h.Next(&ev, 60000));
        if (ev.kind == RequestHandle::Event::Kind::kDone) return ev.completion;
        if (ev.kind == RequestHandle::Event::Kind::kError) {
          ADD_FAILURE() << ev.error.message();
          return Completion{};
        }
      }
    };
    std::vector<std::vector<int32_t>> alone;
    {
      SchedulerOptions so;
      so.max_active = 1;
      so.prefix_cache_entries = 0;
      Scheduler s(*e, so);
      for (const auto& r : reqs) alone.push_back(wait(*s.Submit(r)).ids);
    }
    // Lookup for odd requests, the draft model for every third, none for the rest.
    for (size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].speculative.lookup = i % 2 == 1;
      reqs[i].speculative.draft_model = i % 3 == 0 && i % 2 == 0;
      reqs[i].speculative.max_draft = 5;
    }
    SchedulerOptions so;
    so.max_active = 4;
    so.prefix_cache_entries = 2;
    Scheduler s(*e, so);
    auto handles = s.SubmitMany(reqs);
    uint64_t drafted = 0, accepted = 0;
    for (size_t i = 0; i < handles.size(); ++i) {
      const Completion c = wait(*handles[i]);
      EXPECT_EQ(c.ids, alone[i]) << "request " << i;
      // (Lookup finds little to draft from random tokens sampled at temperature 1.)
      if (reqs[i].speculative.draft_model || (reqs[i].speculative.lookup && reqs[i].sampling.temperature == 0)) {
        EXPECT_GT(c.spec.drafted, 0u) << "request " << i;
      } else if (!reqs[i].speculative.enabled()) {
        EXPECT_EQ(c.spec.drafted, 0u);
      }
      if (reqs[i].speculative.draft_model && reqs[i].sampling.temperature == 0) {
        EXPECT_EQ(c.spec.accepted, c.spec.drafted);
      }
      drafted += c.spec.drafted;
      accepted += c.spec.accepted;
    }
    const SchedulerStats st = s.stats();
    EXPECT_EQ(static_cast<uint64_t>(st.spec_drafted), drafted);
    EXPECT_EQ(static_cast<uint64_t>(st.spec_accepted), accepted);
    // A request asking for a draft model on an engine without one fails alone.
    auto plain = Open(SyntheticModel("bf16", 384, 7), Options(disk));
    Scheduler s2(*plain, SchedulerOptions{});
    ScheduledRequest bad = reqs[0];
    bad.speculative.draft_model = true;
    bad.speculative.lookup = false;
    RequestHandle::Event ev;
    auto h = s2.Submit(bad);
    ASSERT_TRUE(h->Next(&ev, 60000));
    EXPECT_EQ(ev.kind, RequestHandle::Event::Kind::kError);
  }
}

TEST(SpecStreamed, LookupOnAStreamedModelEmitsThePlainIds) {
  // Plan once with everything resident, then give a budget 3 layers short: streamed.
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
    const auto prompt = RepetitivePrompt(e->n_vocab());
    sampling::SamplingParams greedy;
    greedy.temperature = 0;
    const auto plain = GenerateIds(*e, prompt, nullptr, greedy, 40);
    PromptLookupDrafter lookup(3, 1, 8);
    SpecStats st;
    EXPECT_EQ(plain, GenerateIds(*e, prompt, &lookup, greedy, 40, &st));
    EXPECT_GT(st.drafted, 0u);
  }
  ::unsetenv("SPOOL_TEST_PLAN_BASELINE");
}

TEST(SpecDraft, AnotherVocabularyIsRefused) {
  EngineOptions o = Options(false);
  o.draft_model = SyntheticModel("vocab500", 500, 3);
  auto e = Engine::Open(SyntheticModel("bf16", 384, 7), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("vocabulary of 500 tokens"), std::string::npos) << e.status().message();
  // And in the plan (spool show --plan) alike.
  auto p = Engine::Plan(SyntheticModel("bf16", 384, 7), o);
  EXPECT_FALSE(p.ok());
}

TEST(SpecDraft, PlannerCountsTheDraftModel) {
  EngineOptions o = Options(false);
  ::setenv("SPOOL_TEST_PLAN_BASELINE", "67108864", 1);
  o.mem_budget = uint64_t{1} << 40;
  auto without = Engine::Plan(SyntheticModel("bf16", 384, 7), o);
  o.draft_model = SyntheticModel("draft", 384, 99, 64);
  auto with = Engine::Plan(SyntheticModel("bf16", 384, 7), o);
  ::unsetenv("SPOOL_TEST_PLAN_BASELINE");
  ASSERT_TRUE(without.ok() && with.ok());
  EXPECT_EQ(without->plan.draft_bytes, 0u);
  EXPECT_GT(with->plan.draft_bytes, 0u);
  EXPECT_EQ(with->plan.planned_bytes(), without->plan.planned_bytes() + with->plan.draft_bytes);
  // A budget that holds the target but not the draft too fails, naming the draft.
  ::setenv("SPOOL_TEST_PLAN_BASELINE", "67108864", 1);
  o.draft_model = SyntheticModel("draft", 384, 99, 64);
  o.mem_budget = with->plan.draft_bytes;  // the draft alone uses the whole budget
  auto tight = Engine::Plan(SyntheticModel("bf16", 384, 7), o);
  ::unsetenv("SPOOL_TEST_PLAN_BASELINE");
  ASSERT_FALSE(tight.ok());
  EXPECT_NE(tight.status().message().find("draft model"), std::string::npos) << tight.status().message();
}

// Two-sample chi-square of equal-size samples over categories with >= 10 observations
// in all (the rest merged); true when it stays below the 0.1% critical value.
bool SameDistribution(const std::vector<int32_t>& a, const std::vector<int32_t>& b, double* stat, int* df) {
  std::map<int32_t, std::pair<double, double>> n;
  for (int32_t x : a) n[x].first += 1;
  for (int32_t x : b) n[x].second += 1;
  double ra = 0, rb = 0, chi = 0;
  int cats = 0;
  for (auto& [id, c] : n) {
    if (c.first + c.second < 10) {
      ra += c.first, rb += c.second;
      continue;
    }
    chi += (c.first - c.second) * (c.first - c.second) / (c.first + c.second);
    ++cats;
  }
  if (ra + rb > 0) chi += (ra - rb) * (ra - rb) / (ra + rb), ++cats;
  *stat = chi;
  *df = std::max(cats - 1, 1);
  const double k = *df, z = 3.09;  // Wilson–Hilferty, p = 0.001
  const double crit = k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
  return chi < crit;
}

// The rejection rule with sampled drafts: stories260K (peaked) drafted by a random
// model (flat), so most drafts are rejected and the residual is sampled often; the
// tokens at positions 1..3 have plain sampling's distribution over 1,000 seeds. And a
// seed gives the same ids twice.
TEST(SpecSampling, RejectionRuleKeepsTheTargetsDistribution) {
  EngineOptions o = Options(false);
  o.draft_model = SyntheticModel("draft512", 512, 99, 64);
  o.max_draft = 4;
  auto e = Open(Stories(), o);
  ASSERT_NE(e, nullptr);
  SpeculativeOptions so;
  so.draft_model = true;
  so.max_draft = 4;
  so.sample_drafts = true;
  auto d = MakeDrafter(*e, so);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_TRUE((*d)->sampled());
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 431, 429, 306};
  sampling::SamplingParams sp = sampling::SamplingParams::Greedy();
  sp.temperature = 1.0f;
  const int kRuns = 1000, kTokens = 4;
  std::vector<std::vector<int32_t>> plain(kTokens), spec(kTokens);
  uint64_t drafted = 0, accepted = 0;
  for (int seed = 0; seed < kRuns; ++seed) {
    sp.seed = static_cast<uint64_t>(seed) * 7919 + 1;
    const auto a = GenerateIds(*e, prompt, nullptr, sp, kTokens);
    SpecStats st;
    const auto b = GenerateIds(*e, prompt, d->get(), sp, kTokens, &st);
    ASSERT_EQ(a.size(), static_cast<size_t>(kTokens));
    ASSERT_EQ(b.size(), static_cast<size_t>(kTokens));
    for (int t = 0; t < kTokens; ++t) plain[t].push_back(a[t]), spec[t].push_back(b[t]);
    drafted += st.drafted;
    accepted += st.accepted;
    if (seed < 3) {
      EXPECT_EQ(b, GenerateIds(*e, prompt, d->get(), sp, kTokens)) << "seed " << seed;
    }
  }
  EXPECT_GT(drafted, 0u);
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, drafted);
  for (int t = 1; t < kTokens; ++t) {
    double chi = 0;
    int df = 0;
    EXPECT_TRUE(SameDistribution(plain[t], spec[t], &chi, &df)) << "position " << t << ": chi2 " << chi << ", df " << df;
  }
  // The test has power: the drafts' own distribution is far from the target's.
  std::vector<int32_t> uniform;
  std::mt19937 rng(5);
  for (int i = 0; i < kRuns; ++i) uniform.push_back(static_cast<int32_t>(rng() % 512));
  double chi = 0;
  int df = 0;
  EXPECT_FALSE(SameDistribution(plain[1], uniform, &chi, &df));
}

// --draft self: a Q8_0 (Q4_0) copy drafts for the model; greedy ids unchanged, most
// drafts accepted; the copy is made once, reused, and rebuilt when the model changes.
TEST(SelfDraft, QuantisedCopyDraftsAndIsRebuiltWhenTheModelChanges) {
  const std::string home = ::testing::TempDir() + "/speculative_test_home";
  std::filesystem::remove_all(home);
  ::setenv("SPOOL_HOME", home.c_str(), 1);
  const std::string target = SyntheticModel("selfdraft", 384, 21, 128, 3);
  for (const char* type : {"self", "self:q4_0"}) {
    SCOPED_TRACE(type);
    EngineOptions o = Options(false);
    o.draft_model = type;
    o.max_draft = 6;
    auto e = Open(target, o);
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->self_draft_built());
    ASSERT_NE(e->draft_engine(), nullptr);
    const auto* wq = e->draft_engine()->source().FindTensor("model.layers.0.self_attn.q_proj.weight");
    ASSERT_NE(wq, nullptr);
    EXPECT_EQ(wq->dtype, std::string(type) == "self" ? DType::kQ8_0 : DType::kQ4_0);
    EXPECT_EQ(e->draft_engine()->source().FindTensor("model.norm.weight")->dtype, DType::kBF16);  // copied
    SpeculativeOptions so;
    so.draft_model = true;
    so.max_draft = 6;
    auto d = MakeDrafter(*e, so);
    ASSERT_TRUE(d.ok());
    for (const auto& sp : SamplingCases()) {
      SpecStats st;
      EXPECT_EQ(GenerateIds(*e, RandomIds(12, 384, 3), nullptr, sp, 50),
                GenerateIds(*e, RandomIds(12, 384, 3), d->get(), sp, 50, &st));
      if (sp.temperature == 0) {
        EXPECT_GT(st.accepted * 2, st.drafted) << st.accepted << " of " << st.drafted;
      }
    }
    auto again = Open(target, o);
    ASSERT_NE(again, nullptr);
    EXPECT_FALSE(again->self_draft_built());  // reused
  }
  // The model changes (other weights, same path): a new copy.
  std::filesystem::remove_all(target);
  SyntheticModel("selfdraft", 384, 22, 128, 3);
  EngineOptions o = Options(false);
  o.draft_model = "self";
  auto e = Open(target, o);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->self_draft_built());
  size_t copies = 0;
  for (auto& f : std::filesystem::directory_iterator(home + "/drafts")) copies += f.path().extension() == ".spd";
  EXPECT_EQ(copies, 3u);
  o.draft_model = "self:q2_k";
  EXPECT_FALSE(Engine::Open(target, o).ok());
  ::unsetenv("SPOOL_HOME");
}

TEST(SpecLookup, ProposesWhatFollowedTheLatestLongestMatch) {
  PromptLookupDrafter d(3, 1, 4);
  std::vector<int32_t> out;
  // ... 1 2 3 [9 9] ... 1 2 3 [7 8 6 5 4] ... 1 2 3  → the latest match of "1 2 3".
  const std::vector<int32_t> ctx = {1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 6, 5, 4, 2, 3, 1, 2, 3};
  ASSERT_TRUE(d.Draft(ctx, 8, &out).ok());
  EXPECT_EQ(out, (std::vector<int32_t>{7, 8, 6, 5}));
  ASSERT_TRUE(d.Draft(ctx, 2, &out).ok());
  EXPECT_EQ(out, (std::vector<int32_t>{7, 8}));
  // No 3-gram or 2-gram match; the 1-gram "5" matched.
  ASSERT_TRUE(d.Draft(std::vector<int32_t>{5, 6, 7, 8, 9, 5}, 8, &out).ok());
  EXPECT_EQ(out, (std::vector<int32_t>{6, 7, 8, 9}));
  ASSERT_TRUE(d.Draft(std::vector<int32_t>{1, 2, 3}, 8, &out).ok());
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace spool::runtime
