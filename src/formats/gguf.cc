// GGUF layout (little-endian; see the GGUF spec in ggml's docs/gguf.md):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
//   n_kv  x { string key, u32 type, value }       string = u64 len + bytes
//                                                  array  = u32 elem type, u64 count, elems
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml_type,
//                 u64 offset (relative to the data section) }
//   padding to `general.alignment` (default 32), then the data section.
#include "formats/gguf.h"

#include <algorithm>
#include <limits>

#include "formats/byte_reader.h"

namespace spool::formats {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayNesting = 8;      // the spec allows nesting; real files use 0-1 levels
constexpr uint64_t kMaxAlignment = 1 << 20;
// Each parsed array element costs ~80 bytes of memory however small it is in the
// file; this cap keeps a crafted file from turning 1 GB into 80 GB. The largest real
// vocabularies (256K tokens + merges + types) use about 1M elements.
constexpr uint64_t kMaxMetadataElements = 16u << 20;

struct GgmlTypeMap {
  uint32_t ggml;
  DType dtype;
};
// GGML type ids from ggml.h (enum ggml_type).
constexpr GgmlTypeMap kGgmlTypes[] = {
    {0, DType::kF32},   {1, DType::kF16},   {2, DType::kQ4_0},  {3, DType::kQ4_1},
    {6, DType::kQ5_0},  {7, DType::kQ5_1},  {8, DType::kQ8_0},  {12, DType::kQ4_K},
    {13, DType::kQ5_K}, {14, DType::kQ6_K}, {30, DType::kBF16}, {39, DType::kMXFP4},
};

// Bytes a value of a fixed-size type occupies, 0 for string/array.
uint64_t FixedSize(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    case GgufType::kString: case GgufType::kArray: return 0;
  }
  return 0;
}

bool IsValidType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

class Parser {
 public:
  explicit Parser(ByteReader r) : r_(std::move(r)) {}
  Result<GgufFile> Parse();

 private:
  Result<std::string> ReadString(const std::string& what);
  Status ReadValue(GgufType type, GgufValue* out, const std::string& key, int depth);
  Status ReadTensorInfo(uint64_t index, TensorInfo* out, uint32_t* ggml_type, uint64_t* rel_offset);

  ByteReader r_;
  uint64_t n_array_elements_ = 0;
};

Result<std::string> Parser::ReadString(const std::string& what) {
  SPOOL_ASSIGN_OR_RETURN(uint64_t len, r_.ReadPod<uint64_t>((what + " length").c_str()));
  if (len > r_.remaining())
    return r_.Error(what, "string length " + std::to_string(len) + " exceeds the " +
                              std::to_string(r_.remaining()) + " bytes left in the file");
  std::string s(len, '\0');
  SPOOL_TRY(r_.Read(s.data(), len, what.c_str()));
  return s;
}

