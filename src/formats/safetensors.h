// safetensors reader: single files and sharded models (model.safetensors.index.json).
//
// File layout: u64 little-endian N, N bytes of JSON header, then the data section.
// The header maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__" object of
// string -> string. Files are untrusted: every offset, length and shape is checked
// and errors name the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "formats/tensor_info.h"

namespace spool::formats {

// Headers larger than this are rejected (real headers are < 10 MB).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;

struct SafetensorsFile {
  std::string path;
  uint64_t file_size = 0;
  uint64_t data_offset = 0;                     // 8 + header length
  std::map<std::string, std::string> metadata;  // "__metadata__" (string values only)
  std::vector<TensorInfo> tensors;              // sorted by offset; offsets absolute
};

// Reads and validates one file. Tensors get `file_index`.
// Errors: NotFound/Io (file), InvalidFile (malformed), Unsupported (dtype other than
// F32/F16/BF16, zero-sized dimension), each naming the path (and tensor).
Result<SafetensorsFile> ReadSafetensors(const std::string& path, uint32_t file_index = 0);

// Parses a whole file image held in memory (fuzzing, tests). `name` is used as path.
Result<SafetensorsFile> ParseSafetensors(const void* data, uint64_t size, const std::string& name,
                                         uint32_t file_index = 0);

// Validates a header JSON given the size of the file it came from.
Result<SafetensorsFile> ParseSafetensorsHeader(std::string_view header_json, uint64_t file_size,
                                               const std::string& name, uint32_t file_index);

// Several safetensors files seen as one model.
struct SafetensorsModel {
  std::vector<std::string> files;                        // absolute/joined paths; file_index indexes this
  std::vector<TensorInfo> tensors;                       // file by file, each sorted by offset
  std::unordered_map<std::string, size_t> tensor_by_name;  // name -> index into tensors
  std::map<std::string, std::string> metadata;           // merged "__metadata__" of all files
};

// Reads model.safetensors.index.json (its "weight_map": tensor -> shard file name,
// shards in the same folder) and every shard it names, in sorted file-name order.
// Checks: shard names are plain file names (no '/' or ".."), every weight_map entry
// exists in the named shard, no tensor appears in two shards.
Result<SafetensorsModel> ReadShardedSafetensors(const std::string& index_json_path);

// Reads the given files as one model (a single file, or shards without an index).
// Fails on a tensor name present in two files.
Result<SafetensorsModel> ReadSafetensorsFiles(const std::vector<std::string>& paths);

}  // namespace spool::formats
