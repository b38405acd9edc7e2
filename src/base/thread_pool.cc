#include "base/thread_pool.h"

#include <algorithm>

namespace spool {

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

static void RangeOf(size_t n, int parts, int i, size_t* b, size_t* e) {
  size_t base = n / parts, rem = n % parts;
  *b = i * base + std::min<size_t>(i, rem);
  *e = *b + base + (static_cast<size_t>(i) < rem ? 1 : 0);
}

void ThreadPool::ParallelFor(size_t n, const RangeFn& fn, size_t grain) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  int parts = static_cast<int>(std::min<size_t>(n_threads_, (n + grain - 1) / grain));
  if (parts <= 1) {
    fn(0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> call_lk(call_mu_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = &fn;
    n_ = n;
    n_parts_ = parts;
    pending_ = parts - 1;
    ++generation_;
  }
  cv_work_.notify_all();
  size_t b, e;
  RangeOf(n, parts, 0, &b, &e);
  fn(b, e, 0);
  std::unique_lock<std::mutex> lk(mu_);
  cv_done_.wait(lk, [&] { return pending_ == 0; });
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const RangeFn* fn;
    size_t n;
    int parts;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      n = n_;
      parts = n_parts_;
    }
    if (index < parts) {
      size_t b, e;
      RangeOf(n, parts, index, &b, &e);
      (*fn)(b, e, index);
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }
}

}  // namespace spool
