// Helpers shared by the compute shaders. Plain GLSL 4.50 (no 8/16-bit storage, no
// subgroup or cooperative-matrix extensions): every buffer is an array of 32-bit words
// and narrower values are unpacked from them, so these run on every Vulkan 1.1 device.

// Byte `off` of a word array (little-endian).
#define BYTE_AT(arr, off) ((arr[(off) >> 2] >> (((off) & 3u) * 8u)) & 0xffu)
// 16-bit half-word at even byte offset `off`.
#define HALF_AT(arr, off) ((arr[(off) >> 2] >> (((off) & 2u) * 8u)) & 0xffffu)

#if defined(INT_DOT)
// OpSDot on two 32-bit words of four packed int8 each (SPV_KHR_integer_dot_product,
// PackedVectorFormat4x8Bit = 0): exact, so it equals the plain Σ of the four products.
// Shaders compiled with INT_DOT enable GL_EXT_spirv_intrinsics before including this
// (glslang of shaderc 2023 has no GL_EXT_integer_dot_product) and run only where the
// device enabled shaderIntegerDotProduct (Kernels picks them; kernels.h).
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packed_format);
#define DOT4x8(a, b) sdot4x8((a), (b), 0)
#endif

int sext8(uint b) { return int(b << 24) >> 24; }
float f16_bits_to_f32(uint h) { return unpackHalf2x16(h).x; }
float bf16_bits_to_f32(uint h) { return uintBitsToFloat(h << 16); }

// f32 → nearest f16 (ties to even) → f32, as base/dtype's F32ToF16 rounds. Exact:
// packHalf2x16's rounding is implementation-defined, so this works on the bits.
float f16_round(float f) {
  uint x = floatBitsToUint(f);
  uint sign = x & 0x80000000u;
  uint a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return f;                                // inf, NaN
  if (a >= 0x477ff000u) return uintBitsToFloat(sign | 0x7f800000u);  // rounds past 65504
  if (a < 0x38800000u) {                                          // f16 subnormal: steps of 2^-24
    float r = roundEven(uintBitsToFloat(a) * 16777216.0) * (1.0 / 16777216.0);
    return uintBitsToFloat(sign | floatBitsToUint(r));
  }
  a += 0xfffu + ((a >> 13) & 1u);
  return uintBitsToFloat(sign | (a & 0xffffe000u));
}

// Workgroup tree reduction over WG lanes of shared array `red` (WG a power of two).
// Every invocation must call it (it has barriers); the result is in red[0].
#define REDUCE(red, tid, WG, OP)                         \
  barrier();                                             \
  for (uint s_ = (WG) / 2u; s_ > 0u; s_ >>= 1u) {        \
    if ((tid) < s_) red[tid] = OP(red[tid], red[(tid) + s_]); \
    barrier();                                           \
  }
float op_add(float a, float b) { return a + b; }
float op_max(float a, float b) { return max(a, b); }

// a·b + c rounded once (a fused multiply-add). GLSL's fma() is fused on most GPUs but
// not on every driver (lavapipe lowers it to a multiply and an add); shaders compiled
// with FMA_F64 emulate it in f64: the product is exact in f64 and the sum rounds to f64
// and then to f32 (differs from one rounding only when the f64 sum lands exactly on an
// f32 tie).
float ffma(float a, float b, float c) {
#if defined(FMA_F64)
  return float(double(a) * double(b) + double(c));
#else
  return fma(a, b, c);
#endif
}
