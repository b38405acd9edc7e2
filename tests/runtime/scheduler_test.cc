// Engine::Step and the Scheduler: a step that mixes prefill chunks of several
// sequences with decode tokens of others gives every row exactly the logits it gets
// alone (bf16 weights: per-chunk GEMM; f16, f32), and the scheduler admits a burst
// of requests into one step, prefills long prompts chunk by chunk beside decoding
// sequences, and returns the same greedy tokens as when each request runs alone.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "runtime/session_store.h"
#include "synthetic_model.h"

namespace spool::runtime {
namespace {

std::string SyntheticModelDir() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "/scheduler_test_model";
    testing::SyntheticShape s;
    s.n_layer = 2;
    s.n_embd = 128;
    s.n_ff = 320;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_vocab = 384;
    const std::string err = testing::WriteSyntheticLlama(d, s, /*seed=*/7);
    EXPECT_EQ(err, "");
    return d;
  }();
  return dir;
}

// bf16 (oneDNN GEMM for chunks), f16, f32 with QKV bias, qwen3 q/k norm, a mixture of
// experts with a shared expert (rows routed to different experts share decode steps).
std::vector<std::string> ModelPaths() {
  const std::string fx = std::string(SPOOL_TEST_FIXTURES) + "/models/";
  return {SyntheticModelDir(), fx + "mistral-gqa-f16", fx + "qwen2-bias-tied-f32", fx + "qwen3-qknorm-bf16",
          fx + "qwen2-moe-shared-f32"};
}

