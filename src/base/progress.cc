#include "base/progress.h"

#include "base/sysinfo.h"
#include "base/timer.h"

namespace spool {

ProgressLine::ProgressLine(std::string label, std::string unit, int64_t total, std::FILE* out, double plain_interval,
                           Growth growth)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out), tty_(IsTerminal(out)),
      plain_interval_(plain_interval), growth_(growth), start_(NowSeconds()) {}

void ProgressLine::Observe(int64_t done, double now) {
  if (total_ <= 0 || done <= 0) return;
  const double x = static_cast<double>(done) / static_cast<double>(total_);
  const double t = now - start_;
  const double x2 = x * x;
  ++fit_n_;
  sx2_ += x2;
  sx3_ += x2 * x;
  sx4_ += x2 * x2;
  sxt_ += x * t;
  sx2t_ += x2 * t;
}

double ProgressLine::SecondsLeft(int64_t done, double now) const {
  if (total_ <= 0 || done <= 0) return -1;
  if (done >= total_) return 0;
  const double elapsed = now - start_;
  const double linear = elapsed * static_cast<double>(total_ - done) / static_cast<double>(done);
  if (growth_ != Growth::kQuadratic || fit_n_ < 3) return linear;
  // Normal equations of min Σ (t − a·x − b·x²)²: [Σx² Σx³; Σx³ Σx⁴] [a b]ᵀ = [Σxt Σx²t]ᵀ.
  const double det = sx2_ * sx4_ - sx3_ * sx3_;
  if (!(det > 1e-12 * sx2_ * sx4_)) return linear;
  const double a = (sxt_ * sx4_ - sx2t_ * sx3_) / det;
  const double b = (sx2_ * sx2t_ - sx3_ * sxt_) / det;
  if (a < 0 || b < 0) return linear;
  const double x = static_cast<double>(done) / static_cast<double>(total_);
  return a * (1 - x) + b * (1 - x * x);
}

std::string ProgressLine::Render(int64_t done, double now) const {
  double elapsed = now - start_;
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  char buf[256];
  if (total_ > 0) {
    double pct = 100.0 * static_cast<double>(done) / static_cast<double>(total_);
    char eta[32] = "--:--";
    const double left = SecondsLeft(done, now);
    if (rate > 0 && done < total_ && left >= 0) {
      long s = static_cast<long>(left + 0.5);
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
  const double now = NowSeconds();
  if (done > done_) Observe(done, now);
  done_ = done;
  if (!enabled_) return;
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
