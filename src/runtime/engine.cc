#include "runtime/engine.h"

#include <algorithm>
#include <cstdlib>

#include "base/log.h"
#include "base/timer.h"
#include "runtime/self_draft.h"

namespace spool::runtime {

Engine::~Engine() = default;
Sequence::~Sequence() = default;

PlannerOptions PlannerOptionsFor(const EngineOptions& options, int64_t ctx, int threads) {
  PlannerOptions po;
  po.budget_bytes = options.mem_budget;
  po.ctx = ctx;
  po.n_seq = std::max<int64_t>(options.max_sequences, 1);
  po.kv_dtype = options.kv_dtype;
  po.kv_page_tokens = options.kv_page_tokens;
  po.kv_window_tokens = options.kv_window;  // NewSequence's choice of InRamKv / DiskKv, below
  // 0: auto, the planner chooses (single-sequence steps only: the scheduler's step rows
  // are planned from a fixed chunk, common_flags resolves auto to 512 there). A
  // speculative verification step has max_draft + 1 rows.
  po.prefill_chunk = options.prefill_chunk == 0 && options.max_step_rows == 0
                         ? 0
                         : std::max({options.prefill_chunk, options.max_step_rows, options.max_draft + 1});
  po.max_logit_rows = options.max_logit_rows;
  po.recurrent_keep_recent = RecurrentKeepRecent(options);
  po.threads = threads;
  po.prefetch_depth = options.prefetch_depth;
  return po;
}

Status Engine::PrepareAndPlan(const std::string& model, formats::ModelSource* given) {
  const EngineOptions& options = options_;
  if (options.kv_dtype != DType::kF32 && options.kv_dtype != DType::kBF16)
    return InvalidArgument("KV cache type must be f32 or bf16");
  if (options.prefill_chunk < 0) return InvalidArgument("prefill chunk must be positive (or 0: auto)");
  if (options.prefill_chunk == 0 && options.max_step_rows > 0)
    return InvalidArgument("prefill chunk auto (0) needs max_step_rows 0");
  if (options.kv_page_tokens <= 0) return InvalidArgument("KV page size must be positive");
  if (options.kv_window < 0) return InvalidArgument("KV window must be >= 0, got " + std::to_string(options.kv_window));
  if (options.max_sequences < 1) return InvalidArgument("max sequences must be >= 1");
  if (options.disk_bytes_per_s < 0) return InvalidArgument("disk speed must be >= 0");
  kv_quota_ = std::make_shared<kv::DiskQuota>(options.kv_max_disk);
  if (given) {
    SPOOL_ASSIGN_OR_RETURN(weights_, models::ModelWeights::Load(std::move(*given)));
  } else {
    SPOOL_ASSIGN_OR_RETURN(formats::ModelSource src, formats::OpenModelSource(model));
    SPOOL_ASSIGN_OR_RETURN(weights_, models::ModelWeights::Load(std::move(src)));
  }
  if (options.ggml_numerics) {
    models::ModelConfig& mc = weights_->mutable_config();
    if (weights_->source().kind != formats::ModelSource::Kind::kGguf)
      return InvalidArgument("--numerics ggml applies to GGUF models only");
    if (mc.rope_scaling.kind == RopeScaling::Kind::kLlama3)  // GGUF has no llama3 kind: it is rope_freqs there
      return InvalidArgument("--numerics ggml does not support this model's rope scaling (llama3); use the default numerics");
    if (mc.sandwich_norms || mc.attn_softcap > 0 || mc.ffn_act != models::FfnAct::kSilu)
      return InvalidArgument("--numerics ggml does not support " + mc.arch + " yet; use the default numerics");
    if (mc.has_linear())  // no llama.cpp-exact Gated DeltaNet (qwen3next GGUF runs with the default numerics)
      return InvalidArgument("--numerics ggml does not support linear-attention (Gated DeltaNet) layers of " + mc.arch +
                             " yet; use the default numerics");
    for (const auto& spec : mc.layers)
      if (spec.mixer == models::MixerKind::kSlidingAttention)
        return InvalidArgument("--numerics ggml does not support sliding-window attention yet; use the default numerics");
    mc.ggml_numerics = true;
  }
  const auto& c = weights_->config();
  if (options.ctx < 0) return InvalidArgument("context length must be positive, got " + std::to_string(options.ctx));
  if (options.ctx > c.n_ctx_train) {
    if (!options.ctx_beyond_training)
      return InvalidArgument("context length " + std::to_string(options.ctx) + " exceeds the model's maximum of " +
                             std::to_string(c.n_ctx_train) + " (--ctx-beyond-training allows it)");
    SPOOL_LOG_WARN("context length %lld exceeds the model's trained context of %lld: positions past it are untrained",
                   static_cast<long long>(options.ctx), static_cast<long long>(c.n_ctx_train));
  }
  ctx_ = options.ctx > 0 ? options.ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  if (const std::string note = SlidingWindowNote(c, ctx_); !note.empty()) SPOOL_LOG_INFO("%s", note.c_str());
  pool_ = std::make_unique<ThreadPool>(options.threads);
  // The tokenizer first, so that the planner's measured baseline RSS includes it.
  if (options.load_tokenizer) {
    const auto& s = weights_->source();
    if (s.kind == formats::ModelSource::Kind::kGguf) {
      SPOOL_ASSIGN_OR_RETURN(tokenizer_, tokenizer::LoadTokenizerFromGguf(*s.gguf));
    } else if (!s.tokenizer_json_path.empty()) {
      SPOOL_ASSIGN_OR_RETURN(tokenizer_, tokenizer::LoadTokenizerFromJson(s.tokenizer_json_path, s.tokenizer_config_path));
    }
  }
  if (!options.draft_model.empty()) SPOOL_TRY(PlanDraft());
  // --device: the device and its VRAM plan first; the host plan places what VRAM does not
  // hold (the three weight tiers: VRAM, host RAM, disk).
  if (options.device.kind != gpu::DeviceSpec::Kind::kCpu) SPOOL_TRY(PrepareDevice());
  PlannerOptions po = PlannerOptionsFor(options, ctx_, pool_->num_threads());
  po.draft_bytes = draft_bytes_;
  if (gpu_) {
    const gpu::VramPlan& vp = gpu_->vram_plan();
    po.device_groups.assign(static_cast<size_t>(weights_->n_groups()), false);
    for (int l = 0; l < vp.n_resident; ++l) po.device_groups[static_cast<size_t>(l)] = true;
    po.device_groups[static_cast<size_t>(weights_->head_group())] = true;
    po.device_kv_in_vram = !vp.kv_windowed();
  }
  // Tests only: a fixed baseline, so that the plans of two processes (show --plan and
  // run) compare exactly; the measured one differs by a few pages between processes.
  if (const char* b = std::getenv("SPOOL_TEST_PLAN_BASELINE")) po.baseline_bytes = std::strtoull(b, nullptr, 10);
  SPOOL_ASSIGN_OR_RETURN(plan_, PlanResidency(*weights_, po));
  if (options_.prefill_chunk == 0) options_.prefill_chunk = plan_.prefill_chunk;  // auto: the plan's choice
  plan_.prefill_chunk = options_.prefill_chunk;
  plan_.disk_bytes_per_s = options.disk_bytes_per_s;
  if (options.disk_bytes_per_s == 0 && options.measure_disk && !plan_.all_resident()) {
    // Before the ring exists, in at most the ring's bytes: the probe's buffers are freed
    // (returned to the kernel: they are large) before StreamingWeights allocates.
    // A failed probe only loses the prediction (disk_bytes_per_s stays 0).
    auto bw = MeasureDiskBandwidth(weights_->source(), kDiskProbeBytes, DiskProbeBatchBytes(plan_));
    if (bw.ok()) {
      plan_.disk_bytes_per_s = *bw;
      plan_.disk_measured = true;
    }
  }
  return Status::Ok();
}

Status Engine::PlanDraft() {
  const std::string& path = options_.draft_model;
  if (options_.max_draft < 1) return InvalidArgument("--draft needs a draft length >= 1 (--draft-max)");
  DType self_type;
  std::unique_ptr<models::ModelWeights> dw;
  if (ParseSelfDraft(path, &self_type)) {
    // A quantised copy of this model, cached under $SPOOL_HOME/drafts (runtime/self_draft.h).
    SPOOL_ASSIGN_OR_RETURN(std::string fp, ModelFingerprint());
    SPOOL_ASSIGN_OR_RETURN(formats::ModelSource src,
                           OpenSelfDraft(weights_->source(), fp, self_type, kv::SpoolHome() + "/drafts", &self_draft_built_));
    draft_source_ = src;
    SPOOL_ASSIGN_OR_RETURN(dw, models::ModelWeights::Load(std::move(src)));
  } else {
    if (path.rfind("self", 0) == 0 && path.find(':') != std::string::npos)
      return InvalidArgument("--draft " + path + ": a self-draft is self, self:q8_0 or self:q4_0");
    SPOOL_ASSIGN_OR_RETURN(formats::ModelSource src, formats::OpenModelSource(path));
    SPOOL_ASSIGN_OR_RETURN(dw, models::ModelWeights::Load(std::move(src)));
  }
  const auto& dc = dw->config();
  if (dc.n_vocab != n_vocab())
    return InvalidArgument("draft model " + path + " has a vocabulary of " + std::to_string(dc.n_vocab) +
                           " tokens but " + weights_->source().display_name + " has " + std::to_string(n_vocab()) +
                           "; a draft model must share the target's vocabulary");
  if (dc.has_moe()) return InvalidArgument("draft model " + path + ": a mixture-of-experts draft model is not supported");
  if (tokenizer_ && !draft_source_) {
    // Same size is not the same vocabulary: compare every token's text.
    std::unique_ptr<tokenizer::Tokenizer> dt;
    const auto& s = dw->source();
    if (s.kind == formats::ModelSource::Kind::kGguf) {
      SPOOL_ASSIGN_OR_RETURN(dt, tokenizer::LoadTokenizerFromGguf(*s.gguf));
    } else if (!s.tokenizer_json_path.empty()) {
      SPOOL_ASSIGN_OR_RETURN(dt, tokenizer::LoadTokenizerFromJson(s.tokenizer_json_path, s.tokenizer_config_path));
    }
    if (dt && dt->n_vocab() == tokenizer_->n_vocab())
      for (int32_t id = 0; id < dt->n_vocab(); ++id)
        if (dt->TokenText(id) != tokenizer_->TokenText(id))
          return InvalidArgument("draft model " + path + " has another vocabulary: token " + std::to_string(id) + " is \"" +
                                 dt->TokenText(id) + "\" there but \"" + tokenizer_->TokenText(id) + "\" in " +
                                 weights_->source().display_name);
  }
  EngineOptions& d = draft_options_;
  d = EngineOptions();
  d.threads = options_.threads;
  d.ctx = std::min(ctx_, dc.n_ctx_train);
  d.prefill_chunk = options_.prefill_chunk;
  d.kv_dtype = options_.kv_dtype;
  d.kv_page_tokens = options_.kv_page_tokens;
  d.load_tokenizer = false;
  d.kv_window = 0;  // all in RAM: the draft's KV is part of its resident cost
  d.max_sequences = std::max<int64_t>(options_.max_sequences, 1);  // a draft sequence per decoding one (bound)
  d.io_backend = options_.io_backend;
  d.max_draft = options_.max_draft;  // its catch-up steps (ModelDrafter) have up to max_draft + 1 rows
  // Its whole plan with every group resident: a budget nothing exceeds; a fixed
  // baseline (the process's is already the target's).
  d.mem_budget = uint64_t{1} << 60;
  PlannerOptions po = PlannerOptionsFor(d, d.ctx, options_.threads > 0 ? options_.threads : pool_->num_threads());
  po.baseline_bytes = 1;
  SPOOL_ASSIGN_OR_RETURN(ResidencyPlan dp, PlanResidency(*dw, po));
  draft_bytes_ = dp.planned_bytes() - 1;
  return Status::Ok();
}

Result<std::unique_ptr<Engine>> Engine::Open(const std::string& model, const EngineOptions& options) {
  return OpenImpl(model, options, nullptr);
}

Result<std::unique_ptr<Engine>> Engine::OpenImpl(const std::string& model, const EngineOptions& options,
                                                 formats::ModelSource* given) {
  Stopwatch sw;
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  SPOOL_TRY(e->PrepareAndPlan(model, given));
  StreamingOptions so;
  so.reader.backend = options.io_backend;
  so.expert_eviction = options.expert_eviction;
  SPOOL_ASSIGN_OR_RETURN(auto streaming, StreamingWeights::Open(*e->weights_, e->plan_, so));
  e->stats_.resident_bytes = streaming->stats().resident_bytes;
  e->streaming_ = streaming.get();
  e->provider_ = std::move(streaming);
  e->transformer_ = std::make_unique<models::Transformer>(*e->weights_, *e->pool_);
  if (!options.draft_model.empty()) {
    auto d = e->draft_source_ ? OpenImpl(options.draft_model, e->draft_options_, &*e->draft_source_)
                              : Engine::Open(options.draft_model, e->draft_options_);
    if (!d.ok()) return Status(d.status().code(), "draft model " + options.draft_model + ": " + d.status().message());
    if (!(*d)->plan().all_resident())
      return InternalError("draft model " + options.draft_model + " was planned resident but streams");
    e->draft_ = std::move(*d);
  }
  if (e->gpu_) SPOOL_TRY(e->LoadDevice());
  e->stats_.load_seconds = sw.Seconds();
  return e;
}

Result<EnginePlan> Engine::Plan(const std::string& model, const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  SPOOL_TRY(e->PrepareAndPlan(model));
  EnginePlan out;
  out.ctx = e->ctx_;
  out.plan = e->plan_;
  if (e->gpu_) {
    SPOOL_ASSIGN_OR_RETURN(out.vram_plan, e->gpu_->TierPlan(e->HostLayers()));
  }
  out.weights = std::move(e->weights_);
  return out;
}

GpuBackendOptions Engine::DeviceOptions() const {
  GpuBackendOptions g;
  g.ctx = ctx_;
  g.kv_dtype = options_.kv_dtype;
  g.page_tokens = options_.kv_page_tokens;
  g.max_rows = std::max({options_.prefill_chunk, options_.max_step_rows, options_.max_draft + 1});
  g.n_kv = std::max<int64_t>(options_.max_sequences, 1);
  g.vram_budget = options_.vram_budget;
  g.kv_hot_tokens = options_.vram_kv_window;
  // Tree steps come from --draft-tree, or from a request's speculative field whenever
  // speculation is configured (serve/batch): their scratch is small (a KV region of a
  // page + a step, one step's attention state).
  g.trees = options_.draft_trees || options_.max_draft > 0;
  return g;
}

Status Engine::PrepareDevice() {
  // The VRAM plan needs the chunk size before the host plan could choose one: on the
  // GPU, auto is the smallest candidate.
  if (options_.prefill_chunk == 0) options_.prefill_chunk = std::end(kAutoPrefillChunks)[-1];
  // A draft model (--draft) runs on the CPU beside a GPU target: its own Engine, every
  // group resident in RAM (PlanDraft), as with a CPU target (docs/parts/gpu.md, "Draft
  // models and trees on the GPU": why not in VRAM). Only the target's verification steps
  // run on the device.
  SPOOL_ASSIGN_OR_RETURN(gpu_, GpuBackend::Prepare(options_.device, *weights_, DeviceOptions(), &device_note_));
  if (gpu_ && options_.draft_trees) {
    // Draft trees need the whole KV cache in VRAM and no sliding-window layer
    // (gpu::LlamaDecoder::CheckTree); say so at open rather than at the first tree step.
    std::string why;
    if (gpu_->vram_plan().kv_windowed())
      why = "the VRAM plan keeps a window of " + std::to_string(gpu_->vram_plan().kv_hot_pages) + " of " +
            std::to_string(gpu_->vram_plan().kv_pages) + " KV pages, and draft trees need the whole KV cache in VRAM";
    for (const auto& spec : config().layers)
      if (why.empty() && spec.mixer == models::MixerKind::kSlidingAttention)
        why = "draft trees with sliding-window attention layers do not run on the GPU";
    if (!why.empty()) {
      if (options_.device.kind != gpu::DeviceSpec::Kind::kAuto)
        return Unsupported("--device " + gpu::DeviceSpecName(options_.device) + " with --draft-tree: " + why +
                           "; use chains (no --draft-tree) or --device cpu");
      gpu_.reset();
      device_note_ = "--device auto: " + why + ": using the CPU";
    }
  }
  if (!device_note_.empty()) SPOOL_LOG_WARN("%s", device_note_.c_str());
  return Status::Ok();
}

std::vector<bool> Engine::HostLayers() const {
  // The host plan's resident layer groups are the device's host tier.
  return std::vector<bool>(plan_.resident.begin(), plan_.resident.begin() + weights_->head_group());
}

Status Engine::LoadDevice() {
  SPOOL_TRY(gpu_->Load(*provider_, HostLayers()));
  stats_.resident_bytes += gpu_->vram_plan().host_bytes;
  SPOOL_LOG_INFO("forward pass on %s", gpu_->name().c_str());
  return Status::Ok();
}

Status Engine::RunOnDevice(Sequence& seq, std::span<const int32_t> tokens, float* logits, bool all_logits) {
  if (!seq.dkv_) {
    // The sequence's own (empty) CPU cache holds the pages that leave the VRAM KV window.
    SPOOL_ASSIGN_OR_RETURN(seq.dkv_, gpu_->NewKv(seq.kv_.get()));
  }
  return gpu_->Run(*seq.dkv_, tokens, logits, all_logits);
}

std::unique_ptr<Sequence> Engine::NewSequence() {
  using models::RecurrentLayoutOf;
  const auto& c = config();
  kv::KvLayout layout{c.n_kv_layers(), c.n_head_kv, c.head_dim, options_.kv_page_tokens, options_.kv_dtype};
  layout.window = SlidingWindows(c);
  auto s = std::unique_ptr<Sequence>(new Sequence());
  // On the GPU the CPU cache holds the pages older than the VRAM KV window (if any).
  if (options_.kv_window > 0 && ctx_ > options_.kv_window && (!gpu_ || gpu_->vram_plan().kv_windowed())) {
    kv::DiskKvOptions d;
    d.window_tokens = options_.kv_window;
    d.max_tokens = ctx_;
    d.dir = options_.kv_dir.empty() ? kv::SpoolHome() + "/kv" : options_.kv_dir;
    d.quota = kv_quota_;
    s->kv_ = std::make_unique<kv::DiskKv>(layout, d);
  } else {
    s->kv_ = std::make_unique<kv::InRamKv>(layout);
  }
  if (c.has_linear()) {
    kv::RecurrentLayout rl = RecurrentLayoutOf(c);
    rl.checkpoint_every = options_.prefill_chunk;  // where the scheduler's prefix reuse cuts
    rl.keep_recent = RecurrentKeepRecent(options_);  // speculative rollback past rejected drafts
    s->state_ = std::make_unique<kv::RecurrentState>(rl);
  }
  return s;
}

Status Engine::CheckTokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= n_vocab())
      return InvalidArgument("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(n_vocab()) + ")");
  return Status::Ok();
}

