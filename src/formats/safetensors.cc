#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "formats/byte_reader.h"

namespace spool::formats {

namespace {

using nlohmann::json;

constexpr int kMaxJsonDepth = 64;

// Rejects JSON nested deeper than kMaxJsonDepth before handing it to the parser, so
// that hostile input cannot exhaust the stack. Brackets inside strings are skipped.
bool NestingWithinLimit(std::string_view s) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

// Parses JSON without letting an exception escape. Error text names `name`.
Result<json> ParseJson(std::string_view text, const std::string& name) {
  if (!NestingWithinLimit(text))
    return InvalidFile(name + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  try {
    return json::parse(text.begin(), text.end());
  } catch (const std::exception& e) {
    return InvalidFile(name + ": invalid JSON: " + e.what());
  }
}

std::optional<DType> DTypeFromSafetensors(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  if (s == "U8") return DType::kU8;  // HF MXFP4 blocks/scales
  return std::nullopt;
}

Result<uint64_t> GetU64(const json& v, const std::string& where) {
  if (!v.is_number_unsigned()) {
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    return InvalidFile(where + ": expected a non-negative integer, got " + std::string(v.type_name()));
  }
  return v.get<uint64_t>();
}

Status ParseTensorEntry(const std::string& name, const json& entry, uint64_t data_size,
                        const std::string& file, TensorInfo* out) {
  const std::string where = file + ": tensor '" + name + "'";
  if (!entry.is_object()) return InvalidFile(where + ": expected an object");
  auto dt_it = entry.find("dtype");
  if (dt_it == entry.end() || !dt_it->is_string()) return InvalidFile(where + ": missing string \"dtype\"");
  std::string dtype_name = dt_it->get<std::string>();
  std::optional<DType> dt = DTypeFromSafetensors(dtype_name);
  if (!dt)
    return Unsupported(where + ": dtype " + dtype_name + " is not supported (expected F32, F16, BF16 or U8)");
  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) return InvalidFile(where + ": missing array \"shape\"");
  if (shape_it->size() > 8)
    return InvalidFile(where + ": shape has " + std::to_string(shape_it->size()) + " dimensions (at most 8)");
  std::vector<uint64_t> shape;
  uint64_t n_elems = 1;
  for (size_t d = 0; d < shape_it->size(); ++d) {
    SPOOL_ASSIGN_OR_RETURN(uint64_t dim, GetU64((*shape_it)[d], where + ": shape[" + std::to_string(d) + "]"));
    if (dim == 0) return Unsupported(where + ": zero-sized dimension " + std::to_string(d));
    if (n_elems > std::numeric_limits<uint64_t>::max() / dim)
      return InvalidFile(where + ": element count overflows");
    n_elems *= dim;
    shape.push_back(dim);
  }
  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2)
    return InvalidFile(where + ": \"data_offsets\" must be an array [begin, end]");
  SPOOL_ASSIGN_OR_RETURN(uint64_t begin, GetU64((*off_it)[0], where + ": data_offsets[0]"));
  SPOOL_ASSIGN_OR_RETURN(uint64_t end, GetU64((*off_it)[1], where + ": data_offsets[1]"));
  if (begin > end || end > data_size)
    return InvalidFile(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       ") outside the data section of " + std::to_string(data_size) + " bytes");
  std::optional<uint64_t> nbytes = DTypeBytes(*dt, n_elems);
  if (!nbytes) return InvalidFile(where + ": byte size overflows");
  if (end - begin != *nbytes)
    return InvalidFile(where + ": data_offsets span " + std::to_string(end - begin) + " bytes, expected " +
                       std::to_string(*nbytes) + " (" + dtype_name + " x " + std::to_string(n_elems) +
                       " elements)");
  out->name = name;
  out->dtype = *dt;
  out->shape = std::move(shape);
  out->offset = begin;  // made absolute by the caller
  out->nbytes = *nbytes;
  return Status::Ok();
}

}  // namespace

Result<SafetensorsFile> ParseSafetensorsHeader(std::string_view header_json, uint64_t file_size,
                                               const std::string& name, uint32_t file_index) {
  SafetensorsFile f;
  f.path = name;
  f.file_size = file_size;
  f.data_offset = 8 + header_json.size();
  if (f.data_offset > file_size)
    return InvalidFile(name + ": header of " + std::to_string(header_json.size()) +
                       " bytes extends past the end of the file (" + std::to_string(file_size) + " bytes)");
  SPOOL_ASSIGN_OR_RETURN(json header, ParseJson(header_json, name + ": header"));
  if (!header.is_object())
    return InvalidFile(name + ": header must be a JSON object, got " + std::string(header.type_name()));
  const uint64_t data_size = file_size - f.data_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return InvalidFile(name + ": __metadata__ must be an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          return InvalidFile(name + ": __metadata__['" + m.key() + "'] must be a string, got " +
                             std::string(m->type_name()));
        f.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    TensorInfo t;
    SPOOL_TRY(ParseTensorEntry(it.key(), *it, data_size, name, &t));
    t.offset += f.data_offset;
    t.file_index = file_index;
    f.tensors.push_back(std::move(t));
  }
  std::sort(f.tensors.begin(), f.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < f.tensors.size(); ++i) {
    const TensorInfo& prev = f.tensors[i - 1];
    if (prev.offset + prev.nbytes > f.tensors[i].offset)
      return InvalidFile(name + ": tensor '" + f.tensors[i].name + "' overlaps tensor '" + prev.name + "'");
  }
  return f;
}

