#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "base/log.h"
#include "base/timer.h"
#include "runtime/session_store.h"
#include "tokenizer/tokenizer.h"

namespace spool::runtime {

// ---- RequestHandle ----

bool RequestHandle::Next(Event* event, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestHandle::Push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// ---- per-request state on the scheduler thread ----

struct Scheduler::Active {
  ScheduledRequest req;
  std::shared_ptr<RequestHandle> handle;
  std::unique_ptr<Sequence> seq;
  std::unique_ptr<sampling::Sampler> sampler;
  std::unique_ptr<tokenizer::StreamingDecoder> decoder;
  Completion result;
  size_t emitted = 0;       // bytes of result.text already sent as kText
  int32_t next_token = -1;  // sampled but not yet fed to the model
  double decode_start = 0;
  double admit_time = 0;
  // Prefill progress: prompt tokens [0, prefill_next) are in seq; the rest go in one
  // chunk per step. Decoding starts when the whole prompt is in.
  bool prefilling = true;
  int64_t prefill_next = 0;
  // Speculative decoding (nullptr: off): the draft tree fed this step after next_token
  // (a chain, or with tree_nodes a tree: parent, tree_rows), and the rows accepted.
  std::unique_ptr<Drafter> drafter;
  DraftTree draft;
  std::vector<int32_t> fed, context, parent, path;
  models::TreeRows tree_rows;
};

namespace {

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Earliest position >= from where a stop string starts, or npos.
size_t FindStop(const std::string& text, const std::vector<std::string>& stops, size_t from) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    size_t p = text.find(s, from);
    if (p < best) best = p;
  }
  return best;
}

// Length of the longest suffix of `text` that is a proper prefix of a stop string:
// held back until we know whether the stop string follows.
size_t HeldBack(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  }
  return hold;
}

}  // namespace

// ---- Scheduler ----

Scheduler::Scheduler(Engine& engine, SchedulerOptions options) : engine_(engine), options_(options) {
  if (options_.max_active < 1) options_.max_active = 1;
  if (options_.prefix_cache_entries < 0) options_.prefix_cache_entries = 0;
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() { Shutdown(); }

void Scheduler::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The thread is gone, so this one may call the Engine. The newest entry of each
  // named session goes to the store (cache_ is most recent first).
  if (options_.session_store) {
    std::set<std::pair<std::string, std::string>> seen;
    for (CacheEntry& e : cache_)
      if (!e.key.empty() && seen.insert({e.tenant, e.key}).second) Spill(e);
  }
  std::lock_guard<std::mutex> lock(mu_);
  shut_down_ = true;
}

bool Scheduler::RunOnLoop(std::function<void()> fn) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return false;
    tasks_.push_back([fn = std::move(fn), done] {
      fn();
      done->set_value();
    });
  }
  cv_.notify_all();
  finished.wait();
  return true;
}

void Scheduler::RunTasks() {
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
}

std::vector<SessionSummary> Scheduler::ListSessions(const std::string& tenant) {
  std::vector<SessionSummary> out;
  RunOnLoop([&] {
    std::map<std::string, SessionSummary> by_id;
    auto add_ram = [&](const std::string& t, const std::string& key, const Sequence* seq, int64_t used_ms) {
      if (t != tenant || key.empty()) return;
      SessionSummary& s = by_id[key];
      s.id = key;
      s.in_memory = true;
      s.tokens = std::max<int64_t>(s.tokens, seq ? seq->n_tokens() : 0);
      s.last_used_ms = std::max(s.last_used_ms, used_ms);
    };
    for (const CacheEntry& e : cache_) add_ram(e.tenant, e.key, e.seq.get(), e.last_used_ms);
    for (const auto& a : active_) add_ram(a->req.tenant, a->req.cache_key, a->seq.get(), UnixMs());
    if (options_.session_store) {
      for (const StoredSession& d : options_.session_store->List(tenant)) {
        SessionSummary& s = by_id[d.id];
        s.id = d.id;
        s.on_disk = true;
        s.bytes = d.bytes;
        if (!s.in_memory) s.tokens = d.tokens;  // RAM holds the newer state
        s.last_used_ms = std::max(s.last_used_ms, d.last_used_ms);
      }
    }
    for (auto& [id, s] : by_id) out.push_back(std::move(s));
    std::sort(out.begin(), out.end(), [](const SessionSummary& a, const SessionSummary& b) {
      return a.last_used_ms != b.last_used_ms ? a.last_used_ms > b.last_used_ms : a.id < b.id;
    });
  });
  return out;
}