Status Engine::Prefill(Sequence& seq, std::span<const int32_t> tokens, float* logits, bool all_logits,
                       const ProgressFn& progress) {
  SPOOL_TRY(CheckTokens(tokens));
  if (seq.n_tokens() + static_cast<int64_t>(tokens.size()) > ctx_)
    return ResourceExhausted("the prompt needs " + std::to_string(seq.n_tokens() + tokens.size()) +
                             " tokens but the context holds " + std::to_string(ctx_) + " (raise --ctx)");
  Stopwatch sw;
  const uint64_t bytes0 = streaming_->stats().bytes_read();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t start_tokens = seq.n_tokens();
  // A recurrent state cannot be rewound: keep a copy to restore if a chunk fails.
  kv::RecurrentState::Snapshot start_state;
  if (seq.state_ && n > options_.prefill_chunk) start_state = seq.state_->Save();
  for (int64_t done = 0; done < n;) {
    const int64_t m = std::min(options_.prefill_chunk, n - done);
    const bool last = done + m == n;
    models::SeqStep step{seq.kv_.get(), tokens.subspan(done, m), all_logits, false};
    step.state = seq.state_.get();
    std::vector<float> discard;
    float* out = nullptr;
    if (all_logits) out = logits + done * n_vocab();
    else if (last) out = logits;
    else {
      discard.resize(n_vocab());
      out = discard.data();
    }
    Status st = gpu_ ? RunOnDevice(seq, step.tokens, out, all_logits)
                     : transformer_->Forward(std::span<const models::SeqStep>(&step, 1), *provider_, out);
    if (!st.ok()) {
      if (seq.dkv_) seq.dkv_->n_tokens = start_tokens;
      (void)seq.kv_->Truncate(start_tokens);
      if (seq.state_) {
        if (done > 0) seq.state_->Restore(start_state);
        else (void)seq.state_->Truncate(start_tokens);
      }
      seq.tokens_.resize(start_tokens);
      return st;
    }
    seq.tokens_.insert(seq.tokens_.end(), tokens.begin() + done, tokens.begin() + done + m);
    done += m;
    if (progress && !progress(done, n)) return Cancelled("prefill cancelled");
  }
  stats_.prefill_tokens += n;
  stats_.prefill_seconds += sw.Seconds();
  stats_.prefill_weight_bytes += streaming_->stats().bytes_read() - bytes0;
  return Status::Ok();
}

