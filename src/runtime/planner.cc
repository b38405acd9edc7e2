#include "runtime/planner.h"

#include <algorithm>
#include <cstdio>

#include "base/aligned_buffer.h"
#include "base/strings.h"
#include "base/sysinfo.h"
#include "base/timer.h"
#include "kv/disk_kv.h"
#include "models/linear_attention.h"
#include "models/transformer.h"
#include "storage/reader.h"

namespace spool::runtime {

namespace {

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
uint64_t U(int64_t x) { return static_cast<uint64_t>(std::max<int64_t>(x, 0)); }

// "0-3, 5, 7-15" for the groups whose flag equals `want` (head shown as "head").
std::string GroupRanges(const models::ModelWeights& w, const std::vector<bool>& resident, bool want) {
  std::string out;
  const int n_layer = w.head_group();
  for (int l = 0; l < n_layer;) {
    if (resident[l] != want) {
      ++l;
      continue;
    }
    int e = l;
    while (e + 1 < n_layer && resident[e + 1] == want) ++e;
    if (!out.empty()) out += ", ";
    out += e == l ? std::to_string(l) : std::to_string(l) + "-" + std::to_string(e);
    l = e + 1;
  }
  std::string s = out.empty() ? "" : "layers " + out;
  if (resident[w.head_group()] == want) s += std::string(s.empty() ? "" : ", ") + "head";
  return s.empty() ? "none" : s;
}

}  // namespace

uint64_t EstimateActivationBytes(const models::ModelConfig& c, int64_t rows, int64_t max_logit_rows, int threads) {
  const uint64_t n = U(rows), r = U(std::min<int64_t>(rows, models::Transformer::kMlpRowBlock));
  const uint64_t D = U(c.n_embd), QD = U(c.q_dim()), KD = U(c.kv_dim()), F = U(c.max_ff()), V = U(c.n_vocab);
  const uint64_t max_in = std::max({D, QD, F});
  uint64_t b = 0;
  // Transformer scratch (models/transformer.cc EnsureScratch): x, h, q, k, v, attn, ffn out, pos;
  // FeedForward (models/ffn.cc Reserve): gate, up.
  b += n * D * 4 + n * std::max(D, QD) * 4 + n * QD * 4 + 2 * n * KD * 4 + n * QD * 4 + r * D * 4 + n * 8;
  b += r * F * 4 + r * std::max(F, D) * 4;
  // MoE scratch: router logits, top-k ids and weights, an expert's gathered rows in and out.
  if (c.has_moe()) {
    const uint64_t E = U(c.moe.n_expert), K = U(c.moe.n_expert_used);
    b += r * E * 4 + 2 * r * K * 4 + 2 * r * D * 4 + r * 20;
    if (c.ggml_numerics) b += r * K * D * 4;  // each row's weighted expert outputs by rank
    if (c.ffn_act == models::FfnAct::kSwiGluOai) b += r * 2 * U(c.moe.n_ff_expert) * 4;  // gpt-oss interleaved gate/up
  }
  // Gated attention (q projection with gates) and linear-attention layers
  // (models/transformer.cc, models/linear_attention.cc scratch).
  if (c.attn_output_gate) b += n * QD * 4 * 3;
  if (c.has_linear()) {
    const models::LinearAttnSpec& s = c.linear;
    b += n * U(s.qkvz_dim() + s.ba_dim() + 2 * s.value_dim()) * 4;                 // projections, split z, gated-norm output
    b += n * U(2 * s.conv_dim() + s.value_dim() + 2 * s.n_v_heads) * 4;           // ungrouped, conv out, z, β, g
    const uint64_t C = U(std::min<int64_t>(rows, c.delta_chunk));
    b += U(std::max(threads, 1)) * (n * U(2 * s.k_head_dim + 2 * s.v_head_dim + 2) * 4 +
                                    (C + C * C + C * U(2 * s.v_head_dim + s.k_head_dim)) * 4);  // per-head scratch
  }
  // Attention state: running max/sum per (row, head) and the accumulator [rows, q_dim].
  b += n * U(c.n_head) * 8 + n * QD * 4;
  // MatMul: prepared activations (≤ 4 bytes per input element) for the widest input.
  b += std::max(n * std::max(D, QD), r * F) * 4;
  // GEMM per-thread weight tiles (256 rows of the widest input in f32) + oneDNN scratchpad.
  b += U(std::max(threads, 1)) * (256 * max_in * 4 + (4ull << 20));
  // Logits: the caller's rows, the engine's per-chunk row, the sampler's copy and ids.
  b += (U(std::max<int64_t>(max_logit_rows, 1)) + 3) * V * 4;
  // Token ids of the step.
  b += n * 4;
  return b;
}

std::vector<int64_t> SlidingWindows(const models::ModelConfig& c) {
  // Indexed by KV slot (ModelConfig::kv_layer): linear-attention layers have none.
  std::vector<int64_t> w(static_cast<size_t>(c.n_kv_layers()), 0);
  bool any = false;
  for (size_t l = 0; l < c.layers.size() && l < static_cast<size_t>(c.n_layer); ++l)
    if (c.layers[l].mixer == models::MixerKind::kSlidingAttention) {
      w[static_cast<size_t>(c.kv_layer(static_cast<int64_t>(l)))] = c.layers[l].window;
      any = true;
    }
  if (!any) w.clear();
  return w;
}

std::string SlidingWindowNote(const models::ModelConfig& c, int64_t ctx) {
  int64_t n = 0, window = 0;
  for (const auto& spec : c.layers)
    if (spec.mixer == models::MixerKind::kSlidingAttention && spec.window >= ctx) {
      ++n;
      window = std::max(window, spec.window);
    }
  if (n == 0) return "";
  return "the sliding window of " + std::to_string(n) + " layers (" + std::to_string(window) +
         " tokens) is not shorter than the context (" + std::to_string(ctx) +
         "): they attend to every position, as in transformers and llama.cpp";
}

uint64_t EstimateKvBytes(const models::ModelConfig& c, int64_t tokens, int64_t page_tokens, DType dtype,
                         int64_t step_tokens) {
  const uint64_t pt = U(std::max<int64_t>(page_tokens, 1));
  const uint64_t pages = AlignUp(U(tokens), pt) / pt;
  const uint64_t elem = dtype == DType::kF32 ? 4 : 2;
  uint64_t total_pages = 0;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    uint64_t p = pages;
    if (static_cast<size_t>(l) < c.layers.size() && c.layers[l].mixer == models::MixerKind::kLinearAttention) continue;
    if (static_cast<size_t>(l) < c.layers.size() && c.layers[l].mixer == models::MixerKind::kSlidingAttention) {
      const uint64_t span = U(c.layers[l].window - 1 + std::max<int64_t>(step_tokens, 1));
      p = std::min(p, AlignUp(span, pt) / pt + 1);
    }
    total_pages += p;
  }
  return total_pages * pt * U(c.kv_dim()) * 2 * elem;
}

