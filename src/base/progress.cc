#include "base/progress.h"

#include "base/sysinfo.h"
#include "base/timer.h"

namespace spool {

ProgressLine::ProgressLine(std::string label, std::string unit, int64_t total, std::FILE* out, double plain_interval)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out), tty_(IsTerminal(out)),
      plain_interval_(plain_interval), start_(NowSeconds()) {}

std::string ProgressLine::Render(int64_t done, double now) const {
  double elapsed = now - start_;
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  char buf[256];
  if (total_ > 0) {
    double pct = 100.0 * static_cast<double>(done) / static_cast<double>(total_);
    char eta[32] = "--:--";
    if (rate > 0 && done < total_) {
      long s = static_cast<long>(static_cast<double>(total_ - done) / rate + 0.5);
      std::snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    } else if (done >= total_) {
      std::snprintf(eta, sizeof eta, "0:00");
    }
    std::snprintf(buf, sizeof buf, "%s  %lld/%lld %s (%.0f%%)  %.1f %s/s  ETA %s", label_.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(), pct, rate,
                  unit_.c_str(), eta);
  } else {
    std::snprintf(buf, sizeof buf, "%s  %lld %s  %.1f %s/s", label_.c_str(), static_cast<long long>(done),
                  unit_.c_str(), rate, unit_.c_str());
  }
  return buf;
}

void ProgressLine::Update(int64_t done) {
  done_ = done;
  if (!enabled_) return;
  double now = NowSeconds();
  double interval = tty_ ? 0.1 : plain_interval_;
  if (!tty_) {
    // Plain lines: one per interval; the final line is Finish()'s (short work stays quiet).
    if (now - (drawn_ ? last_draw_ : start_) < plain_interval_ || done >= total_) return;
  } else if (now - last_draw_ < interval && done < total_) {
    return;
  }
  last_draw_ = now;
  std::string line = Render(done, now);
  if (tty_) std::fprintf(out_, "\r\033[K%s", line.c_str());
  else std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (!enabled_ || !drawn_) return;
  if (tty_) std::fprintf(out_, "\r\033[K%s\n", Render(done_, NowSeconds()).c_str());
  else std::fprintf(out_, "%s\n", Render(done_, NowSeconds()).c_str());
  std::fflush(out_);
}

}  // namespace spool