std::unique_ptr<Engine> OpenEngine(const std::string& path, int64_t prefill_chunk, int max_active = 1) {
  EngineOptions o;
  o.threads = 2;
  o.ctx = 256;
  o.prefill_chunk = prefill_chunk;
  o.load_tokenizer = false;
  o.kv_window = 0;
  PlanForScheduler(&o, max_active);
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

bool SameBits(const std::vector<float>& a, const float* b) {
  return std::memcmp(a.data(), b, a.size() * sizeof(float)) == 0;
}

TEST(EngineStep, MixedStepRowsAreBitIdenticalToEachAlone) {
  for (const std::string& path : ModelPaths()) {
    SCOPED_TRACE(path);
    auto e = OpenEngine(path, /*prefill_chunk=*/64);
    ASSERT_NE(e, nullptr);
    const int64_t V = e->n_vocab();
    const auto pa = RandomIds(37, V, 1), pb = RandomIds(5, V, 2), pc = RandomIds(12, V, 3), pd = RandomIds(20, V, 4);
    const int32_t tb = 11, tc = 29;

    // Alone: A and D prefilled by themselves; B and C prefilled, then one decode each.
    std::vector<float> la(V), ld(V), lb(V), lc(V), scratch(V);
    {
      auto a = e->NewSequence(), d = e->NewSequence(), b = e->NewSequence(), c = e->NewSequence();
      ASSERT_TRUE(e->Prefill(*a, pa, la.data()).ok());
      ASSERT_TRUE(e->Prefill(*d, pd, ld.data()).ok());
      ASSERT_TRUE(e->Prefill(*b, pb, scratch.data()).ok());
      ASSERT_TRUE(e->Prefill(*c, pc, scratch.data()).ok());
      Sequence* one[] = {b.get()};
      ASSERT_TRUE(e->Decode(one, std::span<const int32_t>(&tb, 1), lb.data()).ok());
      one[0] = c.get();
      ASSERT_TRUE(e->Decode(one, std::span<const int32_t>(&tc, 1), lc.data()).ok());
    }
    // Together: B and C decode while A and D prefill, all in one step.
    auto a = e->NewSequence(), d = e->NewSequence(), b = e->NewSequence(), c = e->NewSequence();
    ASSERT_TRUE(e->Prefill(*b, pb, scratch.data()).ok());
    ASSERT_TRUE(e->Prefill(*c, pc, scratch.data()).ok());
    const Engine::StepItem items[] = {{b.get(), std::span<const int32_t>(&tb, 1), false},
                                      {c.get(), std::span<const int32_t>(&tc, 1), false},
                                      {a.get(), pa, false},
                                      {d.get(), pd, false}};
    std::vector<float> out(4 * V);
    ASSERT_TRUE(e->Step(items, out.data()).ok());
    EXPECT_TRUE(SameBits(lb, out.data() + 0 * V));
    EXPECT_TRUE(SameBits(lc, out.data() + 1 * V));
    EXPECT_TRUE(SameBits(la, out.data() + 2 * V));
    EXPECT_TRUE(SameBits(ld, out.data() + 3 * V));
    EXPECT_EQ(a->n_tokens(), 37);
    EXPECT_EQ(b->n_tokens(), 6);
  }
}

// A mixture-of-experts block that keeps its per-(row, expert) outputs (m · top-k · hidden
// up to FeedForward::kMoeKeptOutputsMax: 256 rows here) after a larger block that did not
// (a 512-row prefill chunk) — a server's second turn after a long first one. Its scratch
// must still fit: the same logits, bit for bit, as an engine that never ran the large block
// (this crashed in memcpy before FeedForward::Reserve sized the kept outputs by the rows
// that keep them).
TEST(EngineStep, MoeBlockAfterALargerBlockIsBitIdenticalToAFreshEngine) {
  const std::string dir = ::testing::TempDir() + "/scheduler_test_moe_model";
  testing::SyntheticShape shape;
  shape.n_layer = 1;
  shape.n_embd = 512;
  shape.n_head = 4;
  shape.n_head_kv = 2;
  shape.n_vocab = 256;
  shape.tied = false;
  shape.n_expert = 8;
  shape.n_expert_used = 8;
  shape.moe_ff = 16;
  ASSERT_EQ(testing::WriteSyntheticLlama(dir, shape, /*seed=*/3), "");
  auto open = [&] {
    EngineOptions o;
    o.threads = 2;
    o.ctx = 1024;
    o.prefill_chunk = 512;
    o.load_tokenizer = false;
    o.kv_window = 0;
    auto e = Engine::Open(dir, o);
    EXPECT_TRUE(e.ok()) << e.status().message();
    return e.ok() ? std::move(*e) : nullptr;
  };
  const auto prompt = RandomIds(88, shape.n_vocab, 5);
  const int32_t next = 17;
  const int64_t V = shape.n_vocab;
  auto run = [&](Engine& e, std::vector<float>& prefill_logits, std::vector<float>& decode_logits) {
    prefill_logits.assign(V, 0.0f);
    decode_logits.assign(V, 0.0f);
    auto s = e.NewSequence();
    ASSERT_TRUE(e.Prefill(*s, prompt, prefill_logits.data()).ok());
    Sequence* one[] = {s.get()};
    ASSERT_TRUE(e.Decode(one, std::span<const int32_t>(&next, 1), decode_logits.data()).ok());
  };
  std::vector<float> fresh_prefill, fresh_decode, after_prefill, after_decode;
  {
    auto e = open();
    ASSERT_NE(e, nullptr);
    run(*e, fresh_prefill, fresh_decode);
  }
  auto e = open();
  ASSERT_NE(e, nullptr);
  {
    auto big = e->NewSequence();
    std::vector<float> scratch(V);
    ASSERT_TRUE(e->Prefill(*big, RandomIds(512, V, 6), scratch.data()).ok());  // one 512-row block
  }
  run(*e, after_prefill, after_decode);
  EXPECT_TRUE(SameBits(fresh_prefill, after_prefill.data()));
  EXPECT_TRUE(SameBits(fresh_decode, after_decode.data()));
}

TEST(EngineStep, RejectsBadItemsWithoutChangingAnySequence) {
  auto e = OpenEngine(SyntheticModelDir(), 64);
  ASSERT_NE(e, nullptr);
  auto a = e->NewSequence();
  std::vector<float> out(2 * e->n_vocab());
  const std::vector<int32_t> good = {1, 2, 3}, bad = {1, static_cast<int32_t>(e->n_vocab())};
  const Engine::StepItem twice[] = {{a.get(), good, false}, {a.get(), good, false}};
  EXPECT_FALSE(e->Step(twice, out.data()).ok());
  auto b = e->NewSequence();
  const Engine::StepItem mixed[] = {{a.get(), good, false}, {b.get(), bad, false}};
  Status st = e->Step(mixed, out.data());
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(a->n_tokens(), 0);
  EXPECT_EQ(b->n_tokens(), 0);
}

struct Outcome {
  std::vector<int32_t> ids;
  std::string finish;
  int64_t cached = 0;
  bool error = false;
};

Outcome Wait(RequestHandle& h) {
  Outcome o;
  RequestHandle::Event ev;
  for (;;) {
    EXPECT_TRUE(h.Next(&ev, 60000)) << "no event within 60 s";
    if (ev.kind == RequestHandle::Event::Kind::kDone) {
      o.ids = ev.completion.ids;
      o.finish = ev.completion.finish_reason;
      o.cached = ev.completion.cached_prompt_tokens;
      return o;
    }
    if (ev.kind == RequestHandle::Event::Kind::kError) {
      o.error = true;
      return o;
    }
  }
}

std::vector<ScheduledRequest> Requests(int64_t n_vocab) {
  // Prompt lengths: short ones, one exactly a chunk, and a long one of 3+ chunks.
  const int64_t lens[] = {5, 17, 64, 9, 150, 33};
  std::vector<ScheduledRequest> rs;
  for (size_t i = 0; i < std::size(lens); ++i) {
    ScheduledRequest r;
    r.prompt = RandomIds(lens[i], n_vocab, 100 + static_cast<uint32_t>(i));
    r.max_tokens = 8 + static_cast<int64_t>(i);
    r.ignore_eos = true;
    r.reuse_prefix = false;
    rs.push_back(std::move(r));
  }
  return rs;
}

TEST(Scheduler, BurstSharesStepsAndGivesTheTokensOfEachAlone) {
  for (const std::string& path : ModelPaths()) {
    SCOPED_TRACE(path);
    auto e = OpenEngine(path, /*prefill_chunk=*/64, /*max_active=*/8);
    ASSERT_NE(e, nullptr);
    const auto reqs = Requests(e->n_vocab());

    std::vector<Outcome> alone;
    {
      SchedulerOptions so;
      so.max_active = 1;
      so.prefix_cache_entries = 0;
      Scheduler s(*e, so);
      for (const auto& r : reqs) alone.push_back(Wait(*s.Submit(r)));
    }
    SchedulerOptions so;
    so.max_active = 8;
    so.prefix_cache_entries = 0;
    Scheduler s(*e, so);
    auto handles = s.SubmitMany(reqs);
    for (size_t i = 0; i < handles.size(); ++i) {
      Outcome o = Wait(*handles[i]);
      ASSERT_FALSE(o.error);
      EXPECT_EQ(o.finish, "length");
      EXPECT_EQ(o.ids, alone[i].ids) << "request " << i;
      EXPECT_EQ(o.ids.size(), reqs[i].max_tokens);
    }
    // All six were admitted together. Row budget 4 × 64 = 256: step 1 holds the 5-,
    // 17-, 64-, 9-token prompts, the first 64 of the 150 and ... the 33-token one
    // (5+17+64+9+64+33 = 192 rows); the long prompt needs two more chunk steps while
    // the others decode. Longest request: 150-token prompt (3 chunks) + 12 tokens →
    // 3 prefill steps then 11 decode steps = 14 steps. One admission per step (the
    // old scheduler) needs at least 6 + 3 - 1 + 11 steps.
    const SchedulerStats st = s.stats();
    EXPECT_EQ(st.steps, 14);
    EXPECT_EQ(st.requests_done, 6);
  }
}

TEST(Scheduler, BadRequestInABurstFailsAloneAndOthersFinish) {
  auto e = OpenEngine(SyntheticModelDir(), 64, 4);
  ASSERT_NE(e, nullptr);
  auto reqs = Requests(e->n_vocab());
  reqs.resize(3);
  reqs[1].prompt[2] = static_cast<int32_t>(e->n_vocab()) + 5;  // out of the vocabulary
  SchedulerOptions so;
  so.max_active = 4;
  Scheduler s(*e, so);
  auto handles = s.SubmitMany(reqs);
  EXPECT_FALSE(Wait(*handles[0]).error);
  EXPECT_TRUE(Wait(*handles[1]).error);
  EXPECT_FALSE(Wait(*handles[2]).error);
  EXPECT_EQ(s.stats().requests_failed, 1);
}

// ---- scope of the prefix cache, disk sessions ----

ScheduledRequest Req(std::vector<int32_t> prompt, std::string tenant, std::string key, int64_t max_tokens = 6) {
  ScheduledRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  r.tenant = std::move(tenant);
  r.cache_key = std::move(key);
  return r;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Scheduler, PrefixCacheIsScopedToTenantAndSession) {
  auto e = OpenEngine(SyntheticModelDir(), /*prefill_chunk=*/16, 2);
  ASSERT_NE(e, nullptr);
  const auto secret = RandomIds(80, e->n_vocab(), 42);
  Outcome fresh;
  {
    SchedulerOptions so;
    so.prefix_cache_entries = 0;
    Scheduler s(*e, so);
    fresh = Wait(*s.Submit(Req(secret, "", "")));
  }
  for (bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "shared" : "scoped");
    SchedulerOptions so;
    so.max_active = 2;
    so.shared_prefix_cache = shared;
    Scheduler s(*e, so);
    EXPECT_EQ(Wait(*s.Submit(Req(secret, "tenantA", "alice"))).cached, 0);
    // Another tenant with the same session name, the same tenant with another session,
    // and no session at all: none may see alice's prefix unless the cache is shared.
    for (auto [tenant, key] : {std::pair{"tenantB", "alice"}, std::pair{"tenantA", "bob"}, std::pair{"", ""}}) {
      SCOPED_TRACE(std::string(tenant) + "/" + key);
      Outcome o = Wait(*s.Submit(Req(secret, tenant, key)));
      EXPECT_EQ(o.cached, shared ? 64 : 0);  // 79 tokens may be reused, cut to whole chunks of 16
      EXPECT_EQ(o.ids, fresh.ids);
    }
    Outcome own = Wait(*s.Submit(Req(secret, "tenantA", "alice")));
    EXPECT_EQ(own.cached, 64);
    EXPECT_EQ(own.ids, fresh.ids);
    EXPECT_EQ(s.stats().cached_prompt_tokens, shared ? 4 * 64 : 64);
  }
}

