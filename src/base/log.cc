#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace spool {
namespace {
std::atomic<int> g_level{[] {
  const char* env = std::getenv("SPOOL_LOG");
  if (!env) return static_cast<int>(LogLevel::kWarn);
  if (!std::strcmp(env, "debug")) return static_cast<int>(LogLevel::kDebug);
  if (!std::strcmp(env, "info")) return static_cast<int>(LogLevel::kInfo);
  if (!std::strcmp(env, "error")) return static_cast<int>(LogLevel::kError);
  return static_cast<int>(LogLevel::kWarn);
}()};
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

void Log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > g_level.load()) return;
  static const char* kNames[] = {"error", "warn", "info", "debug"};
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "spool %s: %s\n", kNames[static_cast<int>(level)], buf);
}

}  // namespace spool
