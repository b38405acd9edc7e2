// A small command-line parser shared by every subcommand.
//
// Usage:
//   ArgParser p("spool run", "MODEL [PROMPT]");
//   auto& n = p.Int("-n,--max-tokens", 128, "tokens to generate");
//   if (auto st = p.Parse(argc, argv); !st.ok()) ...;   // argv excludes the subcommand
//   p.positional() holds the rest.
// Flags accept "--flag value" and "--flag=value"; booleans take no value.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace spool::apps {

class ArgParser {
 public:
  ArgParser(std::string command, std::string positional_help)
      : command_(std::move(command)), positional_help_(std::move(positional_help)) {}

  // `names`: comma-separated aliases, e.g. "-n,--max-tokens".
  int64_t& Int(const std::string& names, int64_t def, const std::string& help);
  double& Float(const std::string& names, double def, const std::string& help);
  std::string& String(const std::string& names, std::string def, const std::string& help);
  bool& Flag(const std::string& names, const std::string& help);
  // Repeatable string option (each occurrence appended).
  std::vector<std::string>& List(const std::string& names, const std::string& help);
  // True if the option appeared on the command line.
  bool Given(const std::string& name) const;

  Status Parse(int argc, char** argv);
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Usage() const;
  bool help_requested() const { return help_; }

 private:
  enum class Kind { kInt, kFloat, kString, kFlag, kList };
  struct Opt {
    std::vector<std::string> names;
    Kind kind;
    std::string help;
    std::string def_text;
    void* target;
    bool given = false;
  };
  Opt* Find(const std::string& name);
  Opt& Add(const std::string& names, Kind kind, const std::string& help, std::string def_text, void* target);

  std::string command_, positional_help_;
  std::deque<Opt> opts_;
  std::deque<int64_t> ints_;
  std::deque<double> floats_;
  std::deque<std::string> strings_;
  std::deque<bool> flags_;
  std::deque<std::vector<std::string>> lists_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace spool::apps
