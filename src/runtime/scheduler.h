// The step scheduler: many generation requests share one Engine. Each step is one
// Engine::Step (one pass over the weights) that carries the next token of every
// decoding sequence plus the next prefill chunk of as many newly admitted requests
// as the engine's row budget (max(prefill_chunk, max_step_rows)) allows; every
// waiting request is admitted as soon as a slot (max_active) is free, so a burst of
// N requests is prefilled in about one weight pass, not N, and long prompts are
// prefilled chunk by chunk while the others keep decoding. Finished sequences stay in a small LRU so a later
// request whose prompt shares a prefix (the same conversation, one turn later)
// skips that part of the prefill. Reuse is cut to a multiple of the engine's
// prefill chunk, so the remaining prompt is fed in exactly the chunks a fresh
// prefill would use: cached or not, a request gets bit-identical logits as long as
// the cached prefix itself came from a prefill with the same chunking.
//
// Threading: the scheduler owns one thread, the only one that calls the Engine.
// Submit, Cancel and the RequestHandle methods are thread-safe; results come back
// through each request's RequestHandle (a small event queue), so a slow client never
// blocks the scheduler.
//
// Scope (who may reuse what): a cache entry belongs to the (tenant, cache_key) of the
// request that made it, and a request only reuses entries of its own scope, so one
// user's cached prompt is never visible to another through cached_prompt_tokens or
// through prefill time (a request outside the scope recomputes the prefix).
// SchedulerOptions::shared_prefix_cache opts into reuse across scopes.
//
// Disk sessions: with a SessionStore, an entry whose scope has a cache_key is written
// to the store when it is evicted from RAM and at Shutdown(), and a request of that
// scope with no entry in RAM resumes from the store (runtime/session_store.h).
//
// Determinism: a request's sampler is its own (seeded per request), and the engine's
// decode path computes each sequence independently of the batch, so with greedy
// sampling or a fixed seed a request gives the same tokens alone or beside others.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <functional>

#include "runtime/engine.h"
#include "runtime/speculative.h"
#include "sampling/sampler.h"