uint64_t EstimateSequenceKvBytes(const models::ModelConfig& c, int64_t ctx, int64_t kv_window, int64_t page_tokens,
                                 DType dtype, int64_t step_tokens) {
  if (kv_window <= 0 || ctx <= kv_window) return EstimateKvBytes(c, ctx, page_tokens, dtype, step_tokens);
  // Engine::NewSequence creates a DiskKv with these options.
  kv::KvLayout layout{c.n_kv_layers(), c.n_head_kv, c.head_dim, std::max<int64_t>(page_tokens, 1), dtype};
  kv::DiskKvOptions d;
  d.window_tokens = kv_window;
  d.max_tokens = ctx;
  return kv::DiskKv::EstimateRamBytes(layout, d);
}

uint64_t EstimateSequenceKvDiskBytes(const models::ModelConfig& c, int64_t ctx, int64_t kv_window, int64_t page_tokens,
                                     DType dtype, int64_t step_tokens) {
  if (kv_window <= 0 || ctx <= kv_window) return 0;
  const int64_t pt = std::max<int64_t>(page_tokens, 1);
  const uint64_t elem = dtype == DType::kF32 ? 4 : 2;
  const uint64_t slot = AlignUp(U(pt) * U(c.kv_dim()) * elem, 4096);  // storage::kDirectAlign, as DiskKv
  const int64_t hot = std::max<int64_t>(1, (kv_window + pt - 1) / pt);
  const int64_t pages = (ctx + pt - 1) / pt;
  uint64_t disk_pages = 0;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    int64_t held = pages;
    if (static_cast<size_t>(l) < c.layers.size() && c.layers[l].mixer == models::MixerKind::kLinearAttention) continue;
    if (static_cast<size_t>(l) < c.layers.size() && c.layers[l].mixer == models::MixerKind::kSlidingAttention)
      held = std::min(held, (c.layers[l].window - 1 + std::max<int64_t>(step_tokens, 1) + pt - 1) / pt + 1);
    disk_pages += U(std::max<int64_t>(held - hot, 0));
  }
  return disk_pages * 2 * slot;
}

uint64_t GroupReadBytes(const models::ModelWeights& w, int g) {
  uint64_t b = 0;
  for (const models::MatrixRef* m : w.group(g).matrices) {
    const uint64_t a = m->info->offset / models::kGroupPage * models::kGroupPage;
    b += AlignUp(m->info->offset + m->info->nbytes, models::kGroupPage) - a;
  }
  return b;
}

uint64_t ExpertReadBytes(const models::ModelWeights& w, int64_t l, int64_t e) {
  uint64_t b = 0;
  for (const models::FileExtent& x : w.expert(l, e).extents) {
    const uint64_t a = x.offset / models::kGroupPage * models::kGroupPage;
    b += AlignUp(x.offset + x.nbytes, models::kGroupPage) - a;
  }
  return b;
}

namespace {
Result<ResidencyPlan> PlanResidencyForChunk(const models::ModelWeights& w, const PlannerOptions& o);
}  // namespace

