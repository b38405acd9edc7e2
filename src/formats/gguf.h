// GGUF v2/v3 reader: metadata (every value type), tensor infos, alignment.
// Files are untrusted: every count, length, offset and shape is bounds-checked
// against the file size before use, and a failure names the file and the field.
// Only the header and tensor-info table are read here; tensor bytes are read by
// the storage part using TensorInfo offsets.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "base/status.h"
#include "formats/tensor_info.h"

namespace spool::formats {

// GGUF metadata value types (numbering as in the GGUF spec).
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// One metadata value. Arrays are homogeneous; the element type is kept so that
// typed accessors can reject e.g. an f32 array where token strings are expected.
struct GgufValue {
  GgufType type = GgufType::kU8;
  // Scalars: integers widen to int64/uint64, floats to double, bool.
  std::variant<std::monostate, uint64_t, int64_t, double, bool, std::string> scalar;
  GgufType array_type = GgufType::kU8;   // valid when type == kArray
  std::vector<GgufValue> array;          // elements (nested arrays allowed by the spec)

  std::optional<int64_t> AsInt() const;      // any integer type (range-checked) or bool
  std::optional<double> AsFloat() const;     // any numeric type
  std::optional<std::string> AsString() const;
  std::optional<bool> AsBool() const;
};

struct GgufFile {
  std::string path;
  uint32_t version = 0;
  uint64_t alignment = 32;            // general.alignment or 32
  uint64_t data_offset = 0;           // start of the tensor data section
  uint64_t file_size = 0;
  std::vector<std::string> keys;      // metadata keys in file order
  std::map<std::string, GgufValue> metadata;
  std::vector<TensorInfo> tensors;    // file order; file_index == 0; offsets absolute
  std::unordered_map<std::string, size_t> tensor_by_name;  // name -> index into tensors

  const GgufValue* Find(const std::string& key) const;
  // Typed getters: NotFound if absent, InvalidFile (naming key, expected vs actual type) if wrong.
  Result<int64_t> GetInt(const std::string& key) const;
  Result<double> GetFloat(const std::string& key) const;
  Result<std::string> GetString(const std::string& key) const;
  Result<bool> GetBool(const std::string& key) const;
  Result<std::vector<std::string>> GetStringArray(const std::string& key) const;
  Result<std::vector<int64_t>> GetIntArray(const std::string& key) const;
  Result<std::vector<double>> GetFloatArray(const std::string& key) const;
  const TensorInfo* FindTensor(const std::string& name) const;
};

// Parses the header of a GGUF file. A vocabulary-only GGUF (no tensors) is valid.
// Errors: NotFound/Io (file), Unsupported (GGUF v1, big-endian, split GGUF, unknown
// tensor type), InvalidFile (anything malformed); every message starts with the path.
// Cost: one sequential pass over the header with 1 MiB preads; no mmap.
Result<GgufFile> ReadGguf(const std::string& path);

// Same parser over an in-memory copy of a whole file (fuzzing, tests). `name` is
// used in error messages and as GgufFile::path.
Result<GgufFile> ReadGgufFromMemory(const void* data, uint64_t size, const std::string& name);

// GGML tensor type id <-> spool DType (only the types spool computes with).
std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type);
uint32_t GgmlTypeFromDType(DType t);  // kI32 -> GGML I32 (26), which the reader rejects
const char* GgufTypeName(GgufType t);

}  // namespace spool::formats