namespace spool::runtime {

class SessionStore;

struct SchedulerOptions {
  int max_active = 4;          // sequences decoded together (--parallel)
  int prefix_cache_entries = 4;  // finished sequences kept for prefix reuse (0: off)
  // false: a request reuses only entries of its own (tenant, cache_key) scope.
  // true: any entry (the old behaviour; the scope only breaks ties). --shared-prefix-cache
  bool shared_prefix_cache = false;
  // Disk sessions (not owned; must outlive the scheduler). nullptr: RAM only.
  SessionStore* session_store = nullptr;
};

struct ScheduledRequest {
  std::vector<int32_t> prompt;       // the whole prompt (at least one token)
  sampling::SamplingParams sampling;
  int64_t max_tokens = 128;          // new tokens at most (0: prefill only)
  bool ignore_eos = false;
  std::vector<std::string> stop;     // stop strings (not included in the text)
  bool reuse_prefix = true;          // may start from a cached sequence with a common prefix
  // The reuse scope: entries made by requests with the same tenant and cache_key.
  // tenant: who the client is (TenantForApiKey of its API key; "" = anonymous);
  // cache_key: its session (the `session`/`user` field; "" = none, not persisted).
  std::string tenant;
  std::string cache_key;
  // The text keeps control tokens (gpt-oss harmony markers for chat/reasoning.h);
  // default: they are dropped. EOS tokens never appear.
  bool keep_special_tokens = false;
  // Testing only (`spool serve --debug-forced-output`): these ids are "sampled" in
  // order instead of the sampler's choice, then the request finishes with "stop", so
  // that the response assembly can be tested with outputs a tiny model cannot write.
  // Empty: sample normally.
  std::vector<int32_t> forced_output;
  // Speculative decoding for this request (runtime/speculative.h): each decode step
  // carries the next token plus drafts (decode numerics), the rejected ones truncated
  // away; the tokens are those of plain decoding. Default: off.
  SpeculativeOptions speculative;
  // Push a kProgress event after each prefill chunk of this request (server:
  // "return_progress", as llama-server's prompt_progress).
  bool report_progress = false;
};

// One named session as GET /v1/sessions shows it.
struct SessionSummary {
  std::string id;
  int64_t tokens = 0;        // tokens whose KV is kept (the larger of RAM and disk)
  uint64_t bytes = 0;        // bytes of its session file (0: not on disk yet)
  int64_t last_used_ms = 0;  // unix milliseconds of the last request that used it
  bool in_memory = false, on_disk = false;
};

struct Completion {
  std::string text;                  // generated text (EOS and stop strings excluded)
  std::vector<int32_t> ids;          // generated ids (an EOS that ended generation included)
  std::string finish_reason;         // "stop", "length" or "cancelled"
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the prefix cache
  double queue_seconds = 0;          // submit → prefill start
  double prefill_seconds = 0;        // prefill (time to the first token's logits)
  double decode_seconds = 0;         // first token → finish
  SpecStats spec;                    // drafts verified and accepted, weight passes while decoding
};

// One request's view of its progress. Events arrive in order: zero or more kProgress
// (prefill; only when asked for), zero or more kText, then exactly one kDone or kError.
class RequestHandle {
 public:
  struct Event {
    enum class Kind { kText, kDone, kError, kProgress } kind = Kind::kText;
    std::string text;       // kText
    // kProgress (only when the request asked, ScheduledRequest::report_progress): prompt
    // tokens in the cache now (processed, cached ones included) of total; cache: those
    // that came from the prefix cache; seconds since admission.
    struct Progress {
      int64_t total = 0, cache = 0, processed = 0;
      double seconds = 0;
    } progress;
    Completion completion;  // kDone
    Status error;           // kError
  };
  // Blocks until an event is available or `timeout_ms` passes (false on timeout).
  bool Next(Event* event, int timeout_ms);
  // Asks the scheduler to stop this request at its next step (finish "cancelled").
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class Scheduler;
  void Push(Event e);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerStats {
  int64_t queued = 0, active = 0;      // now
  int64_t requests_done = 0, requests_failed = 0, requests_cancelled = 0;
  int64_t prompt_tokens = 0, cached_prompt_tokens = 0, generated_tokens = 0;
  int64_t steps = 0;                   // engine steps (weight passes)
  int64_t decode_steps = 0, decode_batch_tokens = 0;  // mean batch = tokens / steps
  double prefill_seconds = 0;         // Σ over requests of admission → first token (overlapping)
  double decode_seconds = 0;          // steps that decoded at least one token
  double prefill_step_seconds = 0;    // steps that only prefilled
  // Running prefills now (after the last step): requests still prefilling, prompt
  // tokens in their caches (cached ones included) and their prompts' tokens.
  int64_t prefilling = 0, prefill_tokens_done = 0, prefill_tokens_total = 0;
  // Disk sessions: loads (resumed from the store), spills (written to it), and files
  // that could not be used or written (each also logged).
  int64_t session_loads = 0, session_spills = 0, session_errors = 0;
  // Weights (the engine's StreamStats, copied after each step): bytes read for dense
  // parts (streamed groups, embedding rows) and for routed experts; the expert cache's
  // hits and misses (MoE models; 0 otherwise).
  uint64_t dense_weight_bytes = 0, expert_bytes = 0;
  uint64_t expert_hits = 0, expert_misses = 0;
  // Speculative decoding: draft tokens verified, of those accepted, and decode rows
  // that verified drafts. Tokens per weight pass while decoding =
  // (decode_batch_tokens + spec_accepted) / decode_steps.
  int64_t spec_drafted = 0, spec_accepted = 0;
};

// Engine options a scheduler with `max_active` sequences plans for: steps of up to
// 4 prefill chunks of rows (several new prompts share one weight pass), one logit
// row and one KV cache per sequence (callers add prefix-cached sequences to
// max_sequences). Call before Engine::Open.
inline void PlanForScheduler(EngineOptions* o, int max_active) {
  o->max_step_rows = std::max<int64_t>(o->max_step_rows, 4 * o->prefill_chunk);
  o->max_logit_rows = std::max<int64_t>(o->max_logit_rows, max_active);
  o->max_sequences = std::max<int64_t>(o->max_sequences, max_active);
}

class Scheduler {
 public:
  // `engine` must outlive the scheduler; no one else may call it while it runs.
  Scheduler(Engine& engine, SchedulerOptions options);
  ~Scheduler();  // Shutdown()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Bad requests (empty prompt, bad sampling) come back as a kError
  // event, never as an exception.
  std::shared_ptr<RequestHandle> Submit(ScheduledRequest request);
  // Queues several requests at once: all of them are seen by the same admission round
  // (as many as there are free slots), so their prefills share steps.
  std::vector<std::shared_ptr<RequestHandle>> SubmitMany(std::vector<ScheduledRequest> requests);
  SchedulerStats stats() const;