Status Parser::ReadValue(GgufType type, GgufValue* out, const std::string& key, int depth) {
  out->type = type;
  const char* what = key.c_str();
  switch (type) {
    case GgufType::kU8: { SPOOL_ASSIGN_OR_RETURN(uint8_t v, r_.ReadPod<uint8_t>(what)); out->scalar = uint64_t{v}; return Status::Ok(); }
    case GgufType::kU16: { SPOOL_ASSIGN_OR_RETURN(uint16_t v, r_.ReadPod<uint16_t>(what)); out->scalar = uint64_t{v}; return Status::Ok(); }
    case GgufType::kU32: { SPOOL_ASSIGN_OR_RETURN(uint32_t v, r_.ReadPod<uint32_t>(what)); out->scalar = uint64_t{v}; return Status::Ok(); }
    case GgufType::kU64: { SPOOL_ASSIGN_OR_RETURN(uint64_t v, r_.ReadPod<uint64_t>(what)); out->scalar = v; return Status::Ok(); }
    case GgufType::kI8: { SPOOL_ASSIGN_OR_RETURN(int8_t v, r_.ReadPod<int8_t>(what)); out->scalar = int64_t{v}; return Status::Ok(); }
    case GgufType::kI16: { SPOOL_ASSIGN_OR_RETURN(int16_t v, r_.ReadPod<int16_t>(what)); out->scalar = int64_t{v}; return Status::Ok(); }
    case GgufType::kI32: { SPOOL_ASSIGN_OR_RETURN(int32_t v, r_.ReadPod<int32_t>(what)); out->scalar = int64_t{v}; return Status::Ok(); }
    case GgufType::kI64: { SPOOL_ASSIGN_OR_RETURN(int64_t v, r_.ReadPod<int64_t>(what)); out->scalar = v; return Status::Ok(); }
    case GgufType::kF32: { SPOOL_ASSIGN_OR_RETURN(float v, r_.ReadPod<float>(what)); out->scalar = double{v}; return Status::Ok(); }
    case GgufType::kF64: { SPOOL_ASSIGN_OR_RETURN(double v, r_.ReadPod<double>(what)); out->scalar = v; return Status::Ok(); }
    case GgufType::kBool: {
      SPOOL_ASSIGN_OR_RETURN(uint8_t v, r_.ReadPod<uint8_t>(what));
      if (v > 1) return r_.Error(key, "bool value must be 0 or 1, got " + std::to_string(v));
      out->scalar = v == 1;
      return Status::Ok();
    }
    case GgufType::kString: {
      SPOOL_ASSIGN_OR_RETURN(std::string s, ReadString(key));
      out->scalar = std::move(s);
      return Status::Ok();
    }
    case GgufType::kArray: {
      if (depth >= kMaxArrayNesting)
        return r_.Error(key, "arrays nested deeper than " + std::to_string(kMaxArrayNesting));
      SPOOL_ASSIGN_OR_RETURN(uint32_t elem_type, r_.ReadPod<uint32_t>(what));
      if (!IsValidType(elem_type))
        return r_.Error(key, "unknown array element type " + std::to_string(elem_type));
      SPOOL_ASSIGN_OR_RETURN(uint64_t count, r_.ReadPod<uint64_t>(what));
      // Reject absurd counts before allocating: each element occupies at least
      // min_bytes in the file (strings: u64 length; arrays: u32 type + u64 count).
      GgufType et = static_cast<GgufType>(elem_type);
      uint64_t min_bytes = et == GgufType::kString ? 8 : et == GgufType::kArray ? 12 : FixedSize(et);
      if (count > r_.remaining() / min_bytes)
        return r_.Error(key, "array of " + std::to_string(count) + " " + GgufTypeName(et) +
                                 " elements cannot fit in the " + std::to_string(r_.remaining()) +
                                 " bytes left in the file");
      n_array_elements_ += count;
      if (n_array_elements_ > kMaxMetadataElements)
        return r_.Error(key, "metadata arrays hold more than " +
                                 std::to_string(kMaxMetadataElements) + " elements in total");
      out->array_type = et;
      out->array.resize(count);
      for (uint64_t i = 0; i < count; ++i)
        SPOOL_TRY(ReadValue(et, &out->array[i], key, depth + 1));
      return Status::Ok();
    }
  }
  return r_.Error(key, "unknown value type");
}

