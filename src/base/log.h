// Minimal leveled logging to stderr. Level set once at startup (CLI -v / SPOOL_LOG).
#pragma once

#include <cstdarg>

namespace spool {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// printf-style; appends a newline.
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace spool

#define SPOOL_LOG_ERROR(...) ::spool::Log(::spool::LogLevel::kError, __VA_ARGS__)
#define SPOOL_LOG_WARN(...) ::spool::Log(::spool::LogLevel::kWarn, __VA_ARGS__)
#define SPOOL_LOG_INFO(...) ::spool::Log(::spool::LogLevel::kInfo, __VA_ARGS__)
#define SPOOL_LOG_DEBUG(...) ::spool::Log(::spool::LogLevel::kDebug, __VA_ARGS__)