Status Engine::Decode(std::span<Sequence* const> seqs, std::span<const int32_t> tokens, float* logits) {
  SPOOL_CHECK(seqs.size() == tokens.size());
  std::vector<StepItem> items(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) items[i] = StepItem{seqs[i], tokens.subspan(i, 1), false};
  return Step(items, logits);
}

Status Engine::Step(std::span<const StepItem> items, float* logits) {
  int64_t prefill_tokens = 0, decode_tokens = 0;
  for (const StepItem& it : items) {
    SPOOL_CHECK(it.seq != nullptr);
    if (it.tokens.empty()) return InvalidArgument("a step item has no tokens");
    SPOOL_TRY(CheckTokens(it.tokens));
    const int64_t m = static_cast<int64_t>(it.tokens.size());
    if (it.seq->n_tokens() + m > ctx_)
      return ResourceExhausted(m == 1 ? "context full (" + std::to_string(ctx_) + " tokens; raise --ctx)"
                                      : "the prompt needs " + std::to_string(it.seq->n_tokens() + m) +
                                            " tokens but the context holds " + std::to_string(ctx_) + " (raise --ctx)");
    for (const StepItem& other : items)
      if (&other != &it && other.seq == it.seq) return InvalidArgument("a sequence appears twice in one step");
    if (!it.tree_parent.empty() && it.seq->state_)
      return InvalidArgument("draft trees are not supported for models with linear-attention layers (" + config().arch +
                             "): a node's recurrent state depends on its path, not on the rows before it");
    if (!it.tree_parent.empty()) {
      if (it.tree_base < 0 || it.tree_base > it.seq->n_tokens() ||
          static_cast<int64_t>(it.tree_parent.size()) != it.seq->n_tokens() + m - it.tree_base)
        return InvalidArgument("a draft tree of " + std::to_string(it.tree_parent.size()) + " nodes from slot " +
                               std::to_string(it.tree_base) + " does not end at the step's last token (slot " +
                               std::to_string(it.seq->n_tokens() + m - 1) + ")");
      std::vector<int32_t> depth;
      SPOOL_TRY(models::TreeDepths(it.tree_parent, &depth));
    }
    (m == 1 || it.decode_rows || !it.tree_parent.empty() ? decode_tokens : prefill_tokens) += m;
  }
  Stopwatch sw;
  const uint64_t bytes0 = streaming_->stats().bytes_read();
  if (gpu_) {
    // Every item's rows in one device run: one pass over the weights for all sequences
    // (more only when the rows exceed a pass), attention per sequence; every row has
    // decode numerics (GEMV heads, the GPU's GEMM rows equal its GEMV), so decode_rows
    // holds as asked and each sequence's logits are those of running it alone.
    std::vector<gpu::RunItem> run(items.size());
    float* out = logits;
    for (size_t i = 0; i < items.size(); ++i) {
      Sequence& seq = *items[i].seq;
      if (!seq.dkv_) {
        SPOOL_ASSIGN_OR_RETURN(seq.dkv_, gpu_->NewKv(seq.kv_.get()));
      }
      gpu::RunItem& r = run[i];
      r.kv = seq.dkv_.get();
      r.tokens = items[i].tokens;
      r.logits = out;
      r.all_logits = items[i].all_logits;
      r.tree_base = items[i].tree_base;
      r.tree_parent = items[i].tree_parent;
      out += (items[i].all_logits ? static_cast<int64_t>(items[i].tokens.size()) : 1) * n_vocab();
    }
    SPOOL_TRY(gpu_->Run(run));
    // KeepTreePath moves the kept rows on the device: the TreeRows say where the step
    // was, its K/V stay in VRAM (not captured).
    for (const StepItem& it : items)
      if (!it.tree_parent.empty() && it.tree_rows != nullptr)
        *it.tree_rows = models::TreeRows{it.seq->n_tokens(), static_cast<int64_t>(it.tokens.size()), 0, {}, {}};
  } else {
    std::vector<models::SeqStep> steps(items.size());
    for (size_t i = 0; i < items.size(); ++i)
      steps[i] = models::SeqStep{items[i].seq->kv_.get(), items[i].tokens,    items[i].all_logits,
                                 items[i].decode_rows,     items[i].tree_base, items[i].tree_parent,
                                 items[i].tree_rows,       items[i].seq->state_.get()};
    SPOOL_TRY(transformer_->Forward(steps, *provider_, logits));
  }
  for (const StepItem& it : items) it.seq->tokens_.insert(it.seq->tokens_.end(), it.tokens.begin(), it.tokens.end());
  // A mixed step's time and bytes are counted as decode when it decodes anything.
  const double secs = sw.Seconds();
  const uint64_t bytes = streaming_->stats().bytes_read() - bytes0;
  stats_.decode_tokens += static_cast<uint64_t>(decode_tokens);
  if (decode_tokens > 0) ++stats_.decode_steps;
  stats_.prefill_tokens += static_cast<uint64_t>(prefill_tokens);
  (decode_tokens > 0 ? stats_.decode_seconds : stats_.prefill_seconds) += secs;
  (decode_tokens > 0 ? stats_.decode_weight_bytes : stats_.prefill_weight_bytes) += bytes;
  return Status::Ok();
}

