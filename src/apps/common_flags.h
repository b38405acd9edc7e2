// Flags shared by every command that runs a model (run, perplexity, chat, serve,
// batch): engine options and sampling parameters, registered on an ArgParser.
#pragma once

#include <string>

#include "apps/args.h"
#include "runtime/engine.h"
#include "runtime/speculative.h"
#include "sampling/sampler.h"

namespace spool::apps {

// What a command will run, as far as the plan is concerned: how many sequences hold a
// KV cache, the largest step, the logit rows kept. Every command that runs a model
// converts its flags with ToOptions(workload), and `spool show --plan --for CMD`
// with the same workload, so both plan through Engine::Open's one planning path.
struct Workload {
  enum class Kind { kRun, kChat, kPerplexity, kServe, kBatch };
  Kind kind = Kind::kRun;
  int64_t parallel = 1;          // serve --parallel, batch --batch: sequences decoded together
  int64_t cached_sequences = 0;  // serve --cache-entries: finished sequences kept with their KV
};
// "run", "chat", "perplexity", "serve", "batch"; InvalidArgument otherwise.
Result<Workload::Kind> ParseWorkloadKind(const std::string& name);

struct EngineFlags {
  int64_t* threads;
  int64_t* ctx;
  bool* ctx_beyond_training;  // --ctx-beyond-training: --ctx may exceed the trained context
  std::string* prefill_chunk;  // --prefill-chunk N or auto
  std::string* kv_type;
  int64_t* kv_window;         // --kv-window TOKENS (0: all KV in RAM)
  std::string* kv_dir;        // --kv-dir DIR ("": $SPOOL_HOME/kv)
  std::string* kv_max_disk;   // --kv-max-disk SIZE ("0": unlimited)
  std::string* mem_budget;  // "auto", "0" (= auto) or a size ("4G", "512M")
  std::string* io;          // "auto", "io_uring" or "pread"
  std::string* expert_eviction;  // "lru" or "freq"
  std::string* numerics;    // "spool" or "ggml"
  std::string* disk_bw;     // --disk-bw SIZE per second ("": measure when a plan is shown)
  std::string* device;      // --device cpu | vulkan[:N] | auto (gpu/device_spec.h)
  std::string* vram_budget; // --vram-budget SIZE ("0": everything in VRAM)
  int64_t* vram_kv_window;  // --vram-kv-window TOKENS (0: the VRAM plan decides)
  int64_t* kv_page_tokens;  // --kv-page-tokens N
  // Speculative decoding (runtime/speculative.h; docs/parts/speculative.md).
  bool* lookup;             // --lookup: prompt-lookup drafts
  std::string* draft;       // --draft MODEL: a draft model ("": none)
  int64_t* draft_max;       // --draft-max N: draft tokens per verification at most
  bool* draft_sample;       // --draft-sample: sampled drafts + the rejection rule
  int64_t* draft_tree;      // --draft-tree N: draft trees of at most N nodes (0: chains)
  // The drafter the flags select (a request may override it: serve, batch).
  Result<runtime::SpeculativeOptions> Speculative() const;
  // Converts to EngineOptions for `workload` (perplexity: ctx 512 by default and a
  // logit row per position; serve/batch: the scheduler's steps and sequences);
  // InvalidArgument naming the flag on bad values.
  Result<runtime::EngineOptions> ToOptions(const Workload& workload = {}) const;
};
EngineFlags AddEngineFlags(ArgParser& p);

struct SamplingFlags {
  double *temp, *top_p, *min_p, *repeat_penalty, *presence_penalty, *frequency_penalty;
  int64_t *top_k, *seed, *repeat_last_n;
  Result<sampling::SamplingParams> ToParams() const;
};
SamplingFlags AddSamplingFlags(ArgParser& p);

// Prints usage and returns true when --help was given or parsing failed (sets *exit_code).
bool HandleParse(ArgParser& p, int argc, char** argv, int* exit_code);

}  // namespace spool::apps
