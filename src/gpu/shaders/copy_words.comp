#version 450
// Copies n 32-bit words unchanged (KV rows of any dtype, f32 rows): dst[dst_word + i] =
// src[src_word + i]. Used for the draft-tree attention's per-row KV regions and for
// moving a kept tree path's KV rows (llama_decoder_tree.cc). src and dst may be the same
// buffer when the ranges do not overlap.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer S { uint src[]; };
layout(std430, binding = 1) buffer D { uint dst[]; };
layout(push_constant) uniform P { uint n; uint src_word; uint dst_word; } p;

void main() {
  uint w = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (w >= p.n) return;
  dst[p.dst_word + w] = src[p.src_word + w];
}
