#include "formats/hf_folder.h"

#include <algorithm>
#include <exception>
#include <filesystem>

#include "base/strings.h"

namespace spool::formats {

namespace fs = std::filesystem;

namespace {
bool IsFile(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
std::string PathIfFile(const std::string& p) { return IsFile(p) ? p : std::string(); }
}  // namespace

Result<nlohmann::ordered_json> ReadJsonFile(const std::string& path) {
  SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  // JSON config files are small and come from the user's own folder; depth is still
  // bounded by nlohmann's iterative parser, and exceptions stop here.
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const std::exception& e) {
    return InvalidFile(path + ": invalid JSON: " + e.what());
  }
}

Result<HfFolder> ReadHfFolder(const std::string& dir_in) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  HfFolder f;
  f.root = dir;
  std::string config_path = dir + "/config.json";
  if (!IsFile(config_path)) return NotFound(dir + ": not a model folder (no config.json)");
  SPOOL_ASSIGN_OR_RETURN(f.config, ReadJsonFile(config_path));
  if (!f.config.is_object()) return InvalidFile(config_path + ": expected a JSON object");
  std::string gen_path = dir + "/generation_config.json";
  if (IsFile(gen_path)) {
    SPOOL_ASSIGN_OR_RETURN(f.generation_config, ReadJsonFile(gen_path));
    if (!f.generation_config.is_object()) return InvalidFile(gen_path + ": expected a JSON object");
  }
  f.tokenizer_json_path = PathIfFile(dir + "/tokenizer.json");
  f.tokenizer_config_path = PathIfFile(dir + "/tokenizer_config.json");
  f.chat_template_path = PathIfFile(dir + "/chat_template.jinja");

  std::string index_path = dir + "/model.safetensors.index.json";
  std::string single_path = dir + "/model.safetensors";
  if (IsFile(index_path)) {
    SPOOL_ASSIGN_OR_RETURN(f.weights, ReadShardedSafetensors(index_path));
  } else if (IsFile(single_path)) {
    SPOOL_ASSIGN_OR_RETURN(f.weights, ReadSafetensorsFiles({single_path}));
  } else {
    std::vector<std::string> found;
    bool has_bin = false;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (EndsWith(name, ".safetensors") && e.is_regular_file()) found.push_back(e.path().string());
      if (EndsWith(name, ".bin") || EndsWith(name, ".pth")) has_bin = true;
    }
    if (found.empty())
      return NotFound(dir + ": no model.safetensors, model.safetensors.index.json or *.safetensors" +
                      std::string(has_bin ? " (PyTorch .bin/.pth weights are not supported; convert them "
                                            "to safetensors)"
                                          : ""));
    std::sort(found.begin(), found.end());
    SPOOL_ASSIGN_OR_RETURN(f.weights, ReadSafetensorsFiles(found));
  }
  return f;
}

}  // namespace spool::formats
