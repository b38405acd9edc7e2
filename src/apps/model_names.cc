#include "apps/model_names.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "formats/hf_cache.h"

namespace spool::apps {

const std::vector<RegistryEntry>& ModelRegistry() {
  static const std::vector<RegistryEntry> kRegistry = {
      {"smollm2:135m", "HuggingFaceTB/SmolLM2-135M-Instruct"},
      {"smollm2:360m", "HuggingFaceTB/SmolLM2-360M-Instruct"},
      {"smollm2:1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct"},
      {"llama3.2:1b", "meta-llama/Llama-3.2-1B-Instruct"},
      {"llama3.2:3b", "meta-llama/Llama-3.2-3B-Instruct"},
      {"llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct"},
      {"qwen2.5:0.5b", "Qwen/Qwen2.5-0.5B-Instruct"},
      {"qwen2.5:1.5b", "Qwen/Qwen2.5-1.5B-Instruct"},
      {"qwen2.5:3b", "Qwen/Qwen2.5-3B-Instruct"},
      {"qwen2.5:7b", "Qwen/Qwen2.5-7B-Instruct"},
      {"qwen3:0.6b", "Qwen/Qwen3-0.6B"},
      {"qwen3:1.7b", "Qwen/Qwen3-1.7B"},
      {"qwen3:4b", "Qwen/Qwen3-4B"},
      {"qwen3:8b", "Qwen/Qwen3-8B"},
      {"mistral:7b", "mistralai/Mistral-7B-Instruct-v0.3"},
  };
  return kRegistry;
}

std::string SpoolHome() {
  if (const char* h = std::getenv("SPOOL_HOME"); h && *h) return h;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.spool";
}

namespace {

bool Exists(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A .gguf file in `folder` whose name contains `quant` (case-insensitive); the first
// shard when the file is split ("-00001-of-0000N").
Result<std::string> FindQuantFile(const std::string& folder, const std::string& quant) {
  std::vector<std::string> matches;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(folder, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (Lower(name).find(Lower(quant)) == std::string::npos) continue;
    if (name.size() < 5 || Lower(name.substr(name.size() - 5)) != ".gguf") continue;
    matches.push_back(it->path().string());
  }
  std::sort(matches.begin(), matches.end());
  if (matches.empty()) return NotFound(folder + ": no .gguf file with '" + quant + "' in its name");
  return matches.front();
}

}  // namespace

bool SplitQuantName(const std::string& name, std::string* repo, std::string* quant) {
  std::string n = name;
  for (const auto& e : ModelRegistry())
    if (e.alias == name) n = e.repo;
  size_t slash = n.find('/');
  size_t colon = n.rfind(':');
  if (slash == std::string::npos || colon == std::string::npos || colon < slash) return false;
  *repo = n.substr(0, colon);
  *quant = n.substr(colon + 1);
  return !repo->empty() && !quant->empty();
}

Result<ResolvedModel> ResolveModelName(const std::string& name) {
  ResolvedModel r;
  if (name.empty()) return InvalidArgument("empty model name");
  if (Exists(name)) {
    r.path = name;
    r.is_path = true;
    return r;
  }
  if (name.find('/') == std::string::npos) {
    for (const std::string& local : {SpoolHome() + "/models/" + name, SpoolHome() + "/models/" + name + ".gguf"})
      if (Exists(local)) {
        r.path = local;
        r.is_path = true;
        return r;
      }
  }
  std::string expanded = name;
  for (const auto& e : ModelRegistry())
    if (e.alias == name) expanded = e.repo;
  std::string repo, quant;
  if (SplitQuantName(expanded, &repo, &quant)) {
    r.repo = repo;
    r.quant = quant;
    auto folder = formats::ResolveHfCacheId(repo);
    if (!folder.ok())
      return NotFound(name + ": not downloaded (" + folder.status().message() + "); run `spool pull " + name + "`");
    SPOOL_ASSIGN_OR_RETURN(r.path, FindQuantFile(*folder, quant));
    return r;
  }
  if (expanded.find('/') != std::string::npos && expanded.front() != '/' && expanded.front() != '.') {
    r.repo = expanded;
    auto folder = formats::ResolveHfCacheId(expanded);
    if (!folder.ok())
      return NotFound(name + ": not downloaded (" + folder.status().message() + "); run `spool pull " + name + "`");
    r.path = *folder;
    return r;
  }
  return NotFound(name + ": no such file or folder, and not a known alias or hub id (see `spool list` and "
                         "docs/usage.md for the name forms)");
}

}  // namespace spool::apps
