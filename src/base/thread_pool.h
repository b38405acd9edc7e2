// A fixed pool of worker threads for data-parallel loops.
//
// ParallelFor(n, fn) splits [0, n) into at most num_threads() contiguous ranges and
// calls fn(begin, end, thread_index) on each, the caller's thread taking range 0.
// It returns when all ranges are done. Not re-entrant: do not call ParallelFor from
// inside fn. One pool may be used by one caller thread at a time (guarded by a mutex).
//
// Hand-off: a decode step is hundreds of short ParallelFor calls, and waking a thread
// through a condition variable costs tens of microseconds on a VM. So workers spin
// (pause loop) for up to kSpinMicros after their last range before they sleep on the
// condition variable, and the caller spins as long for the workers to finish; an idle
// pool therefore sleeps after kSpinMicros and costs no CPU. A pool with more threads than
// the machine has CPUs never spins (a spinning thread would take a working one's CPU).
#pragma once

#include <atomic>
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

  static constexpr int kSpinMicros = 200;

  using RangeFn = std::function<void(size_t begin, size_t end, int thread_index)>;
  // `grain`: the smallest range worth handing to a thread (fewer threads used below it).
  void ParallelFor(size_t n, const RangeFn& fn, size_t grain = 1);

 private:
  void WorkerLoop(int index);

  int n_threads_;
  int spin_micros_;  // kSpinMicros, or 0 when oversubscribed
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor callers
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  // The job: written under mu_ before generation_ is bumped (release); a worker that
  // sees the new generation (acquire) sees the job.
  const RangeFn* fn_ = nullptr;
  size_t n_ = 0;
  int n_parts_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers' ranges not done yet
  std::atomic<bool> stop_{false};  // set under mu_ (so sleeping workers see it)
};

}  // namespace spool
