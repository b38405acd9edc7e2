#include "apps/args.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "base/strings.h"

namespace spool::apps {

ArgParser::Opt& ArgParser::Add(const std::string& names, Kind kind, const std::string& help,
                               std::string def_text, void* target) {
  Opt o;
  o.names = Split(names, ',');
  o.kind = kind;
  o.help = help;
  o.def_text = std::move(def_text);
  o.target = target;
  opts_.push_back(std::move(o));
  return opts_.back();
}

int64_t& ArgParser::Int(const std::string& names, int64_t def, const std::string& help) {
  ints_.push_back(def);
  Add(names, Kind::kInt, help, std::to_string(def), &ints_.back());
  return ints_.back();
}
double& ArgParser::Float(const std::string& names, double def, const std::string& help) {
  floats_.push_back(def);
  std::ostringstream ss;
  ss << def;
  Add(names, Kind::kFloat, help, ss.str(), &floats_.back());
  return floats_.back();
}
std::string& ArgParser::String(const std::string& names, std::string def, const std::string& help) {
  strings_.push_back(def);
  Add(names, Kind::kString, help, def, &strings_.back());
  return strings_.back();
}
bool& ArgParser::Flag(const std::string& names, const std::string& help) {
  flags_.push_back(false);
  Add(names, Kind::kFlag, help, "", &flags_.back());
  return flags_.back();
}
std::vector<std::string>& ArgParser::List(const std::string& names, const std::string& help) {
  lists_.emplace_back();
  Add(names, Kind::kList, help, "", &lists_.back());
  return lists_.back();
}

ArgParser::Opt* ArgParser::Find(const std::string& name) {
  for (auto& o : opts_)
    for (auto& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

bool ArgParser::Given(const std::string& name) const {
  for (auto& o : opts_)
    for (auto& n : o.names)
      if (n == name) return o.given;
  return false;
}

Status ArgParser::Parse(int argc, char** argv) {
  bool only_positional = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-' || (a.size() > 1 && std::isdigit(static_cast<unsigned char>(a[1])))) {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      help_ = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    Opt* o = Find(a);
    if (!o) return InvalidArgument(command_ + ": unknown option '" + a + "' (see --help)");
    o->given = true;
    if (o->kind == Kind::kFlag) {
      if (has_value) return InvalidArgument(command_ + ": option '" + a + "' takes no value");
      *static_cast<bool*>(o->target) = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) return InvalidArgument(command_ + ": option '" + a + "' needs a value");
      value = argv[++i];
    }
    switch (o->kind) {
      case Kind::kInt: {
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0' || errno != 0)
          return InvalidArgument(command_ + ": option '" + a + "' expects an integer, got '" + value + "'");
        *static_cast<int64_t*>(o->target) = v;
        break;
      }
      case Kind::kFloat: {
        char* end = nullptr;
        errno = 0;
        double v = std::strtod(value.c_str(), &end);
        if (value.empty() || *end != '\0' || errno != 0)
          return InvalidArgument(command_ + ": option '" + a + "' expects a number, got '" + value + "'");
        *static_cast<double*>(o->target) = v;
        break;
      }
      case Kind::kString:
        *static_cast<std::string*>(o->target) = value;
        break;
      case Kind::kList:
        static_cast<std::vector<std::string>*>(o->target)->push_back(value);
        break;
      case Kind::kFlag:
        break;
    }
  }
  return Status::Ok();
}

std::string ArgParser::Usage() const {
  std::ostringstream ss;
  ss << "usage: " << command_ << " " << positional_help_ << " [options]\n\noptions:\n";
  for (auto& o : opts_) {
    std::string names;
    for (size_t i = 0; i < o.names.size(); ++i) names += (i ? ", " : "") + o.names[i];
    if (o.kind != Kind::kFlag) names += " V";
    ss << "  " << names;
    if (names.size() < 26) ss << std::string(26 - names.size(), ' ');
    else ss << "\n" << std::string(28, ' ');
    ss << o.help;
    if (!o.def_text.empty()) ss << " (default " << o.def_text << ")";
    ss << "\n";
  }
  return ss.str();
}

}  // namespace spool::apps
