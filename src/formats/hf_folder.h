// A Hugging Face model folder: config.json, optional generation_config.json,
// tokenizer files, and safetensors weights (single file or sharded with an index).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "formats/safetensors.h"

namespace spool::formats {

struct HfFolder {
  std::string root;                             // the folder
  nlohmann::ordered_json config;                // config.json (an object)
  nlohmann::ordered_json generation_config;     // generation_config.json, null if absent
  std::string tokenizer_json_path;              // "" when absent
  std::string tokenizer_config_path;            // "" when absent
  std::string chat_template_path;               // chat_template.jinja, "" when absent
  SafetensorsModel weights;                     // files + tensors
};

// Reads `dir`. Weights, in order of preference: model.safetensors.index.json (sharded),
// model.safetensors, else every *.safetensors file in the folder (sorted by name).
// Errors: NotFound (no config.json / no safetensors; PyTorch .bin weights are not
// supported and the message says so), InvalidFile (malformed JSON or safetensors),
// each naming the path.
Result<HfFolder> ReadHfFolder(const std::string& dir);

// Parses a JSON file into an ordered_json without throwing. NotFound if missing.
Result<nlohmann::ordered_json> ReadJsonFile(const std::string& path);

}  // namespace spool::formats
