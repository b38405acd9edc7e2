// Always-on invariant checks. A failed check is a bug in spool, never bad input:
// bad input must come back as a Status (base/status.h).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace spool::detail {
[[noreturn]] inline void CheckFailed(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "spool: internal check failed at %s:%d: %s%s%s\n", file, line, cond,
               msg ? " — " : "", msg ? msg : "");
  std::fflush(stderr);
  std::abort();
}
}  // namespace spool::detail

#define SPOOL_CHECK(cond) \
  ((cond) ? (void)0 : ::spool::detail::CheckFailed(__FILE__, __LINE__, #cond, nullptr))
#define SPOOL_CHECK_MSG(cond, msg) \
  ((cond) ? (void)0 : ::spool::detail::CheckFailed(__FILE__, __LINE__, #cond, (msg)))