Status Parser::ReadTensorInfo(uint64_t index, TensorInfo* out, uint32_t* ggml_type, uint64_t* rel_offset) {
  std::string what = "tensor info #" + std::to_string(index);
  SPOOL_ASSIGN_OR_RETURN(out->name, ReadString(what + " name"));
  what = "tensor '" + out->name + "'";
  SPOOL_ASSIGN_OR_RETURN(uint32_t n_dims, r_.ReadPod<uint32_t>(what.c_str()));
  if (n_dims > kMaxDims)
    return r_.Error(what, "n_dims " + std::to_string(n_dims) + " exceeds the maximum of " +
                              std::to_string(kMaxDims));
  uint64_t ne[kMaxDims];
  uint64_t n_elems = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    SPOOL_ASSIGN_OR_RETURN(ne[d], r_.ReadPod<uint64_t>(what.c_str()));
    if (ne[d] == 0) return r_.Error(what, "dimension " + std::to_string(d) + " is zero");
    if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne[d])
      return r_.Error(what, "element count overflows (dimension " + std::to_string(d) + " = " +
                                std::to_string(ne[d]) + ")");
    n_elems *= ne[d];
  }
  SPOOL_ASSIGN_OR_RETURN(*ggml_type, r_.ReadPod<uint32_t>(what.c_str()));
  SPOOL_ASSIGN_OR_RETURN(*rel_offset, r_.ReadPod<uint64_t>(what.c_str()));
  std::optional<DType> dt = DTypeFromGgmlType(*ggml_type);
  if (!dt)
    return Unsupported(r_.name() + ": " + what + " has GGML tensor type " +
                       std::to_string(*ggml_type) + ", which spool does not support");
  out->dtype = *dt;
  out->shape.assign(n_dims, 0);
  for (uint32_t d = 0; d < n_dims; ++d) out->shape[d] = ne[n_dims - 1 - d];  // outermost first
  uint32_t block = GetDTypeInfo(*dt).block_elems;
  if (n_dims > 0 && ne[0] % block != 0)
    return r_.Error(what, "row length " + std::to_string(ne[0]) + " is not a multiple of the " +
                              std::string(DTypeName(*dt)) + " block size " + std::to_string(block));
  std::optional<uint64_t> nbytes = DTypeBytes(*dt, n_elems);
  if (!nbytes) return r_.Error(what, "byte size overflows");
  out->nbytes = *nbytes;
  out->file_index = 0;
  return Status::Ok();
}

