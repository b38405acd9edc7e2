// Multimodal checkpoints whose text model spool runs: the text part is cut out of the
// source before the config is read, so that the rest of spool sees a plain text model.
//
// Gemma3ForConditionalGeneration (transformers' Gemma3Config): config.json nests the
// text model's config under `text_config` (model_type gemma3_text, the fields of
// Gemma3TextConfig) beside `vision_config`; save_pretrained writes the text model's
// tensors as `language_model.model.*` (and `language_model.lm_head.weight` when
// untied), the SigLIP vision tower as `vision_tower.*` and the projector as
// `multi_modal_projector.*`. The raw state_dict of transformers 5 (`model.language_model.*`,
// `model.vision_tower.*`, `model.multi_modal_projector.*`, `lm_head.weight`) is read too.
// Result: hf_config = text_config as a Gemma3ForCausalLM config (tie_word_embeddings
// from the top level when text_config does not say), tensors renamed to the
// Gemma3ForCausalLM names, vision and projector tensors dropped from the index (a log
// line says how many and how large: spool has no image input).
//
// Qwen3_5ForConditionalGeneration / Qwen3_5MoeForConditionalGeneration (transformers'
// Qwen3_5Config / Qwen3_5MoeConfig): `text_config` (model_type qwen3_5_text /
// qwen3_5_moe_text) beside `vision_config`; tensors `model.language_model.*` (the text
// model), `lm_head.weight` (absent when tied), `model.visual.*` (the vision tower and its
// merger), and in released checkpoints `mtp.*` (a multi-token-prediction block, not run).
// Result: text_config as a Qwen3_5ForCausalLM / Qwen3_5MoeForCausalLM config
// (tie_word_embeddings from the top level when text_config does not say; default false,
// as Qwen3_5Config's), tensors renamed to model.*, vision tensors dropped with a log line.
#pragma once

#include <string>

#include "base/status.h"
#include "formats/model_source.h"

namespace spool::models {

// No-op unless src is an HF checkpoint of a multimodal class above. InvalidFile when its
// text_config is missing or not an object, or no text tensor is found.
Status ExtractTextModel(formats::ModelSource* src);

// Whether `hf_class` (config.json architectures[0]) is one of the multimodal classes above.
bool IsMultimodalClass(const std::string& hf_class);

}  // namespace spool::models
