// Flags shared by every command that runs a model (run, perplexity, chat, serve,
// batch): engine options and sampling parameters, registered on an ArgParser.
#pragma once

#include <string>

#include "apps/args.h"
#include "runtime/engine.h"
#include "sampling/sampler.h"

namespace spool::apps {

struct EngineFlags {
  int64_t* threads;
  int64_t* ctx;
  int64_t* prefill_chunk;
  std::string* kv_type;
  int64_t* kv_window;         // --kv-window TOKENS (0: all KV in RAM)
  std::string* kv_dir;        // --kv-dir DIR ("": $SPOOL_HOME/kv)
  std::string* kv_max_disk;   // --kv-max-disk SIZE ("0": unlimited)
  std::string* mem_budget;  // "auto", "0" (= auto) or a size ("4G", "512M")
  std::string* io;          // "auto", "io_uring" or "pread"
  std::string* numerics;    // "spool" or "ggml"
  // Converts to EngineOptions; InvalidArgument naming the flag on bad values.
  Result<runtime::EngineOptions> ToOptions() const;
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
