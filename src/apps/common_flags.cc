#include "apps/common_flags.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "base/strings.h"
#include "gpu/device_spec.h"
#include "runtime/scheduler.h"

namespace spool::apps {

EngineFlags AddEngineFlags(ArgParser& p) {
  EngineFlags f;
  f.threads = &p.Int("-t,--threads", 0, "compute threads (0: all cores)");
  f.ctx = &p.Int("-c,--ctx", 0, "context length in tokens (0: min(model maximum, 4096))");
  f.ctx_beyond_training = &p.Flag("--ctx-beyond-training",
                                  "allow --ctx above the model's trained context (as llama.cpp does, with a "
                                  "warning); the positions past it are out of the model's training, so quality "
                                  "is not promised there");
  f.prefill_chunk = &p.String("--prefill-chunk", "512",
                              "prompt tokens per prefill step, or auto: the largest of 4096/2048/1024/512 whose "
                              "activations fit the budget beside the same resident weights (run, chat, perplexity; "
                              "serve and batch use 512)");
  f.kv_type = &p.String("--kv-type", "bf16", "KV cache element type: bf16 or f32");
  f.kv_window = &p.Int("--kv-window", 2048, "KV tokens per layer kept in RAM; older pages go to --kv-dir (0: all in RAM)");
  f.kv_dir = &p.String("--kv-dir", "", "folder for spilled KV pages (default $SPOOL_HOME/kv, else ~/.spool/kv)");
  f.kv_max_disk = &p.String("--kv-max-disk", "0", "most disk the spilled KV pages may use, e.g. 20G (0: no limit)");
  f.mem_budget = &p.String("--mem-budget", "auto",
                           "memory budget for the whole process (e.g. 4G, 512M); weights that do not fit are "
                           "streamed from disk every step. auto or 0: 70% of available RAM");
  f.io = &p.String("--io", "auto", "weight streaming I/O: auto (io_uring, else pread; SPOOL_IO=pread), io_uring, pread");
  f.expert_eviction = &p.String("--expert-eviction", "freq",
                                 "MoE expert cache eviction: freq (fewest uses, aged; default) or lru (least recently "
                                 "used); docs/benchmarks.md compares them");
  f.numerics = &p.String("--numerics", "spool",
                         "spool (own kernels) or ggml (GGUF only: round exactly as llama.cpp's CPU backend; with "
                         "--kv-type f32 greedy output equals llama.cpp's f32-KV output token for token)");
  f.disk_bw = &p.String("--disk-bw", "", "disk read speed for the plan's decode prediction, bytes/s (e.g. 1.5G); "
                                          "default: measured by a short O_DIRECT read when weights stream and the "
                                          "plan is shown (show --plan, run --stats)");
  f.device = &p.String("--device", "cpu",
                        "where the forward pass runs: cpu, vulkan, vulkan:N (spool show --devices) or auto (a Vulkan "
                        "GPU when one exists and runs the model, else the CPU with a message). Vulkan runs dense "
                        "Llama-family models (llama, mistral, qwen2, qwen3; docs/parts/gpu.md), a window of each sequence's KV cache in VRAM");
  f.vram_budget = &p.String("--vram-budget", "0",
                            "with --device vulkan: device memory for weights, KV caches and activations (e.g. 6G); "
                            "layers that do not fit are copied into VRAM at every step. 0: the whole model in VRAM");
  f.vram_kv_window = &p.Int("--vram-kv-window", 0,
                            "with --device vulkan: tokens of each sequence's KV cache kept in VRAM (whole pages, at "
                            "least what one prefill chunk touches); older pages live in the host cache (RAM, or "
                            "--kv-dir beyond --kv-window). 0: the whole context unless --vram-budget needs the room");
  f.kv_page_tokens = &p.Int("--kv-page-tokens", 256, "KV cache page size in tokens (the unit of --kv-window, the GPU's "
                                                     "KV window and the attention's fold order)");
  f.lookup = &p.Flag("--lookup", "speculative decoding with prompt-lookup drafts (n-grams of the prompt and output); "
                                 "the output is unchanged, more tokens per pass over the weights");
  f.draft = &p.String("--draft", "", "speculative decoding with a draft MODEL (same vocabulary, kept resident, "
                                     "counted in --mem-budget), or self / self:q4_0: a Q8_0 / Q4_0 copy of the "
                                     "model made once under $SPOOL_HOME/drafts; the output is unchanged");
  f.draft_sample = &p.Flag("--draft-sample", "with --draft and --temp > 0: the draft model samples its drafts and "
                                             "the standard rejection rule keeps the target's distribution (seeded, "
                                             "reproducible, but not the ids of a plain run); default: greedy drafts, "
                                             "the plain run's ids");
  f.draft_max = &p.Int("--draft-max", 8, "draft tokens verified per step at most (with --lookup or --draft)");
  f.draft_tree = &p.Int("--draft-tree", 0, "draft trees of at most N nodes per verification (several candidates per "
                                           "position, --draft-max levels deep; at most 64); 0: a chain");
  return f;
}

Result<runtime::SpeculativeOptions> EngineFlags::Speculative() const {
  runtime::SpeculativeOptions o;
  if (*lookup && !draft->empty()) return InvalidArgument("--lookup and --draft exclude each other: choose one drafter");
  if (*draft_max < 1 || *draft_max > 64) return InvalidArgument("--draft-max must be in [1, 64], got " + std::to_string(*draft_max));
  o.lookup = *lookup;
  o.draft_model = !draft->empty();
  o.max_draft = *draft_max;
  o.sample_drafts = *draft_sample;
  if (o.sample_drafts && draft->empty()) return InvalidArgument("--draft-sample needs --draft MODEL");
  if (*draft_tree < 0 || *draft_tree > 64) return InvalidArgument("--draft-tree must be in [0, 64], got " + std::to_string(*draft_tree));
  if (*draft_tree > 0 && !o.enabled()) return InvalidArgument("--draft-tree needs a drafter (--lookup or --draft)");
  if (*draft_tree > 0 && o.sample_drafts) return InvalidArgument("--draft-sample checks chains: leave out --draft-tree");
  o.tree_nodes = *draft_tree;
  return o;
}

Result<Workload::Kind> ParseWorkloadKind(const std::string& name) {
  if (name == "run") return Workload::Kind::kRun;
  if (name == "chat") return Workload::Kind::kChat;
  if (name == "perplexity") return Workload::Kind::kPerplexity;
  if (name == "serve") return Workload::Kind::kServe;
  if (name == "batch") return Workload::Kind::kBatch;
  return InvalidArgument("--for must be run, chat, perplexity, serve or batch, got '" + name + "'");
}


Result<runtime::EngineOptions> EngineFlags::ToOptions(const Workload& workload) const {
  runtime::EngineOptions o;
  SPOOL_ASSIGN_OR_RETURN(o.device, gpu::ParseDeviceSpec(*device));
  {
    auto b = ParseSize(*vram_budget);
    if (!b.ok()) return InvalidArgument("--vram-budget: " + b.status().message());
    o.vram_budget = *b;
    if (o.vram_budget > 0 && o.device.kind == gpu::DeviceSpec::Kind::kCpu)
      return InvalidArgument("--vram-budget needs --device vulkan[:N] or auto (the forward pass runs on the CPU)");
  }
  if (*threads < 0 || *threads > 1024) return InvalidArgument("--threads must be in [0, 1024]");
  o.threads = static_cast<int>(*threads);
  if (*ctx < 0) return InvalidArgument("--ctx must be >= 0");
  o.ctx = *ctx;
  o.ctx_beyond_training = *ctx_beyond_training;
  if (*prefill_chunk == "auto") {
    const bool scheduler = workload.kind == Workload::Kind::kServe || workload.kind == Workload::Kind::kBatch;
    o.prefill_chunk = scheduler ? 512 : 0;  // 0: the planner chooses (runtime/planner.h)
  } else {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(prefill_chunk->c_str(), &end, 10);
    if (prefill_chunk->empty() || errno != 0 || *end != '\0' || v <= 0 || v > 65536)
      return InvalidArgument("--prefill-chunk must be auto or in [1, 65536], got '" + *prefill_chunk + "'");
    o.prefill_chunk = v;
  }
  if (*kv_type == "bf16") o.kv_dtype = DType::kBF16;
  else if (*kv_type == "f32") o.kv_dtype = DType::kF32;
  else return InvalidArgument("--kv-type must be bf16 or f32, got '" + *kv_type + "'");
  if (*vram_kv_window < 0) return InvalidArgument("--vram-kv-window must be >= 0, got " + std::to_string(*vram_kv_window));
  if (*vram_kv_window > 0 && o.device.kind == gpu::DeviceSpec::Kind::kCpu)
    return InvalidArgument("--vram-kv-window needs --device vulkan[:N] or auto (the forward pass runs on the CPU)");
  o.vram_kv_window = *vram_kv_window;
  if (*kv_page_tokens < 1 || *kv_page_tokens > 1024)
    return InvalidArgument("--kv-page-tokens must be in [1, 1024], got " + std::to_string(*kv_page_tokens));
  o.kv_page_tokens = *kv_page_tokens;
  if (*kv_window < 0) return InvalidArgument("--kv-window must be >= 0, got " + std::to_string(*kv_window));
  o.kv_window = *kv_window;
  o.kv_dir = *kv_dir;
  {
    auto b = ParseSize(*kv_max_disk);
    if (!b.ok()) return InvalidArgument("--kv-max-disk: " + b.status().message());
    o.kv_max_disk = *b;
  }
  if (*mem_budget == "auto") {
    o.mem_budget = 0;
  } else {
    auto b = ParseSize(*mem_budget);
    if (!b.ok()) return InvalidArgument("--mem-budget: " + b.status().message());
    o.mem_budget = *b;
  }
  if (*io == "auto") o.io_backend = storage::IoBackend::kAuto;
  else if (*io == "io_uring") o.io_backend = storage::IoBackend::kIoUring;
  else if (*io == "pread") o.io_backend = storage::IoBackend::kPread;
  else return InvalidArgument("--io must be auto, io_uring or pread, got '" + *io + "'");
  if (*expert_eviction == "lru") o.expert_eviction = runtime::ExpertEviction::kLru;
  else if (*expert_eviction == "freq") o.expert_eviction = runtime::ExpertEviction::kFrequency;
  else return InvalidArgument("--expert-eviction must be lru or freq, got '" + *expert_eviction + "'");
  if (*numerics == "ggml") o.ggml_numerics = true;
  else if (*numerics != "spool") return InvalidArgument("--numerics must be spool or ggml, got '" + *numerics + "'");
  if (!disk_bw->empty()) {
    auto b = ParseSize(*disk_bw);
    if (!b.ok()) return InvalidArgument("--disk-bw: " + b.status().message());
    if (*b == 0) return InvalidArgument("--disk-bw must be positive");
    o.disk_bytes_per_s = static_cast<double>(*b);
  }
  SPOOL_ASSIGN_OR_RETURN(runtime::SpeculativeOptions spec, Speculative());
  if (spec.enabled() || !draft->empty()) o.max_draft = spec.max_step_rows() - 1;
  o.draft_model = *draft;
  o.draft_trees = spec.tree_nodes > 0;
  switch (workload.kind) {
    case Workload::Kind::kRun:
    case Workload::Kind::kChat:
      break;
    case Workload::Kind::kPerplexity:
      if (o.ctx == 0) o.ctx = 512;
      if (o.ctx < 8) return InvalidArgument("--ctx must be at least 8 for perplexity");
      o.max_logit_rows = o.ctx;  // every window position keeps its logits
      break;
    case Workload::Kind::kServe:
    case Workload::Kind::kBatch:
      if (workload.parallel < 1 || workload.cached_sequences < 0) return InvalidArgument("bad parallel sequence count");
      runtime::PlanForScheduler(&o, static_cast<int>(workload.parallel));
      o.max_sequences = workload.parallel + workload.cached_sequences;
      break;
  }
  return o;
}

SamplingFlags AddSamplingFlags(ArgParser& p) {
  sampling::SamplingParams d;
  SamplingFlags f;
  f.temp = &p.Float("--temp,--temperature", d.temperature, "sampling temperature (0: greedy)");
  f.top_k = &p.Int("--top-k", d.top_k, "keep the k most likely tokens (0: off)");
  f.top_p = &p.Float("--top-p", d.top_p, "nucleus sampling threshold (1: off)");
  f.min_p = &p.Float("--min-p", d.min_p, "drop tokens below min-p × the best probability (0: off)");
  f.repeat_penalty = &p.Float("--repeat-penalty", d.repeat_penalty, "penalise repeated tokens (1: off)");
  f.repeat_last_n = &p.Int("--repeat-last-n", d.penalty_last_n, "tokens the penalties look back over (-1: all)");
  f.presence_penalty = &p.Float("--presence-penalty", d.presence_penalty, "subtract from tokens already present");
  f.frequency_penalty = &p.Float("--frequency-penalty", d.frequency_penalty, "subtract count × this from tokens");
  f.seed = &p.Int("-s,--seed", static_cast<int64_t>(d.seed), "random seed");
  return f;
}

Result<sampling::SamplingParams> SamplingFlags::ToParams() const {
  sampling::SamplingParams s;
  s.temperature = static_cast<float>(*temp);
  s.top_k = static_cast<int32_t>(*top_k);
  s.top_p = static_cast<float>(*top_p);
  s.min_p = static_cast<float>(*min_p);
  s.repeat_penalty = static_cast<float>(*repeat_penalty);
  s.penalty_last_n = static_cast<int32_t>(*repeat_last_n);
  s.presence_penalty = static_cast<float>(*presence_penalty);
  s.frequency_penalty = static_cast<float>(*frequency_penalty);
  s.seed = static_cast<uint64_t>(*seed);
  SPOOL_TRY(s.Validate());
  return s;
}

bool HandleParse(ArgParser& p, int argc, char** argv, int* exit_code) {
  Status st = p.Parse(argc, argv);
  if (p.help_requested()) {
    std::fputs(p.Usage().c_str(), stdout);
    *exit_code = 0;
    return true;
  }
  if (!st.ok()) {
    std::fprintf(stderr, "spool: %s\n", st.message().c_str());
    *exit_code = 2;
    return true;
  }
  return false;
}

}  // namespace spool::apps
