// spool: entry point. Dispatches `spool <command> ...` to the registered commands.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "apps/command.h"

namespace spool::apps {

std::vector<Command>& CommandRegistry() {
  static std::vector<Command> registry;
  return registry;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "spool: %s\n", message.c_str());
  return 1;
}

}  // namespace spool::apps

static void PrintUsage() {
  auto cmds = spool::apps::CommandRegistry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::fprintf(stderr, "usage: spool <command> [args]\n\ncommands:\n");
  for (auto& c : cmds) std::fprintf(stderr, "  %-14s %s\n", c.name.c_str(), c.summary.c_str());
  std::fprintf(stderr, "\n'spool <command> --help' describes each command.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  for (auto& c : spool::apps::CommandRegistry())
    if (c.name == argv[1]) return c.fn(argc - 2, argv + 2);
  std::fprintf(stderr, "spool: unknown command '%s'\n", argv[1]);
  PrintUsage();
  return 2;
}
