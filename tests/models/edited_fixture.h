// Test helper: a copy of a fixture model folder (tests/fixtures/models/<fixture>) in the
// temp directory with its config.json rewritten by `edit`, for malformed-config tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace spool::testing {

// Returns the copy's path: <tmp>/spool_<tag>_<pid> (replaced if it exists).
inline std::string EditedFixture(const std::string& fixture, const std::string& tag,
                                 const std::function<void(nlohmann::ordered_json&)>& edit) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(SPOOL_TEST_FIXTURES) / "models" / fixture;
  const fs::path dst = fs::temp_directory_path() / ("spool_" + tag + "_" + std::to_string(getpid()));
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (auto& e : fs::directory_iterator(src)) fs::copy(e.path(), dst / e.path().filename());
  std::ifstream f(dst / "config.json");
  auto j = nlohmann::ordered_json::parse(f);
  edit(j);
  std::ofstream(dst / "config.json") << j.dump();
  return dst.string();
}

}  // namespace spool::testing