Result<ResidencyPlan> PlanResidency(const models::ModelWeights& w, const PlannerOptions& options) {
  if (options.prefill_chunk != 0) {
    SPOOL_ASSIGN_OR_RETURN(ResidencyPlan p, PlanResidencyForChunk(w, options));
    p.prefill_chunk = options.prefill_chunk;
    return p;
  }
  // Auto: the smallest candidate decides feasibility and residency; the budget and
  // baseline it measured are reused so that every candidate sees the same figures.
  PlannerOptions o = options;
  o.prefill_chunk = std::end(kAutoPrefillChunks)[-1];
  SPOOL_ASSIGN_OR_RETURN(ResidencyPlan base, PlanResidencyForChunk(w, o));
  o.budget_bytes = base.budget_bytes;
  o.baseline_bytes = base.baseline_bytes;
  ResidencyPlan best = base;
  for (int64_t chunk : kAutoPrefillChunks) {
    if (chunk <= o.prefill_chunk || chunk > std::max<int64_t>(options.ctx, o.prefill_chunk)) continue;
    PlannerOptions oc = o;
    oc.prefill_chunk = chunk;
    auto r = PlanResidencyForChunk(w, oc);
    if (!r.ok() || r->resident != base.resident || r->embedding_resident != base.embedding_resident ||
        r->expert_cache_slots != base.expert_cache_slots)
      continue;
    best = *r;
    break;
  }
  best.budget_auto = base.budget_auto;
  best.prefill_chunk = best.prefill_rows;
  best.prefill_chunk_auto = true;
  return best;
}

