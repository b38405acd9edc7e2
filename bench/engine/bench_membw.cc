// Memory-bandwidth probe: the speed of light for decode (every weight byte is read once
// per token). Reads a buffer much larger than the caches with N threads, summing 64-byte
// lines with AVX-512 loads; prints the best of several passes in GB/s.
//   bench_membw [--mib 2048] [--threads 2] [--reps 5]
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/timer.h"

int main(int argc, char** argv) {
  size_t mib = 2048;
  int threads = 2, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  const size_t bytes = mib << 20;
  spool::AlignedBuffer buf(bytes);
  std::memset(buf.data(), 1, bytes);
  double best = 0;
  std::vector<double> sums(threads);
  for (int r = 0; r < reps; ++r) {
    spool::Stopwatch sw;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        const size_t per = bytes / threads;
        const float* p = reinterpret_cast<const float*>(buf.data() + t * per);
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        for (size_t i = 0; i < per / 4; i += 32) {
          acc0 = _mm512_add_ps(acc0, _mm512_load_ps(p + i));
          acc1 = _mm512_add_ps(acc1, _mm512_load_ps(p + i + 16));
        }
        sums[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
      });
    for (auto& t : ts) t.join();
    best = std::max(best, static_cast<double>(bytes) / sw.Seconds() / 1e9);
  }
  std::printf("{\"read_gb_per_s\": %.2f, \"threads\": %d, \"mib\": %zu, \"check\": %g}\n", best, threads, mib, sums[0]);
  return 0;
}