std::string FreshDir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/" + name;
  std::filesystem::remove_all(d);
  return d;
}

TEST(Scheduler, NamedSessionsSurviveARestartOfTheScheduler) {
  auto e = OpenEngine(SyntheticModelDir(), /*prefill_chunk=*/16, 2);
  ASSERT_NE(e, nullptr);
  const std::string dir = FreshDir("sched_sessions");
  const auto turn1 = RandomIds(70, e->n_vocab(), 5), more = RandomIds(20, e->n_vocab(), 6);
  Outcome first;
  {
    auto store = SessionStore::Open({dir, 0});
    ASSERT_TRUE(store.ok()) << store.status().message();
    SchedulerOptions so;
    so.session_store = store->get();
    Scheduler s(*e, so);
    first = Wait(*s.Submit(Req(turn1, "t", "conv", 8)));
    Wait(*s.Submit(Req(RandomIds(40, e->n_vocab(), 7), "t", "", 4)));  // no session: never written
    s.Shutdown();
    EXPECT_EQ(s.stats().session_spills, 1);
    ASSERT_EQ((*store)->List("t").size(), 1u);
    EXPECT_EQ((*store)->List("t")[0].tokens, 70 + 7);  // the last generated token is not fed
    EXPECT_TRUE((*store)->List("other").empty());
  }
  // The next turn: the conversation so far plus new tokens.
  const auto turn2 = Concat(Concat(turn1, first.ids), more);
  Outcome fresh;
  {
    SchedulerOptions so;
    so.prefix_cache_entries = 0;
    Scheduler s(*e, so);
    fresh = Wait(*s.Submit(Req(turn2, "", "")));
  }
  auto store = SessionStore::Open({dir, 0});
  ASSERT_TRUE(store.ok());
  SchedulerOptions so;
  so.session_store = store->get();
  Scheduler s(*e, so);
  // One server per folder.
  auto second = SessionStore::Open({dir, 0});
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another spool serve"), std::string::npos) << second.status().message();
  // Another tenant using the same id does not get it.
  EXPECT_EQ(Wait(*s.Submit(Req(turn2, "intruder", "conv"))).cached, 0);
  EXPECT_EQ(s.stats().session_loads, 0);
  Outcome resumed = Wait(*s.Submit(Req(turn2, "t", "conv")));
  EXPECT_EQ(resumed.cached, 64);  // 77 stored tokens match, cut to whole chunks
  EXPECT_EQ(resumed.ids, fresh.ids);
  EXPECT_EQ(s.stats().session_loads, 1);
  // Forgotten: neither in RAM nor on disk.
  EXPECT_TRUE(s.ForgetSession("t", "conv"));
  EXPECT_FALSE(s.ForgetSession("t", "conv"));
  EXPECT_TRUE((*store)->List("t").empty());
  EXPECT_EQ(Wait(*s.Submit(Req(turn2, "t", "conv"))).cached, 0);
}