  // Stops the thread: pending and running requests end with kError (kCancelled); the
  // running ones' sequences join the prefix cache. Then writes every cache entry that
  // belongs to a named session to the session store (the newest entry per session;
  // errors are logged and counted). Idempotent; the destructor calls it. The server
  // calls it after its listener stopped.
  void Shutdown();

  // Named sessions of `tenant`: those in RAM (cache entries and running requests) and
  // those in the session store, most recently used first. Answered by the scheduler
  // thread between steps (blocks until then); empty after Shutdown().
  std::vector<SessionSummary> ListSessions(const std::string& tenant);
  // Forgets the session (tenant, id): drops its RAM cache entries and its file.
  // Returns false when there was neither. A request of that session that is running
  // now puts its sequence back into the cache when it finishes.
  bool ForgetSession(const std::string& tenant, const std::string& id);

 private:
  struct Active;
  struct Pending {
    ScheduledRequest request;
    std::shared_ptr<RequestHandle> handle;
    double submit_time;
  };
  struct CacheEntry {
    std::unique_ptr<Sequence> seq;
    std::string tenant, key;
    int64_t last_used_ms = 0;
    bool dirty = true;  // differs from the session file (false: just loaded from it)
  };

  void Loop();
  // Validates a request and makes it active (prefilling); errors go to its handle.
  void Admit(Pending p);
  void Step();
  void FailActive(Active& a, const Status& st);
  // Samples the next token of `a` from `logits` [n_vocab] and streams its text;
  // returns false when the request finished (then the caller retires it).
  // n_fed: tokens whose K/V the sequence keeps after this row (its length without the
  // drafts still to check); the context check uses it.
  // q, d: a sampled draft token d ~ q to check by the rejection rule (SpeculativeSample).
  bool Advance(Active& a, const float* logits, int64_t n_fed, const sampling::TokenDistribution* q = nullptr,
               int32_t d = -1);
  void Finish(Active& a, const std::string& reason);
  void Retire(std::unique_ptr<Sequence> seq, const ScheduledRequest& r);
  std::unique_ptr<Sequence> TakeCached(const ScheduledRequest& r, int64_t* reused);
  // Writes a cache entry to the session store (when it has a session and changed).
  void Spill(CacheEntry& e);
  // Runs `fn` on the scheduler thread between steps and waits for it; false if the
  // scheduler has stopped (fn not run).
  bool RunOnLoop(std::function<void()> fn);
  void RunTasks();

  Engine& engine_;
  SchedulerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  bool shut_down_ = false;                       // Shutdown() finished
  std::deque<std::function<void()>> tasks_;      // RunOnLoop
  SchedulerStats stats_;
  std::vector<std::unique_ptr<Active>> active_;  // scheduler thread only
  std::list<CacheEntry> cache_;                  // scheduler thread only; front = most recent
  std::thread thread_;
};

}  // namespace spool::runtime
