#version 450
// Rotary embeddings in place with a host-computed cos/sin table (so the result is
// ApplyRope's bit for bit): a' = a·c - b·s, b' = b·c + a·s, no FMA.
// x: [n_tok, n_head, head_dim]   table: [n_tok, rope_dim/2] (cos, sin) pairs
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer T { vec2 table[]; };
layout(push_constant) uniform P { uint n_tok; uint n_head; uint head_dim; uint rope_dim; uint neox; } p;

void main() {
  uint half_dim = p.rope_dim / 2u;
  uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (idx >= p.n_tok * p.n_head * half_dim) return;
  uint i = idx % half_dim;
  uint th = idx / half_dim;  // t * n_head + h
  uint t = th / p.n_head;
  uint base = th * p.head_dim;
  uint ia = p.neox != 0u ? i : 2u * i;
  uint ib = p.neox != 0u ? i + half_dim : 2u * i + 1u;
  vec2 cs = table[t * half_dim + i];
  float a = x[base + ia], b = x[base + ib];
  precise float ac = a * cs.x;
  precise float bs = b * cs.y;
  precise float bc = b * cs.x;
  precise float as_ = a * cs.y;
  precise float na = ac - bs;
  precise float nb = bc + as_;
  x[base + ia] = na;
  x[base + ib] = nb;
}
