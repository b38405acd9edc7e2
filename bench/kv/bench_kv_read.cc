// bench_kv_read: what one decode step's attention costs when the KV cache lives on disk.
//
//   bench_kv_read --dir /path/on/the/ssd [--tokens 32768] [--layers 16] [--kv-heads 8]
//                 [--heads 32] [--head-dim 64] [--window 2048] [--threads 0] [--reps 3]
//                 [--prefetch-mib 8] [--prefill-q 0]
//
// 1. Fills a DiskKv (bf16, 256-token pages) with `tokens` random rows per layer: all but
//    the hot window go to disk (reports the spill write rate).
// 2. One decode step's attention: for every layer, fold every page into one query's
//    online-softmax state (AttentionFoldPage), pages streamed from disk with read-ahead.
//    Reports the KV bytes read per second.
// 3. The disk's own rate: O_DIRECT sequential reads of the same number of bytes
//    (storage::Reader, 4 MiB requests, queue depth 32) from a fresh file.
// 4. The same attention over an InRamKv (compute only).
// 5. With --prefill-q N: one prefill chunk's attention, N queries at the last N
//    positions (causal within their pages) over every layer, KV in RAM (compute only).
// The ratio 2/3 is the "per-token KV read bandwidth vs the disk's" of issue 5.
// Note: the data must not be in the page cache for 3 (the files are written with
// O_DIRECT and read with O_DIRECT; on filesystems without O_DIRECT the numbers are RAM's).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kv/disk_kv.h"
#include "storage/reader.h"
#include "tensor/attention.h"

using namespace spool;

namespace {
double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int64_t Arg(int argc, char** argv, const char* name, int64_t def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoll(argv[i + 1]);
  return def;
}
std::string ArgS(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}
void Die(const Status& st) {
  if (st.ok()) return;
  std::fprintf(stderr, "bench_kv_read: %s\n", st.message().c_str());
  std::exit(1);
}

// One decode step's attention over every layer; returns seconds.
// fold == false: only stream the pages (touching one byte each): the I/O path alone.
double AttendAllLayers(kv::SequenceKv& kv, ThreadPool& pool, const AttentionShape& shape, const std::vector<float>& q,
                       int64_t n_layer, int64_t pos, bool fold = true) {
  volatile uint8_t sink = 0;
  AttentionState st;
  std::vector<float> out(shape.n_head * shape.head_dim);
  const double t0 = Now();
  for (int64_t l = 0; l < n_layer; ++l) {
    st.Reset(1, shape);
    Die(kv.ForEachPage(l, pos + 1, [&](const KvPageView& page) {
      if (fold) AttentionFoldPage(pool, shape, q.data(), &pos, 1, page, st);
      else sink = sink + *static_cast<const uint8_t*>(page.k);
    }));
    AttentionFinalize(shape, st, out.data());
  }
  return Now() - t0;
}
}  // namespace