namespace {
// --device vulkan: VRAM holds o.device_groups; the other layers go to the device's host
// tier (resident here: host-visible memory, read once) while they fit, spread evenly
// over the depth as on the CPU (host-tier copies interleave with disk reads), and the
// rest to its disk tier, read every pass into two staging buffers (the ring).
Result<ResidencyPlan> PlanDeviceTiers(const models::ModelWeights& w, const PlannerOptions& o, ResidencyPlan p,
                                      uint64_t embd_bytes, uint64_t row_scratch) {
  const int n_groups = w.n_groups(), head = w.head_group();
  if (static_cast<int>(o.device_groups.size()) != n_groups)
    return InvalidArgument("planner: device_groups has " + std::to_string(o.device_groups.size()) + " entries, the model " +
                           std::to_string(n_groups) + " groups");
  if (!o.device_groups[head]) return InvalidArgument("planner: the device holds the output head in VRAM");
  if (w.config().has_moe()) return InvalidArgument("planner: device weight tiers for a mixture-of-experts model");
  p.on_device = o.device_groups;
  if (o.device_kv_in_vram) {
    p.kv_bytes = 0;
    p.kv_disk_bytes = 0;
    p.kv_on_disk = false;
  }
  p.resident.assign(n_groups, false);
  std::vector<int> layers;  // the groups this plan places
  uint64_t all = 0, largest = 0;
  for (int l = 0; l < head; ++l)
    if (!o.device_groups[l]) {
      layers.push_back(l);
      all += w.group(l).bytes;
      largest = std::max(largest, w.group(l).bytes);
    }
  const uint64_t table = AlignUp(embd_bytes + models::kGroupPage, models::kGroupPage);
  const uint64_t base = p.fixed_bytes() + p.kv_bytes;
  p.device_min_bytes = base + row_scratch;
  p.device_largest_bytes = largest;
  auto finish = [&]() {
    p.resident_bytes = p.embedding_resident ? table : 0;
    p.n_streamed = 0;
    p.ring_slot_bytes = 0;
    p.streamed_bytes_per_step = 0;
    for (int l : layers) {
      if (p.resident[l]) {
        p.resident_bytes += w.group(l).bytes;
      } else {
        ++p.n_streamed;
        p.ring_slot_bytes = std::max(p.ring_slot_bytes, w.group(l).bytes);
        p.streamed_bytes_per_step += GroupReadBytes(w, l);
      }
    }
    p.ring_slots = p.n_streamed > 0 ? 2 : 0;
    if (!p.embedding_resident) p.streamed_bytes_per_step += AlignUp(p.embedding_row_bytes, models::kGroupPage);
  };
  if (base + all + table <= p.budget_bytes) {  // every placed layer and the embedding table in RAM
    for (int l : layers) p.resident[l] = true;
    p.embedding_resident = true;
    finish();
    return p;
  }
  p.embedding_scratch_bytes = row_scratch;
  const bool all_fit = base + row_scratch + all <= p.budget_bytes;
  if (all_fit) {  // every placed layer in RAM, embedding rows read per token
    for (int l : layers) p.resident[l] = true;
    finish();
    return p;
  }
  const uint64_t need = base + row_scratch + 2 * largest;
  if (need > p.budget_bytes) {
    int n_vram = 0;
    for (int l = 0; l < head; ++l) n_vram += o.device_groups[l] ? 1 : 0;
    return ResourceExhausted(
        "--mem-budget " + FormatBytes(p.budget_bytes) + " is too small for " + w.source().display_name +
        " on the GPU: it needs at least " + FormatBytes(need) + " = process baseline " + FormatBytes(p.baseline_bytes) +
        " + reserve " + FormatBytes(p.reserve_bytes) + " + activations " + FormatBytes(p.activation_bytes) +
        " + host KV cache " + FormatBytes(p.kv_bytes) + " + embedding row scratch " + FormatBytes(row_scratch) +
        (p.draft_bytes > 0 ? " + draft model " + FormatBytes(p.draft_bytes) : std::string()) +
        " + 2 staging buffers of the largest layer read from disk (" + FormatBytes(largest) + " each); " +
        std::to_string(n_vram) + " of " + std::to_string(head) +
        " layers are in VRAM (--vram-budget); raise --mem-budget or --vram-budget, or lower --ctx / --prefill-chunk");
  }
  // Host-tier layers while they fit beside the staging buffers, spread over the depth.
  uint64_t left = p.budget_bytes - need;
  std::vector<uint64_t> sizes;
  for (int l : layers) sizes.push_back(w.group(l).bytes);
  std::sort(sizes.begin(), sizes.end());
  int64_t k = 0;
  for (uint64_t b : sizes) {
    if (b > left) break;
    left -= b;
    ++k;
  }
  const int64_t M = static_cast<int64_t>(layers.size());
  for (int64_t i = 0; i < M; ++i) p.resident[layers[static_cast<size_t>(i)]] = (i + 1) * k / M > i * k / M;
  finish();
  // Uneven sizes spread differently than counted: drop host-tier layers until it fits.
  for (int64_t i = M - 1; i >= 0 && p.planned_bytes() > p.budget_bytes; --i) {
    if (!p.resident[layers[static_cast<size_t>(i)]]) continue;
    p.resident[layers[static_cast<size_t>(i)]] = false;
    finish();
  }
  if (p.planned_bytes() > p.budget_bytes)
    return ResourceExhausted("--mem-budget " + FormatBytes(p.budget_bytes) + " is too small for " +
                             w.source().display_name + " on the GPU (planned " + FormatBytes(p.planned_bytes()) + ")");
  return p;
}

Result<ResidencyPlan> PlanResidencyForChunk(const models::ModelWeights& w, const PlannerOptions& o) {
  const models::ModelConfig& c = w.config();
  if (o.prefetch_depth < 2 || o.prefetch_depth > 64)
    return InvalidArgument("prefetch depth must be in [2, 64], got " + std::to_string(o.prefetch_depth));
  if (o.ctx <= 0 || o.n_seq <= 0 || o.prefill_chunk <= 0 || o.kv_window_tokens < 0)
    return InvalidArgument("planner: ctx, n_seq and prefill_chunk must be positive");
  ResidencyPlan p;
  p.budget_auto = o.budget_bytes == 0;
  if (p.budget_auto) {
    const uint64_t avail = AvailableRamBytes();
    if (avail == 0) return IoError("--mem-budget auto: cannot read MemAvailable from /proc/meminfo; give --mem-budget SIZE");
    p.budget_bytes = static_cast<uint64_t>(static_cast<double>(avail) * kAutoBudgetFraction);
  } else {
    p.budget_bytes = o.budget_bytes;
  }
  p.baseline_bytes = o.baseline_bytes > 0 ? o.baseline_bytes : AlignUp(CurrentRssBytes(), kBaselineGranule);
  p.reserve_bytes = kRuntimeReserveBytes;
  p.draft_bytes = o.draft_bytes;
  p.activation_bytes = EstimateActivationBytes(c, o.prefill_chunk, o.max_logit_rows, o.threads);
  p.ctx = o.ctx;
  p.n_seq = o.n_seq;
  p.kv_window_tokens = o.kv_window_tokens;
  p.kv_on_disk = o.kv_window_tokens > 0 && o.ctx > o.kv_window_tokens;
  p.prefill_rows = o.prefill_chunk;
  p.threads = o.threads;
  const int64_t kv_tokens = p.kv_on_disk ? o.kv_window_tokens : o.ctx;
  p.kv_bytes =
      U(o.n_seq) * EstimateSequenceKvBytes(c, o.ctx, o.kv_window_tokens, o.kv_page_tokens, o.kv_dtype, o.prefill_chunk);
  p.kv_disk_bytes = U(o.n_seq) * EstimateSequenceKvDiskBytes(c, o.ctx, o.kv_window_tokens, o.kv_page_tokens, o.kv_dtype,
                                                             o.prefill_chunk);
  if (c.has_linear()) {  // Engine::NewSequence's RecurrentState: fixed size, whatever the context
    kv::RecurrentLayout rl = models::RecurrentLayoutOf(c);
    rl.checkpoint_every = o.prefill_chunk;
    rl.keep_recent = o.recurrent_keep_recent;
    p.recurrent_keep_recent = o.recurrent_keep_recent;
    p.recurrent_bytes = U(o.n_seq) * rl.max_bytes();
    p.kv_bytes += p.recurrent_bytes;
  }

  const auto& embd = w.token_embd();
  p.embedding_row_bytes = embd.row_bytes();
  const int n_groups = w.n_groups(), head = w.head_group();
  std::vector<uint64_t> gbytes(n_groups);
  for (int g = 0; g < n_groups; ++g) gbytes[g] = w.group(g).bytes;
  const uint64_t embd_table = c.tied_embeddings ? 0 : AlignUp(embd.info->nbytes + models::kGroupPage, models::kGroupPage);
  // Row scratch: one row's page-aligned superset (rows are read one at a time).
  const uint64_t row_scratch = AlignUp(p.embedding_row_bytes, models::kGroupPage) + models::kGroupPage;

  if (!o.device_groups.empty()) return PlanDeviceTiers(w, o, std::move(p), embd.info->nbytes, row_scratch);
  const uint64_t base = p.fixed_bytes() + p.kv_bytes;  // without the embedding scratch
  uint64_t all = 0;
  for (uint64_t b : gbytes) all += b;
  p.resident.assign(n_groups, false);
  // Routed experts: slots of the largest expert's buffer.
  uint64_t max_expert_read = 0;
  if (c.has_moe()) {
    p.expert_slot_bytes = w.max_expert_bytes();
    p.n_experts_total = w.n_moe_layers() * c.moe.n_expert;
    p.expert_min_slots = std::min<int64_t>(c.moe.n_expert_used, p.n_experts_total);
    for (int64_t l = 0; l < c.n_layer; ++l)
      if (c.layers[l].ffn == models::FfnKind::kMoe)
        for (int64_t e = 0; e < c.moe.n_expert; ++e) max_expert_read = std::max(max_expert_read, ExpertReadBytes(w, l, e));
  }
  const uint64_t all_experts = U(p.n_experts_total) * p.expert_slot_bytes;
  const uint64_t min_cache = U(p.expert_min_slots) * p.expert_slot_bytes;

  if (p.budget_bytes >= base + all + embd_table + all_experts) {
    // Everything fits: no ring, no row reads, every expert held.
    p.resident.assign(n_groups, true);
    p.embedding_resident = !c.tied_embeddings;
    p.resident_bytes = all + embd_table;
    p.expert_cache_slots = p.n_experts_total;
    return p;
  }
  // Streaming. Each option fixes the head's residency; layers fill what is left after
  // the smallest expert cache.
  const uint64_t fixed = base + row_scratch + min_cache;
  uint64_t max_layer = 0;
  for (int l = 0; l < head; ++l) max_layer = std::max(max_layer, gbytes[l]);
  const uint64_t depth = U(o.prefetch_depth);
  struct Option {
    bool feasible = false;
    bool head_resident = false;
    int n_layers = 0;
    uint64_t resident = 0, ring_slot = 0;
  };
  auto evaluate = [&](bool head_resident) {
    Option op;
    op.head_resident = head_resident;
    // The ring must hold the largest streamed group; with k < n_layer resident layers
    // at least one layer streams (layers are nearly equal in size: use the largest).
    op.ring_slot = head_resident ? max_layer : std::max(max_layer, gbytes[head]);
    uint64_t need = fixed + depth * op.ring_slot + (head_resident ? gbytes[head] : 0);
    if (need > p.budget_bytes) return op;
    op.feasible = true;
    uint64_t left = p.budget_bytes - need;
    op.resident = head_resident ? gbytes[head] : 0;
    // Resident layers, counted in spread order (all layers the same size in practice).
    std::vector<uint64_t> sizes(gbytes.begin(), gbytes.begin() + head);
    std::sort(sizes.begin(), sizes.end());
    for (uint64_t s : sizes) {
      if (s > left) break;
      left -= s;
      op.resident += s;
      ++op.n_layers;
    }
    if (op.n_layers == head) {
      // Every layer resident: the ring only serves the head (or nothing).
      op.ring_slot = head_resident ? 0 : gbytes[head];
    }
    return op;
  };
  Option a = evaluate(true), b = evaluate(false);
  Option best = a.feasible && (!b.feasible || a.resident >= b.resident) ? a : b;
  if (!best.feasible) {
    const uint64_t ring = depth * max_layer;
    return ResourceExhausted(
        "--mem-budget " + FormatBytes(p.budget_bytes) + " is too small for " + w.source().display_name +
        ": it needs at least " + FormatBytes(fixed + ring + gbytes[head]) + " = process baseline " +
        FormatBytes(p.baseline_bytes) + " + reserve " + FormatBytes(p.reserve_bytes) + " + activations " +
        FormatBytes(p.activation_bytes) + " (prefill chunk " + std::to_string(o.prefill_chunk) + ") + KV cache " +
        FormatBytes(p.kv_bytes) + " (" + std::to_string(o.n_seq) + " x " + std::to_string(kv_tokens) +
        (p.kv_on_disk ? " tokens of --kv-window" : " tokens of --ctx") + ") + embedding row scratch " +
        FormatBytes(row_scratch) + (p.draft_bytes > 0 ? " + draft model " + FormatBytes(p.draft_bytes) : std::string()) +
        (min_cache > 0 ? " + expert cache " + std::to_string(p.expert_min_slots) + " x " + FormatBytes(p.expert_slot_bytes) +
                             " (one token's routed experts of a layer; a smaller cache never hits)"
                       : std::string()) +
        " + streaming ring " + std::to_string(depth) + " x " + FormatBytes(max_layer) +
        " (largest layer) + resident head " + FormatBytes(gbytes[head]) +
        " (or a ring of head-sized slots); raise --mem-budget or lower --ctx / --kv-window / --prefill-chunk");
  }
  p.embedding_scratch_bytes = row_scratch;
  p.resident[head] = best.head_resident;
  // Spread the resident layers evenly: layer l is resident iff ⌊(l+1)k/L⌋ > ⌊lk/L⌋.
  const int64_t L = head, k = best.n_layers;
  for (int64_t l = 0; l < L; ++l) p.resident[l] = (l + 1) * k / L > l * k / L;
  // Sizes can differ (exotic models): recount from the actual choice.
  p.resident_bytes = 0;
  p.ring_slot_bytes = 0;
  for (int g = 0; g < n_groups; ++g) {
    if (p.resident[g]) {
      p.resident_bytes += gbytes[g];
    } else {
      ++p.n_streamed;
      p.ring_slot_bytes = std::max(p.ring_slot_bytes, gbytes[g]);
      p.streamed_bytes_per_step += GroupReadBytes(w, g);
    }
  }
  p.ring_slots = static_cast<int>(std::min<uint64_t>(depth, U(p.n_streamed)));
  p.streamed_bytes_per_step += AlignUp(p.embedding_row_bytes, models::kGroupPage);  // one decode token's row
  p.expert_cache_slots = p.expert_min_slots;
  if (p.planned_bytes() > p.budget_bytes) {
    // Uneven group sizes spread differently than counted: drop resident layers until it fits.
    for (int64_t l = L - 1; l >= 0 && p.planned_bytes() > p.budget_bytes; --l) {
      if (!p.resident[l]) continue;
      p.resident[l] = false;
      p.resident_bytes -= gbytes[l];
      ++p.n_streamed;
      p.streamed_bytes_per_step += GroupReadBytes(w, static_cast<int>(l));
      p.ring_slot_bytes = std::max(p.ring_slot_bytes, gbytes[l]);
      p.ring_slots = static_cast<int>(std::min<uint64_t>(depth, U(p.n_streamed)));
    }
    if (p.planned_bytes() > p.budget_bytes)
      return ResourceExhausted("--mem-budget " + FormatBytes(p.budget_bytes) + " is too small for " +
                               w.source().display_name + " (planned " + FormatBytes(p.planned_bytes()) + ")");
  }
  if (p.expert_slot_bytes > 0) {
    // The rest of the budget grows the expert cache, up to every expert.
    const uint64_t extra = (p.budget_bytes - p.planned_bytes()) / p.expert_slot_bytes;
    p.expert_cache_slots = std::min<int64_t>(p.n_experts_total, p.expert_min_slots + static_cast<int64_t>(extra));
    if (!p.experts_resident()) {
      p.expert_bytes_per_token = U(w.n_moe_layers()) * U(c.moe.n_expert_used) * max_expert_read;
      p.streamed_bytes_per_step += p.expert_bytes_per_token;
    }
  }
  return p;
}
}  // namespace