bool Scheduler::ForgetSession(const std::string& tenant, const std::string& id) {
  bool found = false;
  RunOnLoop([&] {
    cache_.remove_if([&](const CacheEntry& e) {
      const bool match = e.tenant == tenant && e.key == id;
      found = found || match;
      return match;
    });
    if (options_.session_store && options_.session_store->Remove(tenant, id)) found = true;
  });
  return found;
}

void Scheduler::Spill(CacheEntry& e) {
  SessionStore* store = options_.session_store;
  if (!store || e.key.empty() || !e.dirty || !e.seq || e.seq->n_tokens() == 0) return;
  Status st = store->Save(engine_, e.tenant, e.key, *e.seq, e.last_used_ms);
  e.dirty = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (st.ok()) {
    ++stats_.session_spills;
  } else {
    ++stats_.session_errors;
    SPOOL_LOG_WARN("spool serve: a session was not saved: %s", st.message().c_str());
  }
}

std::shared_ptr<RequestHandle> Scheduler::Submit(ScheduledRequest request) {
  auto handle = std::make_shared<RequestHandle>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Pending{std::move(request), handle, NowSeconds()});
    stats_.queued = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return handle;
}

std::vector<std::shared_ptr<RequestHandle>> Scheduler::SubmitMany(std::vector<ScheduledRequest> requests) {
  std::vector<std::shared_ptr<RequestHandle>> handles;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const double now = NowSeconds();
    for (auto& r : requests) {
      handles.push_back(std::make_shared<RequestHandle>());
      queue_.push_back(Pending{std::move(r), handles.back(), now});
    }
    stats_.queued = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return handles;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Scheduler::Loop() {
  for (;;) {
    std::vector<Pending> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !active_.empty() || !tasks_.empty(); });
      if (stop_) break;
      // Every waiting request that fits joins now: their prefills share steps.
      while (!queue_.empty() && static_cast<int>(active_.size() + admitted.size()) < options_.max_active) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queued = static_cast<int64_t>(queue_.size());
    }
    RunTasks();
    for (Pending& p : admitted) Admit(std::move(p));
    if (!active_.empty()) Step();
    std::lock_guard<std::mutex> lock(mu_);
    stats_.active = static_cast<int64_t>(active_.size());
    stats_.prefilling = stats_.prefill_tokens_done = stats_.prefill_tokens_total = 0;
    for (const auto& a : active_) {
      if (!a->prefilling) continue;
      ++stats_.prefilling;
      stats_.prefill_tokens_done += a->prefill_next;
      stats_.prefill_tokens_total += static_cast<int64_t>(a->req.prompt.size());
    }
  }
  // Shutting down: everything still waiting or running ends with an error event.
  std::deque<Pending> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rest.swap(queue_);
  }
  RequestHandle::Event e;
  e.kind = RequestHandle::Event::Kind::kError;
  e.error = Cancelled("the server is shutting down");
  for (auto& p : rest) p.handle->Push(e);
  // Running sequences hold committed KV for their tokens: they join the cache (and so
  // reach the session store at Shutdown).
  for (auto& a : active_) {
    a->handle->Push(e);
    if (a->seq) Retire(std::move(a->seq), a->req);
  }
  active_.clear();
  RunTasks();  // queued before stop_: their callers are waiting
}

