#include "models/multimodal.h"

#include "base/log.h"
#include "base/strings.h"

namespace spool::models {

namespace {
bool CutPrefix(std::string* name, const std::string& prefix, const std::string& with) {
  if (!StartsWith(*name, prefix)) return false;
  *name = with + name->substr(prefix.size());
  return true;
}
}  // namespace

Status ExtractTextModel(formats::ModelSource* src) {
  if (src->kind != formats::ModelSource::Kind::kSafetensors) return Status::Ok();
  const auto& j = src->hf_config;
  if (!j.is_object() || !j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      j["architectures"][0] != "Gemma3ForConditionalGeneration")
    return Status::Ok();
  const std::string where = src->root + "/config.json";
  if (!j.contains("text_config") || !j["text_config"].is_object())
    return InvalidFile(where + ": Gemma3ForConditionalGeneration without a 'text_config' object");
  nlohmann::ordered_json text = j["text_config"];
  text["architectures"] = {"Gemma3ForCausalLM"};
  if (!text.contains("model_type")) text["model_type"] = "gemma3_text";
  if (!text.contains("tie_word_embeddings"))
    text["tie_word_embeddings"] = j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()
                                      ? j["tie_word_embeddings"].get<bool>()
                                      : true;  // Gemma3Config's default
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
    } else if (StartsWith(name, "vision_tower.") || StartsWith(name, "multi_modal_projector.") ||
               StartsWith(name, "model.vision_tower.") || StartsWith(name, "model.multi_modal_projector.")) {
      ++dropped;
      dropped_bytes += t.nbytes;
    } else {
      kept.push_back(std::move(t));  // unknown: left as it is (the loader ignores unused tensors)
    }
  }
  if (n_text == 0)
    return InvalidFile(src->root + ": Gemma3ForConditionalGeneration checkpoint without text-model tensors "
                       "(expected language_model.model.* or model.language_model.*)");
  src->tensors = std::move(kept);
  src->BuildTensorIndex();
  src->hf_config = std::move(text);
  SPOOL_LOG_INFO("%s: Gemma3ForConditionalGeneration: running its text model (Gemma3ForCausalLM, %zu tensors); "
                 "the vision tower and projector (%zu tensors, %s) are skipped: spool has no image input",
                 src->root.c_str(), n_text, dropped, FormatBytes(dropped_bytes).c_str());
  return Status::Ok();
}

}  // namespace spool::models
