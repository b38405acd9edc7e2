// Memory-bandwidth probe that reads the way a decode GEMV does (issue 18): the decode
// speed of light. A buffer much larger than the caches is a weight matrix of rows of
// `row_bytes`; each of T threads owns a contiguous block of rows and walks it R rows at
// a time, 64 bytes of each of the R rows per step (R streams in flight per thread), with
// a software prefetch `dist` bytes ahead on every row (0: none). Rows are summed with
// AVX-512 adds (no widening, no multiplies: the loop is never compute-bound).
//
// bench_membw (one stream per thread, no prefetch) under-reports what a GEMV can get: on
// the 2-vCPU Zen 4 VM llama.cpp's bf16 decode moved more weight bytes per second than it
// measured. This probe sweeps R × dist for each row length and prints every cell plus
// the best, in JSON lines; the best is "the limit" used in docs/benchmarks.md.
//
//   bench_gemv_bw [--mib 1024] [--threads 2] [--reps 5] [--row-bytes 4096,16384]
//                 [--rows 1,2,4,8] [--dist 0,256,512,1024,2048] [--huge 0,1]
//
// --huge 1 backs the buffer with transparent huge pages (madvise(MADV_HUGEPAGE) on an
// anonymous mapping; the machine's THP mode is "madvise"): 2 MiB pages instead of 4 KiB
// ones, so the hardware prefetchers are not stopped at every 4 KiB boundary and the TLB
// covers the stream. llama.cpp's mmap of a GGUF in the page cache gets large folios
// (FileHugePages in /proc/meminfo), which is what spool's weights must match.
//
// Each cell is the median of `reps` passes over the whole buffer, the passes of all
// cells interleaved round by round (the threads are started once per pass, which costs
// microseconds against a pass of tens of ms).
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/timer.h"

namespace {

std::vector<size_t> ParseList(const char* s) {
  std::vector<size_t> out;
  for (const char* p = s; *p;) {
    out.push_back(std::strtoull(p, nullptr, 10));
    p = std::strchr(p, ',');
    if (!p) break;
    ++p;
  }
  return out;
}

// Sums rows [r0, r1) of `row_bytes` each, R rows at a time, prefetching `dist` ahead.
template <int R>
float SumRows(const uint8_t* base, size_t row_bytes, size_t r0, size_t r1, size_t dist) {
  __m512 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  size_t r = r0;
  for (; r + R <= r1; r += R) {
    const uint8_t* row = base + r * row_bytes;
    for (size_t j = 0; j < row_bytes; j += 64) {
      if (dist) {
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(row + i * row_bytes + j + dist), _MM_HINT_T0);
      }
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
        acc[i] = _mm512_add_ps(acc[i], _mm512_load_ps(reinterpret_cast<const float*>(row + i * row_bytes + j)));
    }
  }
  for (; r < r1; ++r)
    for (size_t j = 0; j < row_bytes; j += 64)
      acc[0] = _mm512_add_ps(acc[0], _mm512_load_ps(reinterpret_cast<const float*>(base + r * row_bytes + j)));
  __m512 s = acc[0];
  for (int i = 1; i < R; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

float SumRowsR(int R, const uint8_t* base, size_t row_bytes, size_t r0, size_t r1, size_t dist) {
  switch (R) {
    case 1: return SumRows<1>(base, row_bytes, r0, r1, dist);
    case 2: return SumRows<2>(base, row_bytes, r0, r1, dist);
    case 4: return SumRows<4>(base, row_bytes, r0, r1, dist);
    case 8: return SumRows<8>(base, row_bytes, r0, r1, dist);
    case 16: return SumRows<16>(base, row_bytes, r0, r1, dist);
  }
  std::fprintf(stderr, "--rows: 1, 2, 4, 8 or 16\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  int threads = 2, reps = 5;
  std::vector<size_t> row_bytes_list = {4096, 16384}, rows_list = {1, 2, 4, 8}, dist_list = {0, 256, 512, 1024, 2048},
                      huge_list = {0, 1};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--row-bytes")) row_bytes_list = ParseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rows")) rows_list = ParseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dist")) dist_list = ParseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--huge")) huge_list = ParseList(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1 || mib < 64) {
    std::fprintf(stderr, "need --threads >= 1, --reps >= 1, --mib >= 64\n");
    return 2;
  }
  const size_t bytes = mib << 20;
  for (size_t row_bytes : row_bytes_list)
    if (row_bytes == 0 || row_bytes % 64 != 0) {
      std::fprintf(stderr, "--row-bytes must be a positive multiple of 64\n");
      return 2;
    }
  // One mapping per --huge value, 2 MiB-aligned inside it (so huge pages can back all of
  // it), slack past the end for the prefetches of the last rows.
  const size_t map_bytes = bytes + (4u << 20);
  std::vector<void*> maps;
  std::vector<uint8_t*> datas;
  for (size_t huge : huge_list) {
    void* map = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
      std::fprintf(stderr, "mmap of %zu bytes failed\n", map_bytes);
      return 1;
    }
    madvise(map, map_bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::memset(map, 1, map_bytes);
    maps.push_back(map);
    datas.push_back(reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(map) + (2u << 20) - 1) & ~uintptr_t{(2u << 20) - 1}));
  }
  struct Cell {
    size_t hi, huge, row_bytes, R, dist;
    std::vector<double> gbps;
  };
  std::vector<Cell> cells;
  for (size_t hi = 0; hi < huge_list.size(); ++hi)
    for (size_t row_bytes : row_bytes_list)
      for (size_t R : rows_list)
        for (size_t dist : dist_list) cells.push_back({hi, huge_list[hi], row_bytes, R, dist, {}});
  // Repetitions outermost: every cell is measured once per round, so a burst of other
  // work on a shared machine lands on all cells alike; medians per cell.
  float check = 0;
  std::vector<float> sums(threads);
  for (int r = 0; r < reps; ++r)
    for (Cell& c : cells) {
      const size_t n_rows = bytes / c.row_bytes;
      spool::Stopwatch sw;
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
          const size_t r0 = n_rows * t / threads, r1 = n_rows * (t + 1) / threads;
          sums[t] = SumRowsR(static_cast<int>(c.R), datas[c.hi], c.row_bytes, r0, r1, c.dist);
        });
      for (auto& th : ts) th.join();
      c.gbps.push_back(static_cast<double>(n_rows * c.row_bytes) / sw.Seconds() / 1e9);
      check += sums[0];
    }
  double best = 0;
  std::string best_cell;
  for (Cell& c : cells) {
    std::sort(c.gbps.begin(), c.gbps.end());
    const double med = c.gbps[c.gbps.size() / 2];
    std::printf("{\"huge_pages\": %zu, \"row_bytes\": %zu, \"rows_in_flight\": %zu, \"prefetch\": %zu, "
                "\"read_gb_per_s\": %.2f, \"max\": %.2f}\n",
                c.huge, c.row_bytes, c.R, c.dist, med, c.gbps.back());
    if (med > best) {
      best = med;
      best_cell = "huge " + std::to_string(c.huge) + ", row_bytes " + std::to_string(c.row_bytes) + ", rows " +
                  std::to_string(c.R) + ", prefetch " + std::to_string(c.dist);
    }
  }
  for (void* map : maps) munmap(map, map_bytes);
  std::printf("{\"best_read_gb_per_s\": %.2f, \"best\": \"%s\", \"threads\": %d, \"mib\": %zu, \"check\": %g}\n", best,
              best_cell.c_str(), threads, mib, check);
  return 0;
}