TEST(Scheduler, EvictedSessionsSpillAndTheDiskLimitDropsTheLeastRecentlyUsed) {
  auto e = OpenEngine(SyntheticModelDir(), /*prefill_chunk=*/16, 1);
  ASSERT_NE(e, nullptr);
  const std::string dir = FreshDir("sched_sessions_lru");
  // Each session file of ~40 tokens is 2 layers × 40 × 2 × 64 × 2 bytes ≈ 20 KiB + metadata.
  auto store = SessionStore::Open({dir, 50 << 10});
  ASSERT_TRUE(store.ok());
  SchedulerOptions so;
  so.max_active = 1;
  so.prefix_cache_entries = 1;
  so.session_store = store->get();
  Scheduler s(*e, so);
  for (int i = 0; i < 4; ++i) Wait(*s.Submit(Req(RandomIds(36, e->n_vocab(), 50 + i), "t", "s" + std::to_string(i), 4)));
  // ListSessions runs on the scheduler thread, after the last step's retirement.
  auto sessions = s.ListSessions("t");
  // s0, s1, s2 were evicted from RAM (one entry) and spilled; s3 is still in RAM.
  EXPECT_EQ(s.stats().session_spills, 3);
  ASSERT_EQ(sessions.size(), 3u);  // s0 was dropped to keep the disk under 50 KiB
  EXPECT_EQ(sessions[0].id, "s3");
  EXPECT_TRUE(sessions[0].in_memory && !sessions[0].on_disk);
  EXPECT_EQ(sessions[1].id, "s2");
  EXPECT_TRUE(sessions[1].on_disk && sessions[1].bytes > 0);
  EXPECT_EQ(sessions[2].id, "s1");
  EXPECT_LE((*store)->total_bytes(), 50u << 10);
}

