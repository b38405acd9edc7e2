// A fixed pool of worker threads for data-parallel loops.
//
// ParallelFor(n, fn) splits [0, n) into at most num_threads() contiguous ranges and
// calls fn(begin, end, thread_index) on each, the caller's thread taking range 0.
// It returns when all ranges are done. Not re-entrant: do not call ParallelFor from
// inside fn. One pool may be used by one caller thread at a time (guarded by a mutex).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace spool {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return n_threads_; }

  using RangeFn = std::function<void(size_t begin, size_t end, int thread_index)>;
  // `grain`: the smallest range worth handing to a thread (fewer threads used below it).
  void ParallelFor(size_t n, const RangeFn& fn, size_t grain = 1);

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor callers
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  const RangeFn* fn_ = nullptr;
  size_t n_ = 0;
  int n_parts_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace spool