Status Engine::KeepTreePath(Sequence& seq, const models::TreeRows& rows, std::span<const int32_t> path) {
  if (seq.state_) return InvalidArgument("KeepTreePath: draft trees are not supported for models with linear-attention layers");
  if (rows.first < 0) return InvalidArgument("KeepTreePath: the rows are not the sequence's last step");
  SPOOL_TRY(models::CheckTreePath(rows, seq.n_tokens(), path));
  std::vector<int32_t> kept;
  for (const int32_t r : path) kept.push_back(seq.tokens_[static_cast<size_t>(rows.first + r)]);
  if (gpu_) {
    SPOOL_CHECK(seq.dkv_ != nullptr);
    if (Status st = gpu_->KeepTreePath(*seq.dkv_, rows.first, path); !st.ok()) {
      (void)gpu_->Truncate(*seq.dkv_, rows.first);  // at worst the step is dropped whole
      seq.tokens_.resize(static_cast<size_t>(rows.first));
      return st;
    }
    seq.tokens_.resize(static_cast<size_t>(rows.first));
    seq.tokens_.insert(seq.tokens_.end(), kept.begin(), kept.end());
    return Status::Ok();
  }
  if (Status st = models::KeepTreePath(*seq.kv_, rows, path); !st.ok()) {
    (void)seq.kv_->Truncate(rows.first);  // at worst the step is dropped whole
    seq.tokens_.resize(static_cast<size_t>(std::min<int64_t>(seq.kv_->n_tokens(), rows.first)));
    return st;
  }
  seq.tokens_.resize(static_cast<size_t>(rows.first));
  seq.tokens_.insert(seq.tokens_.end(), kept.begin(), kept.end());
  return Status::Ok();
}

