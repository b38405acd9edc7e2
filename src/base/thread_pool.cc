#include "base/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace spool {
namespace {

// Spins until pred() or kSpinMicros have passed; returns pred().
template <typename Pred>
bool SpinFor(const Pred& pred, int micros) {
  if (pred()) return true;
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      _mm_pause();
    }
    if (std::chrono::steady_clock::now() >= until) return pred();
  }
}

void RangeOf(size_t n, int parts, int i, size_t* b, size_t* e) {
  size_t base = n / parts, rem = n % parts;
  *b = i * base + std::min<size_t>(i, rem);
  *e = *b + base + (static_cast<size_t>(i) < rem ? 1 : 0);
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  spin_micros_ = static_cast<unsigned>(n_threads_) <= std::max(1u, std::thread::hardware_concurrency()) ? kSpinMicros : 0;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
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
    pending_.store(parts - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();
  size_t b, e;
  RangeOf(n, parts, 0, &b, &e);
  fn(b, e, 0);
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!SpinFor(done, spin_micros_)) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, done);
  }
  std::lock_guard<std::mutex> lk(mu_);
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto has_work = [&] {
      return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
    };
    if (!SpinFor(has_work, spin_micros_)) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, has_work);
    }
    const RangeFn* fn;
    size_t n;
    int parts;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = generation_.load(std::memory_order_relaxed);
      fn = fn_;
      n = n_;
      parts = n_parts_;
    }
    if (index < parts) {
      size_t b, e;
      RangeOf(n, parts, index, &b, &e);
      (*fn)(b, e, index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);  // the caller checks `done` under mu_ before it sleeps
        cv_done_.notify_one();
      }
    }
  }
}

}  // namespace spool