int main(int argc, char** argv) {
  const std::string dir = ArgS(argc, argv, "--dir", "/tmp/spool-bench-kv");
  const int64_t tokens = Arg(argc, argv, "--tokens", 32768);
  const int64_t n_layer = Arg(argc, argv, "--layers", 16);
  const int64_t n_kv = Arg(argc, argv, "--kv-heads", 8);
  const int64_t n_head = Arg(argc, argv, "--heads", 32);
  const int64_t head_dim = Arg(argc, argv, "--head-dim", 64);
  const int64_t window = Arg(argc, argv, "--window", 2048);
  const int reps = static_cast<int>(Arg(argc, argv, "--reps", 3));
  ThreadPool pool(static_cast<int>(Arg(argc, argv, "--threads", 0)));
  Die(kv::MakeDirs(dir));

  kv::KvLayout layout{n_layer, n_kv, head_dim, 256, DType::kBF16};
  kv::DiskKvOptions o;
  o.window_tokens = window;
  o.max_tokens = tokens + 1;
  o.dir = dir;
  o.prefetch_bytes = static_cast<uint64_t>(Arg(argc, argv, "--prefetch-mib", 8)) << 20;
  kv::DiskKv disk(layout, o);
  kv::InRamKv ram(layout);
  const int64_t row = layout.row_elems(), chunk = 512;
  std::vector<float> k(chunk * row), v(chunk * row);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  double t0 = Now();
  for (int64_t pos = 0; pos < tokens + 1; pos += chunk) {
    const int64_t n = std::min(chunk, tokens + 1 - pos);
    for (int64_t l = 0; l < n_layer; ++l) {
      Die(disk.Write(l, pos, n, k.data(), v.data()));
      Die(ram.Write(l, pos, n, k.data(), v.data()));
    }
    Die(disk.Commit(n));
    Die(ram.Commit(n));
  }
  const double fill_s = Now() - t0;
  const uint64_t kv_bytes = static_cast<uint64_t>(n_layer) * (tokens + 1) * layout.row_bytes() * 2;
  std::printf("KV: %lld tokens x %lld layers x %lld kv heads x %lld dims, bf16: %.2f GiB (%.1f KiB/token); window %lld tokens\n",
              static_cast<long long>(tokens), static_cast<long long>(n_layer), static_cast<long long>(n_kv),
              static_cast<long long>(head_dim), kv_bytes / 1073741824.0, kv_bytes / 1024.0 / (tokens + 1),
              static_cast<long long>(window));
  std::printf("spill: %.2f GB written in %.2f s of fill (%.2f GB/s incl. bf16 conversion)\n",
              disk.stats().bytes_written / 1e9, fill_s, disk.stats().bytes_written / 1e9 / fill_s);

  const AttentionShape shape{n_head, n_kv, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim))};
  std::vector<float> q(n_head * head_dim);
  for (auto& x : q) x = nd(rng);
  double best_disk = 1e30, best_ram = 1e30, best_io = 1e30;
  uint64_t read_per_step = 0;
  for (int r = 0; r < reps; ++r) {
    const uint64_t b0 = disk.stats().bytes_read;
    best_disk = std::min(best_disk, AttendAllLayers(disk, pool, shape, q, n_layer, tokens));
    read_per_step = disk.stats().bytes_read - b0;
    best_ram = std::min(best_ram, AttendAllLayers(ram, pool, shape, q, n_layer, tokens));
    best_io = std::min(best_io, AttendAllLayers(disk, pool, shape, q, n_layer, tokens, /*fold=*/false));
  }

  // The disk's own sequential O_DIRECT read rate over the same number of bytes.
  const std::string raw_path = dir + "/raw-read-test.bin";
  {
    int fd = ::open(raw_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    if (fd < 0) fd = ::open(raw_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    AlignedBuffer buf(8 << 20);
    std::memset(buf.data(), 0x5a, buf.size());
    for (uint64_t done = 0; done < read_per_step; done += buf.size())
      if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) Die(IoError("raw write failed"));
    ::fsync(fd);
    ::close(fd);
  }
  double best_raw = 1e30;
  {
    auto reader = storage::Reader::Open({raw_path}, {});
    Die(reader.status());
    const uint64_t size = (*reader)->file(0).size(), req = 4 << 20;
    std::vector<AlignedBuffer> bufs(8);
    for (auto& b : bufs) b.Reset(req);
    for (int r = 0; r < reps; ++r) {
      const double s0 = Now();
      std::vector<storage::ReadRequest> batch;
      for (uint64_t off = 0, i = 0; off < size; off += req, ++i) {
        batch.push_back({0, off, std::min(req, size - off), bufs[i % bufs.size()].data()});
        if (batch.size() == bufs.size() || off + req >= size) {
          Die((*reader)->ReadAll(batch));
          batch.clear();
        }
      }
      best_raw = std::min(best_raw, Now() - s0);
    }
  }
  ::unlink(raw_path.c_str());
  const double disk_gbs = read_per_step / 1e9 / best_disk, raw_gbs = read_per_step / 1e9 / best_raw;
  std::printf("decode attention, all layers, context %lld: in RAM %.1f ms; disk KV %.1f ms reading %.2f GB (%.2f GB/s)\n",
              static_cast<long long>(tokens), best_ram * 1e3, best_disk * 1e3, read_per_step / 1e9, disk_gbs);
  std::printf("disk KV pages streamed without the fold (I/O path alone): %.1f ms (%.2f GB/s)\n", best_io * 1e3,
              read_per_step / 1e9 / best_io);
  std::printf("disk O_DIRECT sequential read of the same bytes: %.2f GB/s -> KV read bandwidth / disk = %.2f\n", raw_gbs,
              disk_gbs / raw_gbs);
  std::printf("I/O path alone / disk = %.2f\n", read_per_step / 1e9 / best_io / raw_gbs);
  std::printf("RAM held by DiskKv page buffers: at most %.1f MiB (independent of the context)\n",
              disk.max_ram_bytes() / 1048576.0);

  const int64_t n_pq = std::min(Arg(argc, argv, "--prefill-q", 0), tokens + 1);
  if (n_pq > 0) {
    std::vector<float> qp(n_pq * n_head * head_dim), outp(qp.size());
    for (auto& x : qp) x = nd(rng);
    std::vector<int64_t> pos(n_pq);
    for (int64_t i = 0; i < n_pq; ++i) pos[i] = tokens + 1 - n_pq + i;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      AttentionState st;
      const double s0 = Now();
      for (int64_t l = 0; l < n_layer; ++l) {
        st.Reset(n_pq, shape);
        Die(ram.ForEachPage(l, tokens + 1, [&](const KvPageView& page) {
          AttentionFoldPage(pool, shape, qp.data(), pos.data(), n_pq, page, st);
        }));
        AttentionFinalize(shape, st, outp.data());
      }
      best = std::min(best, Now() - s0);
    }
    double keys = 0;  // (query, key) pairs that take part
    for (int64_t p : pos) keys += static_cast<double>(p + 1);
    const double flop = 4.0 * keys * static_cast<double>(n_head * head_dim * n_layer);
    std::printf("prefill chunk attention, %lld queries at the end of %lld tokens, all layers, KV in RAM: %.1f ms "
                "(%.1f GFLOP/s counting 4 flop per (query, head, key, dim))\n",
                static_cast<long long>(n_pq), static_cast<long long>(tokens + 1), best * 1e3, flop / best / 1e9);
  }
  return 0;
}