uint64_t DiskProbeBatchBytes(const ResidencyPlan& p) {
  const uint64_t streaming = p.ring_bytes() + (p.experts_resident() ? 0 : p.expert_cache_bytes());
  if (p.all_resident() || streaming == 0) return 0;
  const uint64_t half = streaming / 2 / storage::kDirectAlign * storage::kDirectAlign;
  return std::clamp<uint64_t>(half, storage::kDirectAlign, 32ull << 20);
}

Result<double> MeasureDiskBandwidth(const formats::ModelSource& src, uint64_t max_bytes, uint64_t batch_bytes) {
  if (src.files.empty()) return InvalidArgument("model has no data files");
  size_t best = 0;
  uint64_t best_size = 0;
  for (size_t i = 0; i < src.files.size(); ++i) {
    SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(src.files[i]));
    if (f.size() > best_size) best_size = f.size(), best = i;
  }
  const uint64_t len = std::min(max_bytes, best_size / storage::kDirectAlign * storage::kDirectAlign);
  if (len == 0) return InvalidArgument(src.files[best] + ": too small to measure disk speed");
  // Batches into two buffers used in turn: the next batch is queued before the previous
  // one is waited on, so the queue never drains (RSS: 2 × batch_bytes). The buffers
  // outlive the reader (its destructor waits for reads in flight).
  const uint64_t batch = std::max<uint64_t>(batch_bytes / storage::kDirectAlign * storage::kDirectAlign, storage::kDirectAlign);
  const uint64_t chunk = std::min<uint64_t>(len, batch);
  AlignedBuffer buf[2] = {AlignedBuffer(chunk), AlignedBuffer(chunk)};
  storage::ReaderOptions ro;
  ro.direct = true;
  SPOOL_ASSIGN_OR_RETURN(auto reader, storage::Reader::Open({src.files[best]}, ro));
  Stopwatch sw;
  storage::Ticket pending = 0;
  int k = 0;
  for (uint64_t off = 0; off < len; off += chunk, k ^= 1) {
    storage::ReadRequest rq{0, off, std::min(chunk, len - off), buf[k].data()};
    SPOOL_ASSIGN_OR_RETURN(storage::Ticket t, reader->Submit(std::span<const storage::ReadRequest>(&rq, 1)));
    if (pending) SPOOL_TRY(reader->Wait(pending));
    pending = t;
  }
  if (pending) SPOOL_TRY(reader->Wait(pending));
  const double s = sw.Seconds();
  return s > 0 ? static_cast<double>(len) / s : 0.0;
}