TEST(Scheduler, DamagedSessionFileIsIgnoredAndTheRequestRecomputes) {
  auto e = OpenEngine(SyntheticModelDir(), /*prefill_chunk=*/16, 1);
  ASSERT_NE(e, nullptr);
  const std::string dir = FreshDir("sched_sessions_bad");
  const auto prompt = RandomIds(50, e->n_vocab(), 9);
  Outcome first;
  {
    auto store = SessionStore::Open({dir, 0});
    ASSERT_TRUE(store.ok());
    SchedulerOptions so;
    so.session_store = store->get();
    Scheduler s(*e, so);
    first = Wait(*s.Submit(Req(prompt, "t", "x")));
  }
  std::string file;
  for (const auto& f : std::filesystem::directory_iterator(dir)) file = f.path();
  ASSERT_FALSE(file.empty());
  {
    // Flip a byte in the last KV record (the metadata stays valid, so the damage is
    // only found by the record checksum when the session is loaded).
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-20, std::ios::end);
    char c;
    f.read(&c, 1);
    c ^= 0x5a;
    f.seekp(-20, std::ios::end);
    f.write(&c, 1);
  }
  auto store = SessionStore::Open({dir, 0});
  ASSERT_TRUE(store.ok());
  SchedulerOptions so;
  so.session_store = store->get();
  Scheduler s(*e, so);
  Outcome again = Wait(*s.Submit(Req(prompt, "t", "x")));
  EXPECT_FALSE(again.error);
  EXPECT_EQ(again.cached, 0);
  EXPECT_EQ(again.ids, first.ids);
  EXPECT_EQ(s.stats().session_errors, 1);
  EXPECT_EQ(s.stats().session_loads, 0);
}

