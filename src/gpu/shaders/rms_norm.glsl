// y = (x · 1/sqrt(mean(x²) + eps)) · w per row; one workgroup per row.
// x, y: [n_rows, dim]   w: [dim]
#include "common.glsl"
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { float w[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform P { uint n_rows; uint dim; float eps; } p;
shared float red[WG];

void main() {
  uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;
  uint tid = gl_LocalInvocationID.x;
  uint base = row * p.dim;
#if defined(RMS_F64)
  // The CPU's numerics (tensor/ops.cc RmsNorm): f32 squares summed in f64 in order, by
  // one lane; mean rounded to f32; 1/sqrt rounded once each (f64 then f32).
  if (tid == 0u) {
    double acc = 0.0;
    for (uint i = 0u; i < p.dim; ++i) {
      precise float sq = x[base + i] * x[base + i];
      acc += double(sq);
    }
    float mean = float(acc / double(p.dim));
    precise float me = mean + p.eps;
    float root = float(sqrt(double(me)));
    red[0] = float(1.0lf / double(root));
  }
  barrier();
  float scale = red[0];
#else
  float sum = 0.0;
  for (uint i = tid; i < p.dim; i += WG) {
    precise float sq = x[base + i] * x[base + i];
    sum += sq;
  }
  red[tid] = sum;
  REDUCE(red, tid, WG, op_add)
  float mean = red[0] / float(p.dim);
  float scale = 1.0 / sqrt(mean + p.eps);
#endif
  barrier();  // every lane has read red[0] and x before y (which may be x) is written
  for (uint i = tid; i < p.dim; i += WG) {
    precise float v = (x[base + i] * scale) * w[i];
    y[base + i] = v;
  }
}