std::string FormatPlan(const models::ModelWeights& w, const ResidencyPlan& p) {
  const double bw = p.disk_bytes_per_s;
  std::string s;
  char line[512];
  auto add = [&](const char* k, const std::string& v) {
    std::snprintf(line, sizeof line, "  %-22s %s\n", k, v.c_str());
    s += line;
  };
  add("memory budget", FormatBytes(p.budget_bytes) + (p.budget_auto ? " (auto: 70% of MemAvailable)" : ""));
  add("process baseline", FormatBytes(p.baseline_bytes) + " + reserve " + FormatBytes(p.reserve_bytes));
  if (p.draft_bytes > 0) add("draft model", FormatBytes(p.draft_bytes) + " (resident: weights, KV, activations)");
  add("activations", FormatBytes(p.activation_bytes) + " (steps of " + std::to_string(p.prefill_rows) + " rows, " +
                         std::to_string(p.threads) + " threads)");
  const int64_t kv_tokens = p.kv_on_disk ? p.kv_window_tokens : p.ctx;
  // Sliding-window layers keep only their window in RAM and on disk (the caches release
  // the rest).
  std::string sliding;
  {
    int64_t n_sliding = 0, window = 0;
    for (const auto& spec : w.config().layers)
      if (spec.mixer == models::MixerKind::kSlidingAttention) {
        ++n_sliding;
        window = std::max(window, spec.window);
      }
    if (n_sliding > 0 && window < p.ctx)
      sliding = "; " + std::to_string(n_sliding) + " of " + std::to_string(w.config().n_layer) +
                " layers slide over " + std::to_string(window) + " tokens and hold only that";
    else if (n_sliding > 0)
      sliding = "; " + SlidingWindowNote(w.config(), p.ctx);
  }
  if (p.prefill_chunk > 0)
    add("prefill chunk", std::to_string(p.prefill_chunk) + " tokens" +
                             (p.prefill_chunk_auto ? " (auto: the largest of 4096/2048/1024/512 that fits beside the same "
                                                     "resident weights)"
                                                   : " (--prefill-chunk)"));
  add("KV cache", FormatBytes(p.kv_bytes) + " (" + std::to_string(p.n_seq) + " x " + std::to_string(kv_tokens) +
                      " tokens" + (p.kv_on_disk ? " of --kv-window + read-ahead; older pages on disk" : " in RAM") +
                      sliding + ")");
  if (p.kv_on_disk)
    add("KV on disk", FormatBytes(p.kv_disk_bytes) + " at " + std::to_string(p.ctx) + " tokens (" +
                          std::to_string(p.n_seq) + " x scratch file under --kv-dir; --kv-max-disk caps it)");
  if (p.recurrent_bytes > 0)
    add("recurrent state", FormatBytes(p.recurrent_bytes) + " of the KV line (" + std::to_string(p.n_seq) + " x " +
                               std::to_string(w.config().n_linear_layers()) + " of " + std::to_string(w.config().n_layer) +
                               " layers linear attention: conv + delta-rule state, its step copy, 2 chunk and 2 turn-end checkpoints" +
                               (p.recurrent_keep_recent > 0
                                    ? ", 2 x " + std::to_string(p.recurrent_keep_recent) + " states for speculative rollback"
                                    : std::string()) +
                               "; the same at any context)");
  const int n = w.n_groups();
  if (p.device_tiers()) {
    // --device vulkan: VRAM holds on_device; the rest are the device's host and disk tiers.
    std::vector<bool> disk(static_cast<size_t>(n));
    int n_vram = 0, n_host = 0;
    for (int g = 0; g < n; ++g) {
      disk[g] = !p.on_device[g] && !p.resident[g];
      n_vram += p.on_device[g] ? 1 : 0;
      n_host += p.resident[g] && !p.on_device[g] ? 1 : 0;
    }
    add("GPU staging", p.ring_slots == 0 ? std::string("none (nothing read from disk per pass)")
                                         : std::to_string(p.ring_slots) + " x " + FormatBytes(p.ring_slot_bytes) +
                                               " = " + FormatBytes(p.ring_bytes()) + " (host-visible, disk tier)");
    add("weights in VRAM", std::to_string(n_vram) + "/" + std::to_string(n) + ": " + GroupRanges(w, p.on_device, true) +
                               " (read once at open; not held in RAM)");
    add("weights in host RAM", std::to_string(n_host) + "/" + std::to_string(n) + ": " +
                                   GroupRanges(w, p.resident, true) + " (" + FormatBytes(p.resident_bytes) +
                                   ", host-visible, copied to VRAM each pass)");
    add("weights on disk", std::to_string(p.n_streamed) + "/" + std::to_string(n) + ": " + GroupRanges(w, disk, true) +
                               " (O_DIRECT into the staging buffers each pass)");
  } else {
    add("streaming ring", p.ring_slots == 0 ? std::string("none")
                                            : std::to_string(p.ring_slots) + " x " + FormatBytes(p.ring_slot_bytes) +
                                                  " = " + FormatBytes(p.ring_bytes()));
    add("resident groups", std::to_string(n - p.n_streamed) + "/" + std::to_string(n) + ": " +
                               GroupRanges(w, p.resident, true) + " (" + FormatBytes(p.resident_bytes) + ")");
    add("streamed groups", std::to_string(p.n_streamed) + "/" + std::to_string(n) + ": " + GroupRanges(w, p.resident, false));
  }
  if (p.n_experts_total > 0) {
    const std::string slots = std::to_string(p.expert_cache_slots) + " x " + FormatBytes(p.expert_slot_bytes) + " = " +
                              FormatBytes(p.expert_cache_bytes());
    add("expert cache", p.experts_resident()
                            ? slots + " (all " + std::to_string(p.n_experts_total) + " routed experts, read at open)"
                            : slots + " (holds " + std::to_string(p.expert_cache_slots) + " of " +
                                  std::to_string(p.n_experts_total) + " routed experts; " +
                                  std::to_string(p.expert_min_slots) + " per token and layer)");
  }
  add("embedding table", p.device_tiers() && p.embedding_resident ? "resident (the host's copy; VRAM holds the head)"
                         : w.config().tied_embeddings ? (p.resident[w.head_group()] ? "tied, in the resident head"
                                                                                   : "tied, rows read per token")
                         : p.embedding_resident ? "resident"
                                                : "rows read per token (" + FormatBytes(p.embedding_row_bytes) + "/row)");
  add("planned total", FormatBytes(p.planned_bytes()));
  add("streamed per step", FormatBytes(p.streamed_bytes_per_step) +
                               (p.expert_bytes_per_token > 0 ? " (at most: " + FormatBytes(p.expert_bytes_per_token) +
                                                                   " of it experts, when every routed expert misses)"
                                                             : std::string()));
  if (bw > 0) {
    std::snprintf(line, sizeof line, "%.2f GB/s (%s)", bw / 1e9, p.disk_measured ? "measured" : "--disk-bw");
    add("disk read speed", line);
  }
  if (p.all_resident()) {
    add("predicted decode", "not I/O bound (all weights resident)");
  } else if (bw > 0) {
    std::snprintf(line, sizeof line, "%.2f tok/s (I/O bound: streamed bytes / disk speed)",
                  bw / static_cast<double>(p.streamed_bytes_per_step));
    add("predicted decode", line);
  }
  return s;
}