// Sliding-window layers (Gemma 3 fixture: layers 0-4 slide over 4 tokens; pages and
// chunks of 4): a cached or stored conversation continues from its prefix when its
// sliding layers still hold the window before the cut (40 cached prompt tokens: they
// hold 36 on, the cut at 40 needs 37 on), and a prompt that branches off before the
// released rows reuses nothing. Every reply equals the cold run's. (One generated
// token, never fed: a reused KV row of a generated token comes from the decode path,
// not the prefill GEMM a cold run uses, so only prompt rows are reused here.)
TEST(Scheduler, SlidingWindowPrefixReuseKeepsTheWindow) {
  EngineOptions o;
  o.threads = 2;
  o.ctx = 256;
  o.prefill_chunk = 4;
  o.kv_page_tokens = 4;
  o.load_tokenizer = false;
  o.kv_window = 0;
  PlanForScheduler(&o, 1);
  auto opened = Engine::Open(std::string(SPOOL_TEST_FIXTURES) + "/models/gemma3-swa-bf16", o);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  Engine& e = **opened;
  const auto turn1 = RandomIds(40, e.n_vocab(), 21);
  auto cold = [&](const std::vector<int32_t>& prompt, int64_t n) {
    SchedulerOptions so;
    so.prefix_cache_entries = 0;
    Scheduler s(e, so);
    return Wait(*s.Submit(Req(prompt, "", "", n)));
  };
  const Outcome first = cold(turn1, 1);  // 40 tokens in the KV cache
  const auto turn2 = Concat(Concat(turn1, first.ids), RandomIds(10, e.n_vocab(), 22));
  const auto branch = Concat(std::vector<int32_t>(turn1.begin(), turn1.begin() + 24), RandomIds(20, e.n_vocab(), 23));
  const Outcome fresh2 = cold(turn2, 6), fresh_branch = cold(branch, 6);
  {
    SCOPED_TRACE("prefix cache in RAM");
    SchedulerOptions so;
    Scheduler s(e, so);
    EXPECT_EQ(Wait(*s.Submit(Req(turn1, "t", "conv", 1))).ids, first.ids);
    const Outcome b = Wait(*s.Submit(Req(branch, "t", "conv", 6)));
    EXPECT_EQ(b.cached, 0);  // needs rows 21.. of the sliding layers: released
    EXPECT_EQ(b.ids, fresh_branch.ids);
    EXPECT_EQ(Wait(*s.Submit(Req(turn1, "t", "conv", 1))).ids, first.ids);
    const Outcome c = Wait(*s.Submit(Req(turn2, "t", "conv", 6)));
    EXPECT_EQ(c.cached, 40);
    EXPECT_EQ(c.ids, fresh2.ids);
  }
  {
    SCOPED_TRACE("stored session");
    const std::string dir = FreshDir("sched_sessions_swa");
    auto store = SessionStore::Open({dir, 0});
    ASSERT_TRUE(store.ok()) << store.status().message();
    SchedulerOptions so;
    so.prefix_cache_entries = 0;  // straight to the store
    so.session_store = store->get();
    Scheduler s(e, so);
    EXPECT_EQ(Wait(*s.Submit(Req(turn1, "t", "conv", 1))).ids, first.ids);
    const Outcome b = Wait(*s.Submit(Req(branch, "t", "conv", 6)));
    EXPECT_EQ(b.cached, 0);
    EXPECT_EQ(b.ids, fresh_branch.ids);
    EXPECT_EQ(s.stats().session_errors, 0);  // not reusable is no error
    EXPECT_EQ(Wait(*s.Submit(Req(turn1, "t", "conv", 1))).ids, first.ids);
    const Outcome c = Wait(*s.Submit(Req(turn2, "t", "conv", 6)));
    EXPECT_EQ(c.cached, 40);
    EXPECT_EQ(c.ids, fresh2.ids);
    EXPECT_GE(s.stats().session_loads, 1);
  }
}

