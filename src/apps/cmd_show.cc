// spool show MODEL: what a model is (architecture, sizes, dtypes, context), its chat
// template (--template), or its tensors (--tensors).
#include <cstdio>
#include <map>

#include "apps/command.h"
#include "base/strings.h"
#include "apps/common_flags.h"
#include "chat/chat_template.h"
#include "formats/model_source.h"
#include "models/weights.h"

namespace spool::apps {
namespace {

int RunShow(int argc, char** argv) {
  ArgParser p("spool show", "MODEL");
  bool& show_template = p.Flag("--template", "print the chat template");
  bool& show_tensors = p.Flag("--tensors", "list every tensor (name, dtype, shape, bytes)");
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
              : c.rope_scaling.kind == RopeScaling::Kind::kLinear ? ", linear scaling"
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