std::unique_ptr<Sequence> Scheduler::TakeCached(const ScheduledRequest& r, int64_t* reused) {
  *reused = 0;
  const std::vector<int32_t>& prompt = r.prompt;
  // At least the last prompt token is always fed: its logits pick the first new token.
  const int64_t limit = static_cast<int64_t>(prompt.size()) - 1;
  const int64_t chunk = std::max<int64_t>(1, engine_.options().prefill_chunk);
  auto reusable = [&](const std::vector<int32_t>& toks) {
    int64_t n = std::min<int64_t>(limit, static_cast<int64_t>(toks.size()));
    int64_t common = 0;
    while (common < n && toks[common] == prompt[common]) ++common;
    // Reuse whole prefill chunks only: the rest is fed in the same chunks a fresh
    // prefill would use, so a reused prefix gives bit-identical logits.
    return common - common % chunk;
  };
  // A sliding-window layer keeps only its window: a prefix it already released part of
  // the window of cannot be resumed (kv::CheckTruncateKeepsWindow), so it reuses nothing.
  auto keeps_window = [&](Sequence& s, int64_t common) {
    return common > 0 && kv::CheckTruncateKeepsWindow(s.kv(), common).ok();
  };
  auto best = cache_.end();
  int64_t best_common = 0;
  bool best_own = false, own_in_ram = false;
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    const bool own = it->tenant == r.tenant && it->key == r.cache_key;
    own_in_ram = own_in_ram || own;
    // Another scope's entry is invisible (not even its prefix length leaks) unless
    // the server opted into a shared cache.
    if (!own && !options_.shared_prefix_cache) continue;
    int64_t common = reusable(it->seq->tokens());
    if (!keeps_window(*it->seq, common)) common = 0;
    if (common > best_common || (common == best_common && common > 0 && own && !best_own)) {
      best = it;
      best_common = common;
      best_own = own;
    }
  }
  // A named session with no entry in RAM resumes from the store when that reuses more.
  SessionStore* store = options_.session_store;
  if (!own_in_ram && store && !r.cache_key.empty()) {
    auto note_error = [&](const Status& st) {
      SPOOL_LOG_WARN("spool serve: ignoring a stored session: %s", st.message().c_str());
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.session_errors;
    };
    auto toks = store->PeekTokens(r.tenant, r.cache_key);
    if (!toks.ok()) {
      if (toks.status().code() != ErrorCode::kNotFound) note_error(toks.status());
    } else if (const int64_t common = reusable(*toks); common > best_common) {
      auto loaded = store->Load(engine_, r.tenant, r.cache_key);
      if (!loaded.ok()) {
        note_error(loaded.status());
      } else if (reusable((*loaded)->tokens()) < common) {
        note_error(InvalidFile("the session file changed while it was read"));
      } else if (!keeps_window(**loaded, common)) {
        // Stored past the window of a sliding layer: the prefix cannot be resumed.
      } else if (Status tst = engine_.Truncate(**loaded, common); !tst.ok()) {
        note_error(tst);
      } else {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.session_loads;
        *reused = common;
        return std::move(*loaded);
      }
    }
  }
  if (best == cache_.end() || best_common == 0) return engine_.NewSequence();
  std::unique_ptr<Sequence> seq = std::move(best->seq);
  cache_.erase(best);
  if (!engine_.Truncate(*seq, best_common).ok()) return engine_.NewSequence();
  *reused = best_common;
  return seq;
}

void Scheduler::Retire(std::unique_ptr<Sequence> seq, const ScheduledRequest& r) {
  if (!seq || seq->n_tokens() == 0) return;
  CacheEntry entry{std::move(seq), r.tenant, r.cache_key, UnixMs(), /*dirty=*/true};
  if (options_.prefix_cache_entries == 0) {
    Spill(entry);  // no RAM cache: a named session goes straight to the store
    return;
  }
  // An entry of the same scope whose tokens are a prefix of this sequence is
  // superseded by it (other scopes' entries are left alone).
  const auto& toks = entry.seq->tokens();
  cache_.remove_if([&](const CacheEntry& e) {
    const auto& t = e.seq->tokens();
    return e.tenant == entry.tenant && e.key == entry.key && t.size() <= toks.size() &&
           std::equal(t.begin(), t.end(), toks.begin());
  });
  cache_.push_front(std::move(entry));
  while (static_cast<int>(cache_.size()) > options_.prefix_cache_entries) {
    CacheEntry& victim = cache_.back();
    // Spilled unless a newer entry of the same session stays in RAM (that one is
    // the session's state and reaches the store later).
    const bool newer = std::any_of(cache_.begin(), std::prev(cache_.end()), [&](const CacheEntry& e) {
      return e.tenant == victim.tenant && e.key == victim.key;
    });
    if (!newer) Spill(victim);
    cache_.pop_back();
  }
}