TEST(SessionStore, OpensOnlyFilesThatAreServerSessionsOfTheirName) {
  auto e = OpenEngine(SyntheticModelDir(), /*prefill_chunk=*/16, 1);
  ASSERT_NE(e, nullptr);
  const std::string dir = FreshDir("store_open");
  const std::string evil = "../../x/../etc/passwd";
  {
    auto store = SessionStore::Open({dir, 0});
    ASSERT_TRUE(store.ok());
    auto seq = e->NewSequence();
    std::vector<float> logits(e->n_vocab());
    ASSERT_TRUE(e->Prefill(*seq, RandomIds(20, e->n_vocab(), 3), logits.data()).ok());
    ASSERT_TRUE((*store)->Save(*e, "t", "good", *seq, 1000).ok());
    ASSERT_TRUE((*store)->Save(*e, "t", evil, *seq, 2000).ok());
    EXPECT_FALSE((*store)->Save(*e, "t", std::string(SessionStore::kMaxIdBytes + 1, 'x'), *seq, 1).ok());
    // A `spool run --session` file (no server_session settings) in the folder.
    ASSERT_TRUE(e->SaveSession(dir + "/plain.session", *seq, {}, nlohmann::ordered_json::object()).ok());
  }
  std::vector<std::string> names;
  for (const auto& f : std::filesystem::directory_iterator(dir)) names.push_back(f.path().filename());
  for (const auto& n : names)
    if (n != ".lock" && n != "plain.session")
      EXPECT_EQ(n.size(), 40u + 8u) << n;  // hex digest + ".session": the id never names a file
  EXPECT_FALSE(std::filesystem::exists(dir + "/../etc"));
  // A server session copied under another session's name is not that session.
  StoredSession good;
  {
    auto store = SessionStore::Open({dir, 0});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Find("t", "good", &good));
    StoredSession bad;
    ASSERT_TRUE((*store)->Find("t", evil, &bad));
    std::filesystem::copy_file(dir + "/" + good.file, dir + "/" + bad.file, std::filesystem::copy_options::overwrite_existing);
  }
  auto store = SessionStore::Open({dir, 0});
  ASSERT_TRUE(store.ok());
  const auto listed = (*store)->List("t");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, "good");
  EXPECT_EQ(listed[0].tokens, 20);
  EXPECT_TRUE((*store)->List("").empty());
  EXPECT_FALSE((*store)->Load(*e, "t", evil).ok());
  auto loaded = (*store)->Load(*e, "t", "good");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ((*loaded)->n_tokens(), 20);
  EXPECT_EQ((*store)->Load(*e, "other", "good").status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE((*store)->Remove("t", "good"));
  EXPECT_FALSE((*store)->Remove("t", "good"));
}

}  // namespace
}  // namespace spool::runtime
