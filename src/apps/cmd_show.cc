// spool show MODEL: what a model is (architecture, sizes, dtypes, context), its chat
// template (--template), or its tensors (--tensors); --devices lists the Vulkan devices.
#include <algorithm>
#include <cstdio>
#include <map>

#include "apps/command.h"
#include "base/strings.h"
#include "apps/common_flags.h"
#include "chat/chat_template.h"
#include "formats/model_source.h"
#include "gpu/vulkan_device.h"
#include "models/weights.h"
#include "runtime/engine.h"
#include "runtime/planner.h"

namespace spool::apps {
namespace {

// spool show --devices: the devices --device can name.
int ShowDevices() {
  std::printf("cpu          the CPU kernels (the reference)\n");
  auto devs = gpu::ListDevices();
  if (!devs.ok()) {
    std::printf("vulkan       none: %s\n", devs.status().message().c_str());
    return 0;
  }
  if (devs->empty()) std::printf("vulkan       none: the Vulkan loader lists no device\n");
  for (const gpu::DeviceInfo& d : *devs) {
    std::printf("vulkan:%-5d %s (%s; %s)\n", d.index, d.name.c_str(), d.type.c_str(), d.driver.c_str());
    std::printf("             device-local heap %s, host-visible heap %s, max buffer %s\n",
                FormatBytes(d.device_local_bytes).c_str(), FormatBytes(d.host_visible_bytes).c_str(),
                FormatBytes(d.max_buffer_bytes).c_str());
    std::printf("             Vulkan %u.%u, subgroup %u, transfer queue %s, cooperative matrix %s, integer dot %s, "
                "f16 %s\n",
                d.api_version >> 22, (d.api_version >> 12) & 0x3ffu, d.subgroup_size,
                d.separate_transfer_queue ? "separate" : "shared with compute", d.cooperative_matrix ? "yes" : "no",
                d.integer_dot_product ? "yes" : "no", d.shader_float16 ? "yes" : "no");
  }
  if (!gpu::BuiltWithShaders()) std::printf("note: built without Vulkan shaders (glslc missing at build time)\n");
  return 0;
}

int RunShow(int argc, char** argv) {
  ArgParser p("spool show", "MODEL");
  bool& show_devices = p.Flag("--devices", "list the devices --device can name (CPU, Vulkan devices) and exit");
  bool& show_template = p.Flag("--template", "print the chat template");
  bool& show_tensors = p.Flag("--tensors", "list every tensor (name, dtype, shape, bytes)");
  bool& show_plan = p.Flag("--plan", "print the residency plan that the command --for would use with the engine "
                                     "flags below (the same planning code and figures)");
  std::string& plan_for = p.String("--for", "run", "with --plan: run, chat, perplexity, serve or batch");
  int64_t& parallel = p.Int("-np,--parallel", 0, "with --plan --for serve/batch: sequences decoded together "
                                                 "(serve --parallel, batch --batch; 0: that command's default)");
  int64_t& cache_entries = p.Int("--cache-entries", 4, "with --plan --for serve: serve's --cache-entries");
  bool& json = p.Flag("--json", "with --plan: print the plan as one JSON object (as run --json reports it)");
  EngineFlags ef = AddEngineFlags(p);
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (show_devices) return ShowDevices();
  if (p.positional().size() != 1) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  const std::string& model = p.positional()[0];
  if (show_template) {
    auto t = chat::LoadChatTemplate(model);
    if (!t.ok()) return Fail(t.status().message());
    std::fwrite(t->data(), 1, t->size(), stdout);
    return 0;
  }
  // Before anything else is loaded: the plan's measured baseline must be what run's is.
  if (show_plan) {
    auto kind = ParseWorkloadKind(plan_for);
    if (!kind.ok()) return Fail(kind.status().message());
    Workload wl;
    wl.kind = *kind;
    if (wl.kind == Workload::Kind::kServe || wl.kind == Workload::Kind::kBatch) {
      wl.parallel = parallel > 0 ? parallel : (wl.kind == Workload::Kind::kServe ? 4 : 8);  // their defaults
      wl.cached_sequences = wl.kind == Workload::Kind::kServe ? cache_entries : 0;
    }
    auto opts = ef.ToOptions(wl);
    if (!opts.ok()) return Fail(opts.status().message());
    opts->measure_disk = true;
    auto plan = runtime::Engine::Plan(model, *opts);
    if (!plan.ok()) return Fail(plan.status().message());
    if (json) {
      nlohmann::ordered_json j = runtime::PlanToJson(*plan->weights, plan->plan);
      if (const auto& vp = plan->vram_plan) {
        j["vram"] = {{"budget", vp->budget},           {"device_bytes", vp->device_bytes()},
                     {"fixed_bytes", vp->fixed_bytes}, {"kv_bytes", vp->kv_bytes},
                     {"head_bytes", vp->head_bytes},   {"layer_bytes", vp->layer_bytes},
                     {"ring_bytes", vp->ring_bytes},   {"resident_layers", vp->n_resident},
                     {"streamed_layers", vp->n_streamed}};
        j["vram"]["kv_pages"] = vp->kv_pages;          // one sequence's context, in KV pages
        j["vram"]["kv_hot_pages"] = vp->kv_hot_pages;  // of them in VRAM (older ones in host memory)
        j["vram"]["kv_cold_bytes"] = vp->kv_cold_bytes;
        // The three weight tiers (layers; host bytes; per forward pass).
        j["vram"]["largest_layer"] = vp->largest_layer;
        j["vram"]["vram_layers"] = vp->n_resident;
        j["vram"]["host_layers"] = vp->n_host;
        j["vram"]["disk_layers"] = vp->n_disk;
        j["vram"]["host_bytes"] = vp->host_bytes;
        j["vram"]["staging_bytes"] = vp->staging_bytes;
        j["vram"]["host_copy_bytes_per_pass"] = vp->host_copy_bytes_per_pass;
        j["vram"]["disk_bytes_per_pass"] = vp->disk_bytes_per_pass;
        nlohmann::ordered_json tiers = nlohmann::ordered_json::array();
        for (gpu::WeightTier t : vp->tiers) tiers.push_back(gpu::WeightTierName(t));
        j["vram"]["layer_tiers"] = tiers;
      }
      std::printf("%s\n", j.dump().c_str());
      return 0;
    }
    std::printf("  model                  %s (%s of weight groups, ctx %lld, planned for %s)\n", model.c_str(),
                FormatBytes(plan->weights->total_matrix_bytes()).c_str(), static_cast<long long>(plan->ctx),
                plan_for.c_str());
    std::fputs(runtime::FormatPlan(*plan->weights, plan->plan).c_str(), stdout);
    if (plan->vram_plan) std::printf("  %s\n", plan->vram_plan->ToString().c_str());
    return 0;
  }
  auto src = formats::OpenModelSource(model);
  if (!src.ok()) return Fail(src.status().message());
  if (show_tensors) {
    for (auto& t : src->tensors) {
      std::string shape;
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
      std::printf("%-48s %-5s [%s] %llu\n", t.name.c_str(), std::string(DTypeName(t.dtype)).c_str(), shape.c_str(),
                  static_cast<unsigned long long>(t.nbytes));
    }
    return 0;
  }
  auto w = models::ModelWeights::Load(std::move(*src));
  if (!w.ok()) return Fail(w.status().message());
  const auto& c = (*w)->config();
  std::map<std::string, uint64_t> by_dtype;
  for (auto& t : (*w)->source().tensors) by_dtype[std::string(DTypeName(t.dtype))] += t.nbytes;
  std::printf("  model          %s\n", model.c_str());
  std::printf("  format         %s\n", (*w)->source().kind == formats::ModelSource::Kind::kGguf ? "gguf" : "safetensors");
  std::printf("  architecture   %s (%s)\n", c.arch.c_str(), c.hf_class.c_str());
  std::printf("  parameters     %.2fM\n", static_cast<double>((*w)->n_params()) / 1e6);
  std::printf("  context length %lld\n", static_cast<long long>(c.n_ctx_train));
  std::printf("  layers         %lld\n", static_cast<long long>(c.n_layer));
  std::printf("  hidden size    %lld (ffn %lld)\n", static_cast<long long>(c.n_embd), static_cast<long long>(c.n_ff));
  if (c.has_moe()) {
    int64_t n_moe = 0;
    for (auto& l : c.layers) n_moe += l.ffn == models::FfnKind::kMoe;
    std::printf("  experts        %lld, %lld per token (ffn %lld%s%s) in %lld of %lld layers\n",
                static_cast<long long>(c.moe.n_expert), static_cast<long long>(c.moe.n_expert_used),
                static_cast<long long>(c.moe.n_ff_expert), c.moe.norm_topk_prob ? ", renormalised" : "",
                c.moe.n_ff_shared > 0 ? (", shared expert ffn " + std::to_string(c.moe.n_ff_shared)).c_str() : "",
                static_cast<long long>(n_moe), static_cast<long long>(c.n_layer));
  }
  std::printf("  heads          %lld (kv %lld, head dim %lld)\n", static_cast<long long>(c.n_head),
              static_cast<long long>(c.n_head_kv), static_cast<long long>(c.head_dim));
  std::printf("  vocabulary     %lld\n", static_cast<long long>(c.n_vocab));
  std::printf("  rope           theta %g, %s%s\n", c.rope_theta, c.rope_style == RopeStyle::kNeox ? "neox" : "interleaved",
              c.rope_scaling.kind == RopeScaling::Kind::kLlama3   ? ", llama3 scaling"
              : !c.rope_scaling.freq_factors.empty()              ? ", llama3 scaling (rope_freqs)"
              : c.rope_scaling.kind == RopeScaling::Kind::kLinear ? ", linear scaling"
              : c.rope_scaling.kind == RopeScaling::Kind::kYarn   ? ", yarn scaling"
                                                                   : "");
  {  // Sliding-window layers and their RoPE (Gemma, Mistral with sliding_window).
    int64_t n_sliding = 0;
    const models::LayerSpec* first = nullptr;
    for (const auto& spec : c.layers)
      if (spec.mixer == models::MixerKind::kSlidingAttention && n_sliding++ == 0) first = &spec;
    if (first)
      std::printf("  sliding window %lld of %lld layers over %lld tokens (rope theta %g%s)\n",
                  static_cast<long long>(n_sliding), static_cast<long long>(c.n_layer),
                  static_cast<long long>(first->window), first->rope_theta,
                  first->rope_scaling.kind == RopeScaling::Kind::kNone ? ", unscaled" : "");
    if (c.has_linear()) {  // Qwen3-Next: Gated DeltaNet layers and their fixed-size state
      const models::LinearAttnSpec& ls = c.linear;
      const uint64_t state = static_cast<uint64_t>(c.n_linear_layers()) *
                             static_cast<uint64_t>(ls.conv_state_elems() + ls.delta_state_elems()) * 4;
      std::printf("  linear attn    %lld of %lld layers Gated DeltaNet (key heads %lld x %lld, value heads %lld x %lld, "
                  "conv %lld); state %s per sequence at any context\n",
                  static_cast<long long>(c.n_linear_layers()), static_cast<long long>(c.n_layer),
                  static_cast<long long>(ls.n_k_heads), static_cast<long long>(ls.k_head_dim),
                  static_cast<long long>(ls.n_v_heads), static_cast<long long>(ls.v_head_dim),
                  static_cast<long long>(ls.conv_kernel), FormatBytes(state).c_str());
    }
    if (c.attn_output_gate || c.rope_dim < c.head_dim)
      std::printf("  attention      %s%s\n", c.attn_output_gate ? "output gate (sigmoid), " : "",
                  ("rope on " + std::to_string(c.rope_dim) + " of " + std::to_string(c.head_dim) + " head dims").c_str());
    if (c.attn_softcap > 0 || c.final_softcap > 0)
      std::printf("  soft-capping   attention %g, final logits %g (0: none)\n", c.attn_softcap, c.final_softcap);
  }
  std::printf("  embeddings     %s\n", c.tied_embeddings ? "tied" : "untied");
  std::string dt;
  for (auto& [k, v] : by_dtype) dt += (dt.empty() ? "" : ", ") + k + " " + FormatBytes(v);
  std::printf("  tensors        %zu (%s)\n", (*w)->source().tensors.size(), dt.c_str());
  std::printf("  weight bytes   %s\n", FormatBytes((*w)->source().total_tensor_bytes()).c_str());
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("show", "describe a model (architecture, sizes, template)", spool::apps::RunShow);
