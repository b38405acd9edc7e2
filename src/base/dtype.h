// Element/block types of stored tensors, shared by formats (which read them from
// files) and tensor (which computes on them). Numbering is spool's own; the GGUF
// type ids are mapped in formats/gguf.cc.
//
// Quantised GGUF types are stored in blocks: `block_elems` elements occupy
// `block_bytes` bytes. Plain types have block_elems == 1.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace spool {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kI32,  // only for metadata-like tensors; never a weight
  kMXFP4,  // OCP microscaling FP4 (E2M1 values, E8M0 scale per 32), GGUF type 39
  kU8,     // raw bytes (safetensors U8: the `*_blocks` / `*_scales` halves of HF MXFP4); never a weight by itself
};

struct DTypeInfo {
  std::string_view name;  // "f32", "bf16", "q4_k", ...
  uint32_t block_elems;   // elements per block
  uint32_t block_bytes;   // bytes per block
  bool quantized;
};

const DTypeInfo& GetDTypeInfo(DType t);
inline std::string_view DTypeName(DType t) { return GetDTypeInfo(t).name; }
std::optional<DType> DTypeFromName(std::string_view name);

// Bytes needed for `n_elems` elements of type t, or nullopt when n_elems is not a
// multiple of the block size or the result would overflow.
std::optional<uint64_t> DTypeBytes(DType t, uint64_t n_elems);

// Scalar conversions (exact bit manipulation, round-to-nearest-even for bf16).
inline float BF16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t F32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

}  // namespace spool