Result<GgufFile> Parser::Parse() {
  GgufFile f;
  f.path = r_.name();
  f.file_size = r_.size();
  SPOOL_ASSIGN_OR_RETURN(uint32_t magic, r_.ReadPod<uint32_t>("magic"));
  if (magic != kMagic) return r_.Error("magic", "not a GGUF file (magic is not \"GGUF\")");
  SPOOL_ASSIGN_OR_RETURN(f.version, r_.ReadPod<uint32_t>("version"));
  if (f.version == 1)
    return Unsupported(f.path + ": GGUF version 1 is not supported (only v2 and v3); "
                       "re-convert the model with a current llama.cpp");
  if (f.version != 2 && f.version != 3) {
    bool swapped = (f.version & 0xffff) == 0 && (f.version >> 24) <= 3;
    return Unsupported(f.path + ": GGUF version " + std::to_string(f.version) +
                       (swapped ? " (a big-endian GGUF?)" : "") + " is not supported (expected 2 or 3)");
  }
  SPOOL_ASSIGN_OR_RETURN(uint64_t n_tensors, r_.ReadPod<uint64_t>("tensor count"));
  SPOOL_ASSIGN_OR_RETURN(uint64_t n_kv, r_.ReadPod<uint64_t>("metadata count"));
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info
  // at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
  if (n_kv > r_.remaining() / 13)
    return r_.Error("metadata count", std::to_string(n_kv) + " key/value pairs cannot fit in " +
                                          std::to_string(r_.remaining()) + " bytes");
  if (n_tensors > r_.remaining() / 24)
    return r_.Error("tensor count", std::to_string(n_tensors) + " tensor infos cannot fit in " +
                                        std::to_string(r_.remaining()) + " bytes");

  f.keys.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    SPOOL_ASSIGN_OR_RETURN(std::string key, ReadString("metadata key #" + std::to_string(i)));
    if (f.metadata.count(key)) return r_.Error("metadata key '" + key + "'", "duplicate key");
    SPOOL_ASSIGN_OR_RETURN(uint32_t type, r_.ReadPod<uint32_t>(key.c_str()));
    if (!IsValidType(type))
      return r_.Error("metadata key '" + key + "'", "unknown value type " + std::to_string(type));
    GgufValue v;
    SPOOL_TRY(ReadValue(static_cast<GgufType>(type), &v, key, 0));
    f.keys.push_back(key);
    f.metadata.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = f.Find("general.alignment")) {
    std::optional<int64_t> al = a->AsInt();
    if (a->type == GgufType::kBool || !al || *al <= 0 || static_cast<uint64_t>(*al) > kMaxAlignment ||
        (*al & (*al - 1)) != 0)
      return InvalidFile(f.path + ": general.alignment must be a power of two in [1, " +
                         std::to_string(kMaxAlignment) + "]" +
                         (al ? ", got " + std::to_string(*al) : std::string(", got a non-integer")));
    f.alignment = static_cast<uint64_t>(*al);
  }
  if (const GgufValue* s = f.Find("split.count")) {
    if (s->AsInt().value_or(1) > 1)
      return Unsupported(f.path + ": split GGUF files (split.count = " +
                         std::to_string(*s->AsInt()) + ") are not supported; merge them with "
                         "llama-gguf-split --merge");
  }

  std::vector<uint64_t> rel_offsets(n_tensors);
  f.tensors.resize(n_tensors);
  f.tensor_by_name.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    uint32_t ggml_type = 0;
    SPOOL_TRY(ReadTensorInfo(i, &f.tensors[i], &ggml_type, &rel_offsets[i]));
    if (!f.tensor_by_name.emplace(f.tensors[i].name, i).second)
      return r_.Error("tensor '" + f.tensors[i].name + "'", "duplicate tensor name");
  }

  uint64_t pos = r_.pos();
  f.data_offset = (pos + f.alignment - 1) / f.alignment * f.alignment;  // pos < 2^63: no overflow
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo& t = f.tensors[i];
    const std::string what = f.path + ": tensor '" + t.name + "'";
    if (rel_offsets[i] % f.alignment != 0)
      return InvalidFile(what + ": data offset " + std::to_string(rel_offsets[i]) +
                         " is not a multiple of the alignment " + std::to_string(f.alignment));
    if (f.data_offset > f.file_size || rel_offsets[i] > f.file_size - f.data_offset ||
        t.nbytes > f.file_size - f.data_offset - rel_offsets[i])
      return InvalidFile(what + ": data [" + std::to_string(rel_offsets[i]) + ", +" +
                         std::to_string(t.nbytes) + ") relative to the data section at " +
                         std::to_string(f.data_offset) + " ends past the end of the file (" +
                         std::to_string(f.file_size) + " bytes)");
    t.offset = f.data_offset + rel_offsets[i];
  }
  // Tensor data must not overlap (writers lay tensors out back to back, padded).
  std::vector<size_t> order(n_tensors);
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors[a].offset < f.tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& prev = f.tensors[order[k - 1]];
    const TensorInfo& cur = f.tensors[order[k]];
    if (prev.offset + prev.nbytes > cur.offset)
      return InvalidFile(f.path + ": tensor '" + cur.name + "' at offset " +
                         std::to_string(cur.offset) + " overlaps tensor '" + prev.name + "' ending at " +
                         std::to_string(prev.offset + prev.nbytes));
  }
  return f;
}

std::string TypeMismatch(const GgufFile& f, const std::string& key, const char* expected,
                         const GgufValue& v) {
  std::string actual = GgufTypeName(v.type);
  if (v.type == GgufType::kArray) actual += std::string(" of ") + GgufTypeName(v.array_type);
  return f.path + ": metadata '" + key + "': expected " + expected + ", found " + actual;
}

bool IsIntegerType(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kU16: case GgufType::kI16:
    case GgufType::kU32: case GgufType::kI32: case GgufType::kU64: case GgufType::kI64:
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kU8: return "u8";
    case GgufType::kI8: return "i8";
    case GgufType::kU16: return "u16";
    case GgufType::kI16: return "i16";
    case GgufType::kU32: return "u32";
    case GgufType::kI32: return "i32";
    case GgufType::kF32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "u64";
    case GgufType::kI64: return "i64";
    case GgufType::kF64: return "f64";
  }
  return "?";
}

