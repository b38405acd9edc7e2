// Test helper: a GGUF file rewritten from another (metadata edited, dropped or added;
// tensors dropped or added), for tests of layouts and malformed conversions. Tensors must
// be f32 (the converted fixtures are).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "../formats/test_writers.h"
#include "formats/gguf.h"

namespace spool::testing {

// A GGUF value's bytes (after its type), as the spec lays them out.
inline void PutValue(formats::testing::Bytes& b, const formats::GgufValue& v) {
  using T = formats::GgufType;
  auto u = [&] { return std::holds_alternative<uint64_t>(v.scalar) ? std::get<uint64_t>(v.scalar)
                                                                     : static_cast<uint64_t>(std::get<int64_t>(v.scalar)); };
  switch (v.type) {
    case T::kU8: case T::kI8: b.Pod(static_cast<uint8_t>(u())); break;
    case T::kU16: case T::kI16: b.Pod(static_cast<uint16_t>(u())); break;
    case T::kU32: case T::kI32: b.Pod(static_cast<uint32_t>(u())); break;
    case T::kU64: case T::kI64: b.Pod(u()); break;
    case T::kF32: b.Pod(static_cast<float>(std::get<double>(v.scalar))); break;
    case T::kF64: b.Pod(std::get<double>(v.scalar)); break;
    case T::kBool: b.Pod(static_cast<uint8_t>(std::get<bool>(v.scalar))); break;
    case T::kString: b.Str(std::get<std::string>(v.scalar)); break;
    case T::kArray:
      b.U32(static_cast<uint32_t>(v.array_type)).U64(v.array.size());
      for (const auto& e : v.array) PutValue(b, e);
      break;
  }
}

struct NewTensor {
  std::string name;
  std::vector<uint64_t> shape;  // outermost first
  std::vector<uint8_t> bytes;   // f32
};

// GGUF `src` rewritten: metadata through `edit_kv` (false: dropped) plus `extra_kv` (raw
// entries), tensors without `drop` plus `add`. Returns the new file's path (in the temp
// directory, named after `tag` and the process id).
inline std::string RewriteGguf(const std::string& src, const std::string& tag,
                               const std::function<bool(const std::string&, formats::GgufValue&)>& edit_kv,
                               const std::vector<std::pair<std::string, formats::GgufValue>>& extra_kv,
                               const std::function<bool(const std::string&)>& drop, const std::vector<NewTensor>& add) {
  auto g = formats::ReadGguf(src);
  EXPECT_TRUE(g.ok()) << g.status().message();
  std::ifstream in(src, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  formats::testing::Bytes kv;
  uint64_t n_kv = 0;
  for (const std::string& key : g->keys) {
    formats::GgufValue v = g->metadata.at(key);
    if (!edit_kv(key, v)) continue;
    kv.Str(key).U32(static_cast<uint32_t>(v.type));
    PutValue(kv, v);
    ++n_kv;
  }
  for (const auto& [key, v] : extra_kv) {
    kv.Str(key).U32(static_cast<uint32_t>(v.type));
    PutValue(kv, v);
    ++n_kv;
  }
  std::vector<NewTensor> tensors;
  for (const formats::TensorInfo& t : g->tensors) {
    if (drop(t.name)) continue;
    EXPECT_EQ(t.dtype, DType::kF32) << t.name;
    tensors.push_back({t.name, t.shape, std::vector<uint8_t>(file.begin() + t.offset, file.begin() + t.offset + t.nbytes)});
  }
  tensors.insert(tensors.end(), add.begin(), add.end());
  formats::testing::Bytes b;
  b.Raw("GGUF", 4).U32(3).U64(tensors.size()).U64(n_kv);
  b.Raw(kv.data.data(), kv.data.size());
  uint64_t off = 0;
  for (const NewTensor& t : tensors) {
    b.Str(t.name).U32(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) b.U64(*it);
    b.U32(0).U64(off);  // GGML_TYPE_F32
    off = (off + t.bytes.size() + g->alignment - 1) / g->alignment * g->alignment;
  }
  b.PadTo(g->alignment);
  for (const NewTensor& t : tensors) {
    b.Raw(t.bytes.data(), t.bytes.size());
    b.PadTo(g->alignment);
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("spool-rewrite-" + tag + "-" + std::to_string(::getpid()) + ".gguf")).string();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data.data()),
                                              static_cast<std::streamsize>(b.data.size()));
  return path;
}

inline formats::GgufValue U32Value(uint32_t v) {
  formats::GgufValue x;
  x.type = formats::GgufType::kU32;
  x.scalar = static_cast<uint64_t>(v);
  return x;
}

}  // namespace spool::testing
