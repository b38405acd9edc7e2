// Counters behind GET /metrics (Prometheus text exposition format 0.0.4).
// Thread-safe: handlers count requests concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/scheduler.h"

namespace spool::server {

class Metrics {
 public:
  // One finished HTTP request. Paths outside the API are counted as "other" so a
  // scanner cannot grow the label set without bound.
  void CountRequest(const std::string& path, int status);
  // Time to first token and decode rate of a finished generation.
  void AddRequestTimings(const runtime::Completion& c);
  std::string Render(const runtime::SchedulerStats& s, bool ready, double uptime_seconds) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  double ttft_seconds_sum_ = 0;
  int64_t ttft_count_ = 0;
};

}  // namespace spool::server
