#include <cstdio>

#include "apps/command.h"
#include "base/status.h"

namespace {
int RunVersion(int, char**) {
  std::printf("spool 0.1.0\n");
  return 0;
}
}  // namespace

SPOOL_COMMAND("version", "print the version", RunVersion);
