// Subcommand registry. Each subcommand lives in its own cmd_<name>.cc, compiled
// into the spool executable (not a static library, so static registration is kept),
// and registers itself with SPOOL_COMMAND.
//
// A command returns the process exit code: 0 ok, 1 runtime failure (message
// already printed), 2 usage error.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace spool::apps {

using CommandFn = std::function<int(int argc, char** argv)>;  // argv excludes "spool <cmd>"

struct Command {
  std::string name;
  std::string summary;
  CommandFn fn;
};

std::vector<Command>& CommandRegistry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string summary, CommandFn fn) {
    CommandRegistry().push_back({std::move(name), std::move(summary), std::move(fn)});
  }
};

// Prints "spool: <message>" to stderr; returns 1 (for `return Fail(st);`).
int Fail(const std::string& message);

}  // namespace spool::apps

#define SPOOL_COMMAND(name, summary, fn) \
  static ::spool::apps::CommandRegistrar SPOOL_CONCAT(_spool_cmd_, __LINE__)(name, summary, fn)
#ifndef SPOOL_CONCAT
#define SPOOL_CONCAT_INNER(a, b) a##b
#define SPOOL_CONCAT(a, b) SPOOL_CONCAT_INNER(a, b)
#endif
