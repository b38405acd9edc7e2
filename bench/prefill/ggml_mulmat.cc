// llama.cpp's CPU matmul, timed per op: one ggml_mul_mat of a quantised weight [n_out, k]
// and m f32 activation rows, computed by ggml's CPU backend (the libggml of the installed
// llama-cpp-python wheel), n threads, no extra buffer types (no repacking). Which path ggml
// takes is its own choice (K-quants with m >= 8: ggml-cpu/tiled; GGML_CPU_TILED_MM=0 forces
// the per-pair vec_dot path; Q4_0/Q8_0/Q5_0: llamafile's tinyBLAS; Q4_1: vec_dot).
// Not part of the spool build (it links the wheel's libraries); build and run:
//   LIB=$(python3 -c 'import llama_cpp,os;print(os.path.dirname(llama_cpp.__file__))')
//   g++ -O2 -std=c++17 -I$LIB/../include bench/prefill/ggml_mulmat.cc -L$LIB/lib \
//       -lggml -lggml-base -lggml-cpu -Wl,-rpath,$LIB/lib -o /tmp/ggml_mulmat
//   /tmp/ggml_mulmat [--threads 2] [--m 512] [--seconds 1] [--types q4_K,q6_K,q4_1]
//   /tmp/ggml_mulmat --dump DIR --types q4_K --shape 64x512 --m 24   (W and y for a test; x by formula)
// Prints one line per (type, shape): ms per call and GFLOP/s = 2·m·n_out·k / time.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"

namespace {

ggml_type TypeOf(const std::string& s) {
  if (s == "q4_K") return GGML_TYPE_Q4_K;
  if (s == "q5_K") return GGML_TYPE_Q5_K;
  if (s == "q6_K") return GGML_TYPE_Q6_K;
  if (s == "q4_0") return GGML_TYPE_Q4_0;
  if (s == "q4_1") return GGML_TYPE_Q4_1;
  if (s == "q8_0") return GGML_TYPE_Q8_0;
  std::fprintf(stderr, "unknown type %s\n", s.c_str());
  std::exit(2);
}

std::vector<std::string> Split(const std::string& s, char c) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p <= s.size()) {
    const size_t q = s.find(c, p);
    out.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  return out;
}

void WriteFile(const std::string& path, const void* p, size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(p, 1, n, f) != n) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  long m = 512;
  double seconds = 1.0;
  std::string types = "q4_K,q6_K,q4_1", dump, shapes = "2048x2048,8192x2048,2048x8192";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--m") m = std::atol(v.c_str());
    else if (a == "--seconds") seconds = std::atof(v.c_str());
    else if (a == "--types") types = v;
    else if (a == "--shape") shapes = v;
    else if (a == "--dump") dump = v;
    else { std::fprintf(stderr, "unknown flag %s\n", a.c_str()); return 2; }
  }
  ggml_cpu_init();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const std::string& tn : Split(types, ',')) {
    for (const std::string& sh : Split(shapes, ',')) {
      const auto nk = Split(sh, 'x');
      const long n_out = std::atol(nk[0].c_str()), k = std::atol(nk[1].c_str());
      const ggml_type t = TypeOf(tn);
      const size_t wbytes = ggml_row_size(t, k) * n_out;
      ggml_init_params ip{};
      ip.mem_size = wbytes + sizeof(float) * (k * m + n_out * m) + (256 << 20);  // + ggml's work buffer (tiled: 512 KiB per thread)
      ip.no_alloc = false;
      ggml_context* ctx = ggml_init(ip);
      ggml_tensor* w = ggml_new_tensor_2d(ctx, t, k, n_out);
      ggml_tensor* x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);
      std::vector<float> wf(static_cast<size_t>(k) * n_out);
      for (float& v : wf) v = nd(rng) * 0.02f;
      ggml_quantize_chunk(t, wf.data(), w->data, 0, n_out, k, nullptr);
      float* xf = static_cast<float*>(x->data);
      for (long i = 0; i < k * m; ++i) xf[i] = nd(rng);
      // Dump mode: x from a formula exact in f32 (the test recomputes it instead of storing it).
      if (!dump.empty())
        for (long i = 0; i < m; ++i)
          for (long j = 0; j < k; ++j) xf[i * k + j] = static_cast<float>((i * 131 + j * 71) % 255 - 127) / 37.0f;
      ggml_tensor* y = ggml_mul_mat(ctx, w, x);  // [n_out, m]
      ggml_cgraph* gf = ggml_new_graph(ctx);
      ggml_build_forward_expand(gf, y);
      ggml_graph_compute_with_ctx(ctx, gf, threads);  // warm-up
      if (!dump.empty()) {
        const std::string base = dump + "/ggml_mulmat_" + tn + "_" + sh + "_m" + std::to_string(m);
        WriteFile(base + ".w", w->data, wbytes);
        WriteFile(base + ".y", y->data, sizeof(float) * n_out * m);
        std::printf("wrote %s.{w,y}\n", base.c_str());
        ggml_free(ctx);
        continue;
      }
      int calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double el = 0;
      while (el < seconds) {
        ggml_graph_compute_with_ctx(ctx, gf, threads);
        ++calls;
        el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      const double s = el / calls;
      std::printf("ggml %s %ldx%ld m=%ld threads=%d tiled=%s: %.2f ms, %.1f GFLOP/s (%d calls)\n", tn.c_str(), n_out,
                  k, m, threads, getenv("GGML_CPU_TILED_MM") ? getenv("GGML_CPU_TILED_MM") : "default", s * 1e3,
                  2.0 * m * n_out * k / s * 1e-9, calls);
      std::fflush(stdout);
      ggml_free(ctx);
    }
  }
  return 0;
}