void Scheduler::Admit(Pending p) {
  auto fail = [&](Status st) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.requests_failed;
    }
    RequestHandle::Event e;
    e.kind = RequestHandle::Event::Kind::kError;
    e.error = std::move(st);
    p.handle->Push(std::move(e));
  };
  const ScheduledRequest& r = p.request;
  if (r.prompt.empty()) return fail(InvalidArgument("the prompt is empty (at least one token is needed)"));
  if (r.max_tokens < 0) return fail(InvalidArgument("max_tokens must be >= 0, got " + std::to_string(r.max_tokens)));
  if (Status st = r.sampling.Validate(); !st.ok()) return fail(st);
  if (static_cast<int64_t>(r.prompt.size()) > engine_.ctx())
    return fail(InvalidArgument("the prompt has " + std::to_string(r.prompt.size()) + " tokens but the context holds " +
                                std::to_string(engine_.ctx())));
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= engine_.n_vocab())
      return fail(InvalidArgument("token id " + std::to_string(r.prompt[i]) + " at index " + std::to_string(i) +
                                  " is outside the vocabulary [0, " + std::to_string(engine_.n_vocab()) + ")"));

  auto drafter = MakeDrafter(engine_, r.speculative);
  if (!drafter.ok()) return fail(drafter.status());

  auto a = std::make_unique<Active>();
  a->drafter = std::move(*drafter);
  if (a->drafter) a->drafter->SetSampling(r.sampling);
  a->handle = p.handle;
  a->admit_time = NowSeconds();
  a->result.prompt_tokens = static_cast<int64_t>(r.prompt.size());
  a->result.queue_seconds = a->admit_time - p.submit_time;
  if (p.handle->cancelled()) {
    a->req = std::move(p.request);
    Finish(*a, "cancelled");
    return;
  }
  int64_t reused = 0;
  a->seq = r.reuse_prefix ? TakeCached(r, &reused) : engine_.NewSequence();
  a->result.cached_prompt_tokens = reused;
  a->prefill_next = reused;
  a->sampler = std::make_unique<sampling::Sampler>(r.sampling);
  a->sampler->AcceptMany(r.prompt);
  if (const tokenizer::Tokenizer* tok = engine_.tokenizer())
    a->decoder = std::make_unique<tokenizer::StreamingDecoder>(*tok, /*skip_special=*/!r.keep_special_tokens, /*at_sequence_start=*/false);
  a->req = std::move(p.request);
  active_.push_back(std::move(a));
}

void Scheduler::FailActive(Active& a, const Status& st) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.requests_failed;
  }
  RequestHandle::Event e;
  e.kind = RequestHandle::Event::Kind::kError;
  e.error = st;
  a.handle->Push(std::move(e));
}

