// spool show MODEL: what a model is (architecture, sizes, dtypes, context), its chat
// template (--template), or its tensors (--tensors).
#include <algorithm>
#include <cstdio>
#include <map>
#include <thread>

#include "apps/command.h"
#include "base/strings.h"
#include "apps/common_flags.h"
#include "chat/chat_template.h"
#include "formats/model_source.h"
#include "models/weights.h"
#include "runtime/planner.h"

namespace spool::apps {
namespace {

int RunShow(int argc, char** argv) {
  ArgParser p("spool show", "MODEL");
  bool& show_template = p.Flag("--template", "print the chat template");
  bool& show_tensors = p.Flag("--tensors", "list every tensor (name, dtype, shape, bytes)");
  bool& show_plan = p.Flag("--plan", "print the residency plan for --mem-budget (with the engine flags below)");
  std::string& disk_bw_text = p.String("--disk-bw", "", "disk read speed for --plan's prediction, bytes/s (e.g. 1.5G); "
                                                       "default: measured with a short O_DIRECT read of the model");
  EngineFlags ef = AddEngineFlags(p);
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
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
  if (show_plan) {
    auto opts = ef.ToOptions();
    if (!opts.ok()) return Fail(opts.status().message());
    runtime::PlannerOptions po;
    po.budget_bytes = opts->mem_budget;
    po.ctx = opts->ctx > 0 ? std::min(opts->ctx, c.n_ctx_train) : std::min<int64_t>(c.n_ctx_train, 4096);
    po.kv_dtype = opts->kv_dtype;
    po.kv_page_tokens = opts->kv_page_tokens;
    po.prefill_chunk = opts->prefill_chunk;
    po.prefetch_depth = opts->prefetch_depth;
    po.threads = opts->threads > 0 ? opts->threads : static_cast<int>(std::thread::hardware_concurrency());
    auto plan = runtime::PlanResidency(**w, po);
    if (!plan.ok()) return Fail(plan.status().message());
    double bw = 0;
    if (!disk_bw_text.empty()) {
      auto b = ParseSize(disk_bw_text);
      if (!b.ok()) return Fail("--disk-bw: " + b.status().message());
      bw = static_cast<double>(*b);
    } else {
      auto b = runtime::MeasureDiskBandwidth((*w)->source());
      if (!b.ok()) return Fail(b.status().message());
      bw = *b;
    }
    std::printf("  model                  %s (%s of weight groups, ctx %lld)\n", model.c_str(),
                FormatBytes((*w)->total_matrix_bytes()).c_str(), static_cast<long long>(po.ctx));
    std::fputs(runtime::FormatPlan(**w, *plan, bw).c_str(), stdout);
    return 0;
  }
  std::map<std::string, uint64_t> by_dtype;
  for (auto& t : (*w)->source().tensors) by_dtype[std::string(DTypeName(t.dtype))] += t.nbytes;
  std::printf("  model          %s\n", model.c_str());
  std::printf("  format         %s\n", (*w)->source().kind == formats::ModelSource::Kind::kGguf ? "gguf" : "safetensors");
  std::printf("  architecture   %s (%s)\n", c.arch.c_str(), c.hf_class.c_str());
  std::printf("  parameters     %.2fM\n", static_cast<double>((*w)->n_params()) / 1e6);
  std::printf("  context length %lld\n", static_cast<long long>(c.n_ctx_train));
  std::printf("  layers         %lld\n", static_cast<long long>(c.n_layer));
  std::printf("  hidden size    %lld (ffn %lld)\n", static_cast<long long>(c.n_embd), static_cast<long long>(c.n_ff));
  std::printf("  heads          %lld (kv %lld, head dim %lld)\n", static_cast<long long>(c.n_head),
              static_cast<long long>(c.n_head_kv), static_cast<long long>(c.head_dim));
  std::printf("  vocabulary     %lld\n", static_cast<long long>(c.n_vocab));
  std::printf("  rope           theta %g, %s%s\n", c.rope_theta, c.rope_style == RopeStyle::kNeox ? "neox" : "interleaved",
              c.rope_scaling.kind == RopeScaling::Kind::kLlama3   ? ", llama3 scaling"
              : !c.rope_scaling.freq_factors.empty()              ? ", llama3 scaling (rope_freqs)"
              : c.rope_scaling.kind == RopeScaling::Kind::kLinear ? ", linear scaling"
              : c.rope_scaling.kind == RopeScaling::Kind::kYarn   ? ", yarn scaling"
                                                                   : "");
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