int64_t Engine::RewindPoint(Sequence& seq, int64_t n) const {
  if (!seq.state_) return n;
  return seq.state_->RewindPoint(n);
}

bool Engine::KeepCheckpoint(Sequence& seq) { return seq.state_ && seq.state_->KeepCheckpoint(); }

Status Engine::Truncate(Sequence& seq, int64_t n) {
  // The recurrent state rewinds only to its length, 0 or a kept checkpoint (a multiple
  // of the prefill chunk): refuse before the KV moves.
  if (seq.state_ && !seq.state_->CanTruncate(n))
    return InvalidArgument("cannot truncate a sequence of a model with linear-attention layers from " +
                           std::to_string(seq.n_tokens()) + " to " + std::to_string(n) +
                           " tokens (its recurrent state cannot be rewound there: only to a checkpoint at a multiple "
                           "of the prefill chunk)");
  if (gpu_) {
    // The KV cache is in VRAM (rows past n become scratch) and, beyond the VRAM KV
    // window, in the sequence's CPU cache.
    if (n < 0 || n > seq.n_tokens())
      return InvalidArgument("cannot truncate a sequence of " + std::to_string(seq.n_tokens()) + " tokens to " +
                             std::to_string(n));
    if (seq.dkv_) SPOOL_TRY(gpu_->Truncate(*seq.dkv_, n));
    seq.tokens_.resize(n);
    return Status::Ok();
  }
  SPOOL_TRY(seq.kv_->Truncate(n));
  if (seq.state_) SPOOL_TRY(seq.state_->Truncate(n));
  seq.tokens_.resize(n);
  return Status::Ok();
}

}  // namespace spool::runtime