void Scheduler::Step() {
  // Requests whose client went away end here, before spending a step on them.
  for (size_t i = 0; i < active_.size();) {
    if (active_[i]->handle->cancelled()) {
      Finish(*active_[i], "cancelled");
      Retire(std::move(active_[i]->seq), active_[i]->req);
      active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  if (active_.empty()) return;

  // The step: every decoding sequence's next token first, then the next prefill
  // chunk of as many prefilling sequences as the row budget allows (at least one).
  // Chunks follow Engine::Prefill's boundaries (prefill_chunk tokens from where the
  // prompt's uncached part starts), so a prompt's logits do not depend on the company.
  const int64_t chunk = std::max<int64_t>(1, engine_.options().prefill_chunk);
  const int64_t budget = std::max(chunk, engine_.options().max_step_rows);
  std::vector<Engine::StepItem> items;
  std::vector<Active*> owners;
  int64_t rows = 0, n_decode = 0;
  for (auto& a : active_) {
    if (a->prefilling) continue;
    // Drafts: at most what is left to emit after next_token's successor, what the
    // context holds and what the step's row budget leaves.
    a->draft.tokens.clear();
    a->draft.parent.clear();
    if (a->drafter) {
      const int64_t depth = a->req.max_tokens - static_cast<int64_t>(a->result.ids.size()) - 1;
      const int64_t nodes = std::min(engine_.ctx() - a->seq->n_tokens() - 1, budget - rows - 1);
      if (depth > 0 && nodes > 0) {
        a->context.assign(a->seq->tokens().begin(), a->seq->tokens().end());
        a->context.push_back(a->next_token);
        if (Status st = a->drafter->Propose(a->context, std::min(depth, nodes), nodes, &a->draft); !st.ok()) {
          SPOOL_LOG_WARN("drafting failed, decoding without drafts: %s", st.message().c_str());
          a->draft.tokens.clear();
          a->draft.parent.clear();
        }
        if (static_cast<int64_t>(a->draft.size()) > nodes) a->draft.tokens.clear(), a->draft.parent.clear();
      }
    }
    a->fed.assign(1, a->next_token);
    a->fed.insert(a->fed.end(), a->draft.tokens.begin(), a->draft.tokens.end());
    const bool verify = a->draft.size() > 0;
    Engine::StepItem item{a->seq.get(), a->fed, verify, verify};
    a->parent.clear();
    if (verify && !a->draft.chain()) {  // row 0 (next_token) is the root; node i is row i + 1
      a->parent.assign(1, -1);
      for (const int32_t p : a->draft.parent) a->parent.push_back(p + 1);
      item.tree_base = a->seq->n_tokens();
      item.tree_parent = a->parent;
      item.tree_rows = &a->tree_rows;
    }
    items.push_back(item);
    owners.push_back(a.get());
    rows += static_cast<int64_t>(a->fed.size());
    ++n_decode;
    ++a->result.spec.passes;
  }
  bool any_prefill = false;
  for (auto& a : active_) {
    if (!a->prefilling) continue;
    const int64_t m = std::min<int64_t>(chunk, static_cast<int64_t>(a->req.prompt.size()) - a->prefill_next);
    if (any_prefill && rows + m > budget) continue;
    items.push_back(Engine::StepItem{a->seq.get(), std::span<const int32_t>(a->req.prompt).subspan(a->prefill_next, m), false});
    owners.push_back(a.get());
    rows += m;
    any_prefill = true;
  }

  // Tests only: a pause after each step that prefills, so that a test sees a prefill running.
  static const char* const chunk_delay = std::getenv("SPOOL_TEST_PREFILL_CHUNK_DELAY_MS");
  if (chunk_delay && any_prefill) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(chunk_delay)));

  const int64_t n_vocab = engine_.n_vocab();
  // Logit rows: one per item, one per fed token of a verification.
  std::vector<int64_t> row0(items.size() + 1, 0);
  for (size_t i = 0; i < items.size(); ++i)
    row0[i + 1] = row0[i] + (items[i].all_logits ? static_cast<int64_t>(items[i].tokens.size()) : 1);
  std::vector<float> logits(static_cast<size_t>(row0.back()) * static_cast<size_t>(n_vocab));  // [rows, n_vocab]
  std::vector<Status> status(items.size());
  Stopwatch sw;
  Status st = engine_.Step(items, logits.data());
  if (!st.ok()) {
    // Find whose item failed: each alone (same numerics as together; see Engine::Step).
    for (size_t i = 0; i < items.size(); ++i)
      status[i] = engine_.Step(std::span<const Engine::StepItem>(&items[i], 1), logits.data() + row0[i] * n_vocab);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.steps;
    const StreamStats& ws = engine_.stream_stats();
    stats_.dense_weight_bytes = ws.streamed_bytes + ws.embedding_bytes;
    stats_.expert_bytes = ws.expert_bytes;
    stats_.expert_hits = ws.expert_hits;
    stats_.expert_misses = ws.expert_misses;
    if (n_decode == 0) stats_.prefill_step_seconds += sw.Seconds();
    if (n_decode > 0) {
      stats_.decode_seconds += sw.Seconds();  // a mixed step counts as decode time
      ++stats_.decode_steps;
      stats_.decode_batch_tokens += n_decode;
    }
  }

  std::vector<Active*> done;  // finished or failed this step
  for (size_t i = 0; i < items.size(); ++i) {
    Active& a = *owners[i];
    const float* row = logits.data() + row0[i] * n_vocab;
    if (!status[i].ok()) {
      if (status[i].code() == ErrorCode::kCancelled) Finish(a, "cancelled");
      else FailActive(a, status[i]);
      a.seq.reset();  // its cache may hold part of a failed prefill: not reusable
      done.push_back(&a);
      continue;
    }
    if (a.prefilling) {
      a.prefill_next += static_cast<int64_t>(items[i].tokens.size());
      if (a.req.report_progress) {
        RequestHandle::Event e;
        e.kind = RequestHandle::Event::Kind::kProgress;
        e.progress = {static_cast<int64_t>(a.req.prompt.size()), a.result.cached_prompt_tokens, a.prefill_next,
                      NowSeconds() - a.admit_time};
        a.handle->Push(std::move(e));
      }
      if (a.prefill_next < static_cast<int64_t>(a.req.prompt.size())) continue;
      // The whole prompt is in: this row's logits pick the first new token.
      a.prefilling = false;
      a.decode_start = NowSeconds();
      a.result.prefill_seconds = a.decode_start - a.admit_time;
      {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.prompt_tokens += a.result.prompt_tokens;
        stats_.cached_prompt_tokens += a.result.cached_prompt_tokens;
        stats_.prefill_seconds += a.result.prefill_seconds;
      }
      if (a.req.max_tokens == 0) {
        Finish(a, "length");
        done.push_back(&a);
        continue;
      }
    }
    if (a.prefilling || a.draft.size() == 0) {
      if (!Advance(a, row, a.seq->n_tokens())) done.push_back(&a);
      continue;
    }
    // A verification: the sampled token of row `cur` (0: next_token's) is emitted; a
    // child of cur in the draft tree carrying it is accepted (its row follows). The
    // other rows' K/V are dropped (Truncate for a chain, KeepTreePath for a tree).
    const int64_t k = static_cast<int64_t>(a.draft.size());
    const int64_t n0 = a.seq->n_tokens() - (k + 1);
    // (The request's counters move before Advance may finish it, so its Completion has them.)
    a.result.spec.drafted += static_cast<uint64_t>(k);
    ++a.result.spec.verify_steps;
    // Sampled drafts (a draft model with sample_drafts, chains) take the rejection rule.
    const bool rejection = a.drafter->sampled() && a.req.sampling.temperature > 0 && a.parent.empty();
    int64_t r = 0, cur = 0;
    bool alive = true;
    a.path.assign(1, 0);
    for (;; ++r) {
      const auto& q = a.drafter->draft_distributions();
      const bool reject_rule = rejection && cur < k && static_cast<int64_t>(q.size()) > cur;
      alive = Advance(a, row + cur * n_vocab, n0 + r + 1, reject_rule ? &q[static_cast<size_t>(cur)] : nullptr,
                      reject_rule ? a.draft.tokens[static_cast<size_t>(cur)] : -1);
      if (!alive) break;
      int64_t child = -1;
      for (int64_t i = cur; i < k && child < 0; ++i)  // node i is row i + 1; children follow parents
        if (a.draft.parent[static_cast<size_t>(i)] == cur - 1 && a.draft.tokens[static_cast<size_t>(i)] == a.next_token)
          child = i + 1;
      if (child < 0) break;
      cur = child;
      a.path.push_back(static_cast<int32_t>(child));
      ++a.result.spec.accepted;
    }
    a.drafter->Feedback(k, r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.spec_drafted += k;
      stats_.spec_accepted += r;
    }
    if (!a.parent.empty()) {
      if (Status tst = engine_.KeepTreePath(*a.seq, a.tree_rows, a.path); !tst.ok()) {
        if (alive) FailActive(a, tst);
        a.seq.reset();
        done.push_back(&a);
        continue;
      }
    } else if (a.seq->n_tokens() > n0 + r + 1) {
      if (Status tst = engine_.Truncate(*a.seq, n0 + r + 1); !tst.ok()) {
        if (alive) FailActive(a, tst);
        a.seq.reset();
        done.push_back(&a);
        continue;
      }
    }
    if (!alive) done.push_back(&a);
  }
  if (done.empty()) return;
  std::vector<std::unique_ptr<Active>> still;
  for (auto& a : active_) {
    if (std::find(done.begin(), done.end(), a.get()) == done.end()) {
      still.push_back(std::move(a));
    } else if (a->seq) {
      Retire(std::move(a->seq), a->req);
    }
  }
  active_.swap(still);
}