std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type) {
  for (const auto& m : kGgmlTypes)
    if (m.ggml == ggml_type) return m.dtype;
  return std::nullopt;
}

uint32_t GgmlTypeFromDType(DType t) {
  for (const auto& m : kGgmlTypes)
    if (m.dtype == t) return m.ggml;
  return 26;  // kI32 -> GGML_TYPE_I32
}

std::optional<int64_t> GgufValue::AsInt() const {
  if (const auto* u = std::get_if<uint64_t>(&scalar)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&scalar)) return *i;
  if (const auto* b = std::get_if<bool>(&scalar)) return *b ? 1 : 0;
  return std::nullopt;
}

std::optional<double> GgufValue::AsFloat() const {
  if (const auto* d = std::get_if<double>(&scalar)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&scalar)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&scalar)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<std::string> GgufValue::AsString() const {
  if (const auto* s = std::get_if<std::string>(&scalar)) return *s;
  return std::nullopt;
}

std::optional<bool> GgufValue::AsBool() const {
  if (const auto* b = std::get_if<bool>(&scalar)) return *b;
  return std::nullopt;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

const TensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_by_name.find(name);
  if (it != tensor_by_name.end()) return &tensors[it->second];
  if (tensor_by_name.empty())  // hand-built GgufFile without the index
    for (const auto& t : tensors)
      if (t.name == name) return &t;
  return nullptr;
}

Result<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  if (!IsIntegerType(v->type)) return InvalidFile(TypeMismatch(*this, key, "an integer", *v));
  std::optional<int64_t> i = v->AsInt();
  if (!i) return InvalidFile(path + ": metadata '" + key + "': value does not fit in int64");
  return *i;
}

Result<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  std::optional<double> d = v->type == GgufType::kBool ? std::nullopt : v->AsFloat();
  if (!d) return InvalidFile(TypeMismatch(*this, key, "a number", *v));
  return *d;
}

Result<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  if (v->type != GgufType::kString) return InvalidFile(TypeMismatch(*this, key, "a string", *v));
  return *v->AsString();
}

Result<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  if (v->type != GgufType::kBool) return InvalidFile(TypeMismatch(*this, key, "a bool", *v));
  return *v->AsBool();
}

Result<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  if (v->type != GgufType::kArray || v->array_type != GgufType::kString)
    return InvalidFile(TypeMismatch(*this, key, "an array of string", *v));
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) out.push_back(std::get<std::string>(e.scalar));
  return out;
}

Result<std::vector<int64_t>> GgufFile::GetIntArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  if (v->type != GgufType::kArray || !IsIntegerType(v->array_type))
    return InvalidFile(TypeMismatch(*this, key, "an array of integers", *v));
  std::vector<int64_t> out;
  out.reserve(v->array.size());
  for (size_t i = 0; i < v->array.size(); ++i) {
    std::optional<int64_t> x = v->array[i].AsInt();
    if (!x)
      return InvalidFile(path + ": metadata '" + key + "'[" + std::to_string(i) +
                         "]: value does not fit in int64");
    out.push_back(*x);
  }
  return out;
}

Result<std::vector<double>> GgufFile::GetFloatArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return NotFound(path + ": metadata key '" + key + "' not found");
  if (v->type != GgufType::kArray || v->array_type == GgufType::kString ||
      v->array_type == GgufType::kArray || v->array_type == GgufType::kBool)
    return InvalidFile(TypeMismatch(*this, key, "an array of numbers", *v));
  std::vector<double> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) out.push_back(*e.AsFloat());
  return out;
}

Result<GgufFile> ReadGguf(const std::string& path) {
  SPOOL_ASSIGN_OR_RETURN(ByteReader r, ByteReader::OpenFile(path));
  return Parser(std::move(r)).Parse();
}

Result<GgufFile> ReadGgufFromMemory(const void* data, uint64_t size, const std::string& name) {
  return Parser(ByteReader::FromMemory(data, size, name)).Parse();
}

}  // namespace spool::formats
