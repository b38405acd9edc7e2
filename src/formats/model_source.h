// The one entry point the rest of spool uses to open a model: a .gguf file, a
// Hugging Face folder (config.json + safetensors), or a hub id resolved in the local
// HF cache. The result indexes every tensor (name, dtype, shape, file, offset,
// length); no tensor data is read here.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "formats/gguf.h"
#include "formats/tensor_info.h"

namespace spool::formats {

struct ModelSource {
  enum class Kind { kGguf, kSafetensors } kind = Kind::kGguf;
  std::string display_name;           // what the user typed
  std::string root;                   // file (GGUF) or folder (HF)
  std::vector<std::string> files;     // data files; TensorInfo::file_index indexes this
  std::vector<TensorInfo> tensors;    // all tensors, in file order (safetensors: by offset per file)
  std::optional<GgufFile> gguf;       // metadata when kind == kGguf (its `tensors` duplicate ours)
  nlohmann::ordered_json hf_config;   // config.json when kind == kSafetensors
  nlohmann::ordered_json generation_config;  // may be null
  std::string tokenizer_json_path, tokenizer_config_path, chat_template_path;  // "" if absent
  std::unordered_map<std::string, size_t> tensor_by_name;  // name -> index into tensors

  // O(1). nullptr when absent. Rebuild the index (BuildTensorIndex) after editing `tensors`.
  const TensorInfo* FindTensor(const std::string& name) const;
  void BuildTensorIndex();
  uint64_t total_tensor_bytes() const;
};

// path_or_id: an existing .gguf file (recognised by its magic), an existing folder
// with config.json, or "org/name[@rev]" looked up in the HF cache (formats/hf_cache.h).
// Errors name the path: NotFound (nothing there; for ids, every cache folder looked
// in), Unsupported (another kind of file), InvalidFile (malformed files).
Result<ModelSource> OpenModelSource(const std::string& path_or_id);

}  // namespace spool::formats