Result<SafetensorsFile> ParseSafetensors(const void* data, uint64_t size, const std::string& name,
                                         uint32_t file_index) {
  if (size < 8)
    return InvalidFile(name + ": file of " + std::to_string(size) + " bytes is too small for a safetensors header");
  uint64_t n;
  std::memcpy(&n, data, 8);
  if (n > kSafetensorsMaxHeaderBytes)
    return InvalidFile(name + ": header length " + std::to_string(n) + " exceeds the limit of " +
                       std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  if (n > size - 8)
    return InvalidFile(name + ": header length " + std::to_string(n) + " extends past the end of the file (" +
                       std::to_string(size) + " bytes)");
  std::string_view header(static_cast<const char*>(data) + 8, n);
  return ParseSafetensorsHeader(header, size, name, file_index);
}

Result<SafetensorsFile> ReadSafetensors(const std::string& path, uint32_t file_index) {
  SPOOL_ASSIGN_OR_RETURN(ByteReader r, ByteReader::OpenFile(path));
  if (r.size() < 8)
    return InvalidFile(path + ": file of " + std::to_string(r.size()) + " bytes is too small for a safetensors header");
  SPOOL_ASSIGN_OR_RETURN(uint64_t n, r.ReadPod<uint64_t>("header length"));
  if (n > kSafetensorsMaxHeaderBytes)
    return InvalidFile(path + ": header length " + std::to_string(n) + " exceeds the limit of " +
                       std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  if (n > r.remaining())
    return InvalidFile(path + ": header length " + std::to_string(n) + " extends past the end of the file (" +
                       std::to_string(r.size()) + " bytes)");
  std::string header(n, '\0');
  SPOOL_TRY(r.Read(header.data(), n, "header"));
  return ParseSafetensorsHeader(header, r.size(), path, file_index);
}

Result<SafetensorsModel> ReadSafetensorsFiles(const std::vector<std::string>& paths) {
  SafetensorsModel m;
  for (size_t i = 0; i < paths.size(); ++i) {
    SPOOL_ASSIGN_OR_RETURN(SafetensorsFile f, ReadSafetensors(paths[i], static_cast<uint32_t>(i)));
    m.files.push_back(paths[i]);
    for (auto& kv : f.metadata) m.metadata.insert(kv);
    for (auto& t : f.tensors) {
      auto [it, inserted] = m.tensor_by_name.emplace(t.name, m.tensors.size());
      if (!inserted)
        return InvalidFile(paths[i] + ": tensor '" + t.name + "' also appears in " +
                           m.files[m.tensors[it->second].file_index]);
      m.tensors.push_back(std::move(t));
    }
  }
  return m;
}

Result<SafetensorsModel> ReadShardedSafetensors(const std::string& index_json_path) {
  SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_json_path));
  SPOOL_ASSIGN_OR_RETURN(json index, ParseJson(text, index_json_path));
  if (!index.is_object()) return InvalidFile(index_json_path + ": expected a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object())
    return InvalidFile(index_json_path + ": missing object \"weight_map\"");
  std::set<std::string> shard_names;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      return InvalidFile(index_json_path + ": weight_map['" + it.key() + "'] must be a file name string");
    const std::string& shard = it->get_ref<const std::string&>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
        shard == "." || shard == "..")
      return InvalidFile(index_json_path + ": weight_map['" + it.key() + "'] = '" + shard +
                         "' is not a plain file name in the model folder");
    shard_names.insert(shard);
  }
  if (shard_names.empty()) return InvalidFile(index_json_path + ": weight_map is empty");
  std::string dir = std::filesystem::path(index_json_path).parent_path().string();
  if (dir.empty()) dir = ".";
  std::vector<std::string> paths;
  for (const auto& s : shard_names) paths.push_back(dir + "/" + s);
  SPOOL_ASSIGN_OR_RETURN(SafetensorsModel m, ReadSafetensorsFiles(paths));
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    auto t = m.tensor_by_name.find(it.key());
    std::string expected_path = dir + "/" + it->get<std::string>();
    if (t == m.tensor_by_name.end())
      return InvalidFile(index_json_path + ": weight_map names tensor '" + it.key() + "' in " +
                         expected_path + ", but no shard contains it");
    const std::string& actual = m.files[m.tensors[t->second].file_index];
    if (actual != expected_path)
      return InvalidFile(index_json_path + ": weight_map puts tensor '" + it.key() + "' in " + expected_path +
                         " but it is stored in " + actual);
  }
  return m;
}

}  // namespace spool::formats
