#version 450
// Writes n f32 values (from element src_elem of src) into the KV cache at element dst_elem, as f32 or as bf16 rounded
// to nearest even (base/dtype's F32ToBF16, NaN kept NaN). One invocation per 32-bit
// word of the destination, so two bf16 halves never race.
// src: [src_elem + n] f32   dst: f32 or bf16 elements (bf16: n and dst_elem even)
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) buffer D { uint dst[]; };
layout(push_constant) uniform P { uint n; uint dst_elem; uint bf16; uint src_elem; } p;

uint to_bf16(float f) {
  uint bits = floatBitsToUint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (bits >> 16) | 0x40u;
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return bits >> 16;
}

void main() {
  uint w = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (p.bf16 == 0u) {
    if (w >= p.n) return;
    dst[p.dst_elem + w] = floatBitsToUint(src[p.src_elem + w]);
  } else {
    if (2u * w >= p.n) return;
    dst[(p.dst_elem >> 1) + w] = to_bf16(src[p.src_elem + 2u * w]) | (to_bf16(src[p.src_elem + 2u * w + 1u]) << 16);
  }
}
