#include "models/multimodal.h"

#include <vector>

#include "base/log.h"
#include "base/strings.h"

namespace spool::models {

namespace {
bool CutPrefix(std::string* name, const std::string& prefix, const std::string& with) {
  if (!StartsWith(*name, prefix)) return false;
  *name = with + name->substr(prefix.size());
  return true;
}

// One multimodal class: the text model's class and model_type, the top level's
// tie_word_embeddings default, and the prefixes of tensors that are not the text model.
struct MultimodalClass {
  const char* hf_class;
  const char* text_class;
  const char* text_model_type;
  bool tie_default;
  std::vector<const char*> dropped;  // vision tower, projector
};

const std::vector<MultimodalClass>& Classes() {
  static const std::vector<MultimodalClass> k = {
      {"Gemma3ForConditionalGeneration", "Gemma3ForCausalLM", "gemma3_text", true,
       {"vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector."}},
      {"Qwen3_5ForConditionalGeneration", "Qwen3_5ForCausalLM", "qwen3_5_text", false, {"model.visual.", "visual."}},
      {"Qwen3_5MoeForConditionalGeneration", "Qwen3_5MoeForCausalLM", "qwen3_5_moe_text", false,
       {"model.visual.", "visual."}},
  };
  return k;
}

const MultimodalClass* FindClass(const std::string& hf_class) {
  for (const MultimodalClass& m : Classes())
    if (hf_class == m.hf_class) return &m;
  return nullptr;
}

}  // namespace

bool IsMultimodalClass(const std::string& hf_class) { return FindClass(hf_class) != nullptr; }

Status ExtractTextModel(formats::ModelSource* src) {
  if (src->kind != formats::ModelSource::Kind::kSafetensors) return Status::Ok();
  const auto& j = src->hf_config;
  if (!j.is_object() || !j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    return Status::Ok();
  const MultimodalClass* mc = FindClass(j["architectures"][0].get<std::string>());
  if (!mc) return Status::Ok();
  const std::string where = src->root + "/config.json";
  if (!j.contains("text_config") || !j["text_config"].is_object())
    return InvalidFile(where + ": " + mc->hf_class + " without a 'text_config' object");
  nlohmann::ordered_json text = j["text_config"];
  text["architectures"] = {mc->text_class};
  if (!text.contains("model_type")) text["model_type"] = mc->text_model_type;
  if (!text.contains("tie_word_embeddings"))
    text["tie_word_embeddings"] = j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()
                                      ? j["tie_word_embeddings"].get<bool>()
                                      : mc->tie_default;
  std::vector<formats::TensorInfo> kept;
  size_t dropped = 0, n_text = 0;
  uint64_t dropped_bytes = 0;
  for (formats::TensorInfo& t : src->tensors) {
    std::string name = t.name;
    if (CutPrefix(&name, "language_model.model.", "model.") || CutPrefix(&name, "model.language_model.", "model.") ||
        CutPrefix(&name, "language_model.lm_head.", "lm_head.") || name == "lm_head.weight") {
      t.name = name;
      ++n_text;
      kept.push_back(std::move(t));
      continue;
    }
    bool drop = false;
    for (const char* p : mc->dropped) drop = drop || StartsWith(name, p);
    if (drop) {
      ++dropped;
      dropped_bytes += t.nbytes;
    } else {
      kept.push_back(std::move(t));  // unknown (mtp.*): left as it is (the loader ignores unused tensors)
    }
  }
  if (n_text == 0)
    return InvalidFile(src->root + ": " + mc->hf_class +
                       " checkpoint without text-model tensors (expected language_model.model.* or model.language_model.*)");
  src->tensors = std::move(kept);
  src->BuildTensorIndex();
  src->hf_config = std::move(text);
  SPOOL_LOG_INFO("%s: %s: running its text model (%s, %zu tensors); the vision tensors (%zu tensors, %s) are skipped: "
                 "spool has no image input",
                 src->root.c_str(), mc->hf_class, mc->text_class, n_text, dropped, FormatBytes(dropped_bytes).c_str());
  return Status::Ok();
}

}  // namespace spool::models
