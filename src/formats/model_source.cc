#include "formats/model_source.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>

#include "formats/hf_cache.h"
#include "formats/hf_folder.h"

namespace spool::formats {

namespace {

Result<ModelSource> FromGguf(const std::string& path, const std::string& display) {
  SPOOL_ASSIGN_OR_RETURN(GgufFile g, ReadGguf(path));
  ModelSource m;
  m.kind = ModelSource::Kind::kGguf;
  m.display_name = display;
  m.root = path;
  m.files = {path};
  m.tensors = g.tensors;
  m.gguf = std::move(g);
  m.BuildTensorIndex();
  return m;
}

Result<ModelSource> FromFolder(const std::string& dir, const std::string& display) {
  SPOOL_ASSIGN_OR_RETURN(HfFolder f, ReadHfFolder(dir));
  ModelSource m;
  m.kind = ModelSource::Kind::kSafetensors;
  m.display_name = display;
  m.root = f.root;
  m.files = std::move(f.weights.files);
  m.tensors = std::move(f.weights.tensors);
  m.tensor_by_name = std::move(f.weights.tensor_by_name);
  m.hf_config = std::move(f.config);
  m.generation_config = std::move(f.generation_config);
  m.tokenizer_json_path = std::move(f.tokenizer_json_path);
  m.tokenizer_config_path = std::move(f.tokenizer_config_path);
  m.chat_template_path = std::move(f.chat_template_path);
  return m;
}

bool HasGgufMagic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace

const TensorInfo* ModelSource::FindTensor(const std::string& name) const {
  auto it = tensor_by_name.find(name);
  return it == tensor_by_name.end() ? nullptr : &tensors[it->second];
}

void ModelSource::BuildTensorIndex() {
  tensor_by_name.clear();
  tensor_by_name.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) tensor_by_name.emplace(tensors[i].name, i);
}

uint64_t ModelSource::total_tensor_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.nbytes;
  return n;
}

Result<ModelSource> OpenModelSource(const std::string& path_or_id) {
  if (path_or_id.empty()) return InvalidArgument("empty model path");
  struct stat st;
  if (::stat(path_or_id.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return FromFolder(path_or_id, path_or_id);
    if (S_ISREG(st.st_mode)) {
      if (HasGgufMagic(path_or_id)) return FromGguf(path_or_id, path_or_id);
      return Unsupported(path_or_id + ": not a GGUF file (no \"GGUF\" magic); for safetensors pass the "
                         "model folder that holds config.json");
    }
    return Unsupported(path_or_id + ": neither a regular file nor a folder");
  }
  // Not on disk: a hub id (org/name) is looked up in the HF cache.
  bool looks_like_id = path_or_id[0] != '/' && path_or_id[0] != '.' && ParseHfId(path_or_id).ok();
  if (!looks_like_id) return NotFound(path_or_id + ": no such file or folder");
  SPOOL_ASSIGN_OR_RETURN(std::string snapshot, ResolveHfCacheId(path_or_id));
  return FromFolder(snapshot, path_or_id);
}

}  // namespace spool::formats