nlohmann::ordered_json PlanToJson(const models::ModelWeights& w, const ResidencyPlan& p) {
  const double bw = p.disk_bytes_per_s;
  nlohmann::ordered_json resident = nlohmann::ordered_json::array(), streamed = nlohmann::ordered_json::array();
  nlohmann::ordered_json vram = nlohmann::ordered_json::array();
  for (int g = 0; g < w.n_groups(); ++g)
    (p.device_tiers() && p.on_device[g] ? vram : p.resident[g] ? resident : streamed).push_back(w.group(g).name);
  nlohmann::ordered_json j = {
      {"budget_bytes", p.budget_bytes},
      {"budget_auto", p.budget_auto},
      {"baseline_bytes", p.baseline_bytes},
      {"reserve_bytes", p.reserve_bytes},
      {"activation_bytes", p.activation_bytes},
      {"embedding_scratch_bytes", p.embedding_scratch_bytes},
      {"draft_bytes", p.draft_bytes},
      {"kv_bytes", p.kv_bytes},
      {"recurrent_bytes", p.recurrent_bytes},
      {"ctx", p.ctx},
      {"sequences", p.n_seq},
      {"kv_window", p.kv_window_tokens},
      {"kv_on_disk", p.kv_on_disk},
      {"kv_disk_bytes", p.kv_disk_bytes},
      {"prefill_rows", p.prefill_rows},
      {"prefill_chunk", p.prefill_chunk},
      {"prefill_chunk_auto", p.prefill_chunk_auto},
      {"threads", p.threads},
      {"ring_slots", p.ring_slots},
      {"ring_slot_bytes", p.ring_slot_bytes},
      {"resident_bytes", p.resident_bytes},
      {"planned_bytes", p.planned_bytes()},
      {"resident_groups", resident},
      {"streamed_groups", streamed},
      {"embedding_resident", p.embedding_resident},
      {"streamed_bytes_per_step", p.streamed_bytes_per_step},
  };
  if (p.device_tiers()) {
    // --device vulkan: the three weight tiers (resident/streamed above: host RAM/disk).
    j["device_tiers"] = {{"vram_groups", vram}, {"host_groups", resident}, {"disk_groups", streamed},
                         {"host_bytes", p.resident_bytes}, {"staging_bytes", p.ring_bytes()},
                         {"min_bytes", p.device_min_bytes}, {"largest_group_bytes", p.device_largest_bytes}};
  }
  if (p.n_experts_total > 0) {
    j["expert_cache_slots"] = p.expert_cache_slots;
    j["expert_slot_bytes"] = p.expert_slot_bytes;
    j["expert_cache_bytes"] = p.expert_cache_bytes();
    j["experts_total"] = p.n_experts_total;
    j["experts_resident"] = p.experts_resident();
    j["expert_bytes_per_token"] = p.expert_bytes_per_token;
  }
  if (bw > 0) {
    j["disk_bytes_per_s"] = bw;
    j["disk_measured"] = p.disk_measured;
    j["predicted_decode_tokens_per_s"] =
        !p.all_resident() ? nlohmann::ordered_json(bw / static_cast<double>(p.streamed_bytes_per_step)) : nullptr;
  }
  return j;
}

}  // namespace spool::runtime
