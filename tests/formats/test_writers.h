// Small writers for test inputs: GGUF and safetensors files built byte by byte, so
// that tests can produce both valid files and precisely malformed ones.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace spool::formats::testing {

// Appends little-endian values to a byte vector.
class Bytes {
 public:
  template <typename T>
  Bytes& Pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    data.insert(data.end(), p, p + sizeof v);
    return *this;
  }
  Bytes& U32(uint32_t v) { return Pod(v); }
  Bytes& U64(uint64_t v) { return Pod(v); }
  Bytes& Str(const std::string& s) {
    U64(s.size());
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    data.insert(data.end(), b, b + n);
    return *this;
  }
  Bytes& PadTo(uint64_t align) {
    while (data.size() % align) data.push_back(0);
    return *this;
  }
  std::vector<uint8_t> data;
};

// A GGUF file: metadata entries are appended raw (the caller writes type + value),
// tensors are given with GGUF-order dims (innermost first).
struct GgufTensorSpec {
  std::string name;
  std::vector<uint64_t> ne;  // innermost first, as stored
  uint32_t ggml_type = 0;
  uint64_t rel_offset = 0;
  uint64_t nbytes = 0;       // bytes of data written for it
  std::vector<uint8_t> bytes;  // its data; empty: a filler pattern
};

struct GgufBuilder {
  uint32_t version = 3;
  uint64_t alignment = 32;
  uint64_t n_kv = 0;
  Bytes kv;  // encoded key/value pairs
  std::vector<GgufTensorSpec> tensors;

  GgufBuilder& KvU32(const std::string& key, uint32_t v) {
    kv.Str(key).U32(4).U32(v);
    ++n_kv;
    return *this;
  }
  GgufBuilder& KvF32(const std::string& key, float v) {
    kv.Str(key).U32(6).Pod(v);
    ++n_kv;
    return *this;
  }
  GgufBuilder& KvStr(const std::string& key, const std::string& v) {
    kv.Str(key).U32(8).Str(v);
    ++n_kv;
    return *this;
  }
  // Adds a tensor laid out after the previous one (aligned).
  GgufBuilder& Tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t nbytes) {
    uint64_t off = 0;
    if (!tensors.empty()) {
      off = tensors.back().rel_offset + tensors.back().nbytes;
      off = (off + alignment - 1) / alignment * alignment;
    }
    tensors.push_back({name, std::move(ne), type, off, nbytes, {}});
    return *this;
  }
  // Adds a tensor with the given data.
  GgufBuilder& TensorData(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> data) {
    Tensor(name, std::move(ne), type, data.size());
    tensors.back().bytes = std::move(data);
    return *this;
  }
  std::vector<uint8_t> Build() const {
    Bytes b;
    b.Raw("GGUF", 4).U32(version).U64(tensors.size()).U64(n_kv);
    b.Raw(kv.data.data(), kv.data.size());
    for (const auto& t : tensors) {
      b.Str(t.name).U32(static_cast<uint32_t>(t.ne.size()));
      for (auto d : t.ne) b.U64(d);
      b.U32(t.ggml_type).U64(t.rel_offset);
    }
    b.PadTo(alignment);
    size_t data_start = b.data.size();
    for (const auto& t : tensors) {
      b.data.resize(std::max<size_t>(b.data.size(), data_start + t.rel_offset + t.nbytes), 0);
      for (uint64_t i = 0; i < t.nbytes; ++i)
        b.data[data_start + t.rel_offset + i] = t.bytes.empty() ? static_cast<uint8_t>(i * 7 + 1) : t.bytes[i];
    }
    return b.data;
  }
};

// A fresh temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "spool-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p) path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const void* data, size_t n) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}
inline void WriteFile(const std::string& path, const std::vector<uint8_t>& b) { WriteFile(path, b.data(), b.size()); }
inline void WriteFile(const std::string& path, const std::string& s) { WriteFile(path, s.data(), s.size()); }

inline std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A safetensors file: header JSON given verbatim (so tests can break it), then `data`.
inline std::vector<uint8_t> SafetensorsBytes(const std::string& header_json, const std::vector<uint8_t>& data) {
  Bytes b;
  b.U64(header_json.size());
  b.Raw(header_json.data(), header_json.size());
  b.Raw(data.data(), data.size());
  return b.data;
}

// A valid safetensors file from (name, dtype, shape) triples; element bytes are a
// pattern derived from the tensor index so tests can verify offsets by reading.
struct StTensor {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", ...
  std::vector<uint64_t> shape;
};
inline size_t StElemBytes(const std::string& dtype) { return dtype == "F32" || dtype == "I32" ? 4 : dtype == "I64" || dtype == "F64" ? 8 : 2; }
inline std::vector<uint8_t> SafetensorsFile(const std::vector<StTensor>& tensors,
                                            const std::string& metadata_json = "") {
  std::string header = "{";
  if (!metadata_json.empty()) header += "\"__metadata__\":" + metadata_json;
  std::vector<uint8_t> data;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    uint64_t n = 1;
    for (auto d : t.shape) n *= d;
    uint64_t begin = data.size();
    uint64_t bytes = n * StElemBytes(t.dtype);
    for (uint64_t k = 0; k < bytes; ++k) data.push_back(static_cast<uint8_t>(i + 1));
    if (header.size() > 1) header += ",";
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (d) header += ',';
      header += std::to_string(t.shape[d]);
    }
    header += "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(begin + bytes) + "]}";
  }
  header += "}";
  while ((header.size() + 8) % 8) header += ' ';  // padded like the reference writer
  return SafetensorsBytes(header, data);
}

}  // namespace spool::formats::testing
