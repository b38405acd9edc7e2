// Progress of long work (a long prefill, a pull, a batch job) on stderr.
//
// On a terminal: one live line, redrawn at most 10×/s, "label  done/total unit
// (pct)  rate unit/s  ETA m:ss". Otherwise: a plain line every `plain_interval`
// seconds. Finish() prints the final line (and a newline on a terminal).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace spool {

class ProgressLine {
 public:
  ProgressLine(std::string label, std::string unit, int64_t total, std::FILE* out = stderr,
               double plain_interval_seconds = 10.0);
  // Reports `done` of total (monotonic). Cheap to call often.
  void Update(int64_t done);
  void Finish();
  // When false (e.g. --quiet, or work too short to matter) nothing is printed.
  void set_enabled(bool e) { enabled_ = e; }
  bool enabled() const { return enabled_; }
  // Text of the current line (for tests).
  std::string Render(int64_t done, double now) const;

 private:
  std::string label_, unit_;
  int64_t total_;
  std::FILE* out_;
  bool tty_;
  bool enabled_ = true;
  double plain_interval_;
  double start_, last_draw_ = 0;
  int64_t done_ = 0;
  bool drawn_ = false;
};

}  // namespace spool
