// out = g / (1 + exp(-g)) · u.   gate, up, out: [n]
// EXP_F64: exp(-g) correctly rounded to f32 (as glibc's expf, to within its 0.502 ulp)
// from an f64 evaluation: n = round(x/ln2), r = x - n·ln2 (two-part ln2), a degree-12
// Taylor polynomial of exp(r) (|r| <= ln2/2: error < 1e-17 relative), times 2^n.
#if defined(EXP_F64)
float exp_f32_via_f64(float xf) {
  double x = double(clamp(xf, -104.0, 89.0));
  double n = roundEven(x * 1.4426950408889634lf);
  double r = (x - n * 0.6931471803691238lf) - n * 1.9082149292705877e-10lf;
  double e = 1.0lf / 479001600.0lf;
  e = e * r + 1.0lf / 39916800.0lf;
  e = e * r + 1.0lf / 3628800.0lf;
  e = e * r + 1.0lf / 362880.0lf;
  e = e * r + 1.0lf / 40320.0lf;
  e = e * r + 1.0lf / 5040.0lf;
  e = e * r + 1.0lf / 720.0lf;
  e = e * r + 1.0lf / 120.0lf;
  e = e * r + 1.0lf / 24.0lf;
  e = e * r + 1.0lf / 6.0lf;
  e = e * r + 0.5lf;
  e = e * r + 1.0lf;
  e = e * r + 1.0lf;
  return float(ldexp(e, int(n)));
}
#endif
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n; } p;

void main() {
  uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (i >= p.n) return;
  float gv = g[i];
#if defined(EXP_F64)
  precise float den = 1.0 + exp_f32_via_f64(-gv);
  float q = float(double(gv) / double(den));  // correctly rounded (Vulkan's f32 division is not)
  precise float v = q * u[i];
#else
  precise float v = gv / (1.0 + exp(-gv)) * u[i];
#endif
  o[i] = v;
}