bool Scheduler::Advance(Active& a, const float* logits, int64_t n_fed, const sampling::TokenDistribution* q,
                        int32_t d) {
  const tokenizer::Tokenizer* tok = engine_.tokenizer();
  int32_t next;
  if (!a.req.forced_output.empty()) {
    const size_t i = a.result.ids.size();
    if (i >= a.req.forced_output.size()) {
      Finish(a, "stop");
      return false;
    }
    next = a.req.forced_output[i];
  } else if (q != nullptr) {
    const std::span<const float> row(logits, static_cast<size_t>(engine_.n_vocab()));
    next = SpeculativeSample(*a.sampler, a.sampler->Distribution(row), *q, d);
  } else {
    next = a.sampler->Sample(std::span<const float>(logits, static_cast<size_t>(engine_.n_vocab())));
  }
  a.sampler->Accept(next);
  a.result.ids.push_back(next);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.generated_tokens;
  }
  if (tok && tok->eos_ids().count(next) > 0 && !a.req.ignore_eos) {
    Finish(a, "stop");
    return false;
  }
  if (a.decoder) {
    auto piece = a.decoder->PushGenerated(next);
    if (piece.ok()) a.result.text += *piece;
    // Text that can no longer be part of a stop string goes out now.
    std::string& text = a.result.text;
    size_t stop_at = FindStop(text, a.req.stop, a.emitted);
    if (stop_at != std::string::npos) {
      text.resize(stop_at);
      Finish(a, "stop");
      return false;
    }
    size_t upto = text.size() - HeldBack(text, a.req.stop);
    if (upto > a.emitted) {
      RequestHandle::Event e;
      e.text = text.substr(a.emitted, upto - a.emitted);
      a.emitted = upto;
      a.handle->Push(std::move(e));
    }
  }
  if (static_cast<int64_t>(a.result.ids.size()) >= a.req.max_tokens || n_fed + 1 > engine_.ctx()) {
    Finish(a, "length");
    return false;
  }
  a.next_token = next;
  return true;
}

void Scheduler::Finish(Active& a, const std::string& reason) {
  a.result.finish_reason = reason;
  if (reason != "cancelled") {
    if (a.decoder && reason == "length") {
      a.result.text += a.decoder->Flush();
      size_t stop_at = FindStop(a.result.text, a.req.stop, a.emitted);
      if (stop_at != std::string::npos) {
        a.result.text.resize(stop_at);
        a.result.finish_reason = "stop";
      }
    }
    if (a.result.text.size() > a.emitted) {
      RequestHandle::Event e;
      e.text = a.result.text.substr(a.emitted);
      a.emitted = a.result.text.size();
      a.handle->Push(std::move(e));
    }
  }
  a.result.decode_seconds = a.decode_start > 0 ? NowSeconds() - a.decode_start : 0;
  {
    // Counted before the event goes out: a client that sees kDone sees the stats too.
    std::lock_guard<std::mutex> lock(mu_);
    if (reason == "cancelled") ++stats_.requests_cancelled;
    else ++stats_.requests_done;
  }
  RequestHandle::Event e;
  e.kind = RequestHandle::Event::Kind::kDone;
  e.completion = a.result;
  a.handle->Push(std::move(e));
}

}  // namespace spool::runtime
