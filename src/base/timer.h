// Wall-clock timing helpers (steady clock).
#pragma once

#include <chrono>

namespace spool {

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class Stopwatch {
 public:
  Stopwatch() : start_(NowSeconds()) {}
  double Seconds() const { return NowSeconds() - start_; }
  void Reset() { start_ = NowSeconds(); }

 private:
  double start_;
};

}  // namespace spool
