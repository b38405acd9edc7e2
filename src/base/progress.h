// Progress of long work (a long prefill, a pull, a batch job) on stderr.
//
// On a terminal: one live line, redrawn at most 10×/s, "label  done/total unit
// (pct)  rate unit/s  ETA m:ss". Otherwise: a plain line every `plain_interval`
// seconds. Finish() prints the final line (and a newline on a terminal).
//
// ETA: by default the remaining work is assumed to go at the average rate so far
// (Growth::kLinear). A prompt prefill is not linear: every token attends to all earlier
// ones, so a 100K-token prompt slows down as it goes and a linear ETA says half of the
// truth. Growth::kQuadratic fits T(n) = a·n + b·n² (least squares over every Update,
// n = done/total) and predicts T(total) − T(done); with fewer than 3 updates, or a fit
// with a or b below zero, it falls back to the linear estimate.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace spool {

class ProgressLine {
 public:
  enum class Growth { kLinear, kQuadratic };

  ProgressLine(std::string label, std::string unit, int64_t total, std::FILE* out = stderr,
               double plain_interval_seconds = 10.0, Growth growth = Growth::kLinear);
  // Reports `done` of total (monotonic). Cheap to call often.
  void Update(int64_t done);
  void Finish();
  // When false (e.g. --quiet, or work too short to matter) nothing is printed.
  void set_enabled(bool e) { enabled_ = e; }
  bool enabled() const { return enabled_; }
  // Text of the current line (for tests).
  std::string Render(int64_t done, double now) const;
  // Records that `done` was reached at time `now` (Update calls it; tests call it with
  // their own clock). Feeds the kQuadratic fit.
  void Observe(int64_t done, double now);
  // Seconds left by the growth model, or < 0 when unknown (nothing done yet).
  double SecondsLeft(int64_t done, double now) const;

 private:
  std::string label_, unit_;
  int64_t total_;
  std::FILE* out_;
  bool tty_;
  bool enabled_ = true;
  double plain_interval_;
  Growth growth_;
  double start_, last_draw_ = 0;
  // Sums for the least-squares fit of elapsed = a·x + b·x², x = done/total.
  int fit_n_ = 0;
  double sx2_ = 0, sx3_ = 0, sx4_ = 0, sxt_ = 0, sx2t_ = 0;
  int64_t done_ = 0;
  bool drawn_ = false;
};

}  // namespace spool
