// Model names → something Engine::Open accepts. A name is one of:
//   a path            a .gguf file or a Hugging Face model folder
//   a local name      $SPOOL_HOME/models/NAME or NAME.gguf
//   org/name[@rev]    a hub id, looked up in the local Hugging Face cache
//   org/name:QUANT    a GGUF file in a hub repo, chosen by its quantisation label
//                     (e.g. "bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")
//   alias             a short name from the built-in registry (smollm2:135m, qwen3:8b, ...)
// Nothing is downloaded here (see `spool pull`).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace spool::apps {

// spool's home: $SPOOL_HOME, default ~/.spool (models/, kv/, sessions/, logs/, history).
std::string SpoolHome();

struct RegistryEntry {
  std::string alias;  // "llama3.2:1b"
  std::string repo;   // "meta-llama/Llama-3.2-1B-Instruct" or "org/name:Q4_K_M"
};
// The built-in alias table.
const std::vector<RegistryEntry>& ModelRegistry();

struct ResolvedModel {
  std::string path;     // what to give Engine::Open (a file, a folder, or a hub id)
  bool is_path = false; // the name was a path on disk
  std::string repo;     // hub repo the name stands for ("" for paths)
  std::string quant;    // GGUF quantisation label (":Q4_K_M"), "" if none
};

// Expands aliases and hub ids to local files. NotFound says where it looked and,
// for hub names, that `spool pull NAME` downloads it.
Result<ResolvedModel> ResolveModelName(const std::string& name);

// "org/name:QUANT" → ("org/name", "QUANT"); an alias is expanded first.
// Returns false when `name` is not of this form.
bool SplitQuantName(const std::string& name, std::string* repo, std::string* quant);

}  // namespace spool::apps
