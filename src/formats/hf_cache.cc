#include "formats/hf_cache.h"

#include <cstdlib>
#include <filesystem>

#include "base/strings.h"

namespace spool::formats {

namespace fs = std::filesystem;

namespace {

bool IsSafeComponent(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

bool IsDir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool IsRegularFile(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

Result<HfId> ParseHfId(const std::string& text) {
  HfId id;
  std::string repo = text;
  size_t at = text.find('@');
  if (at != std::string::npos) {
    repo = text.substr(0, at);
    id.revision = text.substr(at + 1);
    if (id.revision.empty()) return InvalidArgument("'" + text + "': empty revision after '@'");
  }
  std::vector<std::string> parts = Split(repo, '/');
  if (parts.size() != 2 || !IsSafeComponent(parts[0]) || !IsSafeComponent(parts[1]))
    return InvalidArgument("'" + text + "' is not a Hugging Face id of the form org/name[@revision]");
  id.repo = repo;
  return id;
}

std::vector<std::string> HfCacheDirs() {
  std::vector<std::string> dirs;
  if (std::string v = Env("HF_HUB_CACHE"); !v.empty()) dirs.push_back(v);
  if (std::string v = Env("HF_HOME"); !v.empty()) dirs.push_back(v + "/hub");
  if (std::string v = Env("XDG_CACHE_HOME"); !v.empty()) dirs.push_back(v + "/huggingface/hub");
  if (std::string v = Env("HOME"); !v.empty()) dirs.push_back(v + "/.cache/huggingface/hub");
  return dirs;
}

Result<std::string> ResolveHfCacheId(const std::string& text) {
  SPOOL_ASSIGN_OR_RETURN(HfId id, ParseHfId(text));
  std::vector<std::string> parts = Split(id.repo, '/');
  const std::string folder = "models--" + parts[0] + "--" + parts[1];
  const std::string rev = id.revision.empty() ? "main" : id.revision;
  std::string looked;
  for (const std::string& cache : HfCacheDirs()) {
    std::string repo_dir = cache + "/" + folder;
    looked += "\n  " + repo_dir;
    if (!IsDir(repo_dir)) {
      looked += " (absent)";
      continue;
    }
    // refs/<rev> holds a commit hash; refs may contain '/' (refs/pr/1), never "..".
    std::string ref_path = repo_dir + "/refs/" + rev;
    bool ref_ok = rev.find("..") == std::string::npos;
    if (ref_ok && IsRegularFile(ref_path)) {
      auto commit = ReadFileToString(ref_path);
      if (!commit.ok()) return commit.status();
      std::string hash = Trim(*commit);
      if (!IsSafeComponent(hash))
        return InvalidFile(ref_path + ": does not hold a commit hash ('" + hash + "')");
      std::string snap = repo_dir + "/snapshots/" + hash;
      if (IsDir(snap)) return snap;
      looked += " (refs/" + rev + " -> " + hash + ", but " + snap + " is missing)";
      continue;
    }
    if (IsSafeComponent(rev) && IsDir(repo_dir + "/snapshots/" + rev)) return repo_dir + "/snapshots/" + rev;
    if (id.revision.empty()) {
      std::vector<std::string> snaps;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(repo_dir + "/snapshots", ec))
        if (e.is_directory()) snaps.push_back(e.path().string());
      if (snaps.size() == 1) return snaps[0];
      looked += " (no refs/main and " + std::to_string(snaps.size()) + " snapshots)";
    } else {
      looked += " (no refs/" + rev + " and no snapshot " + rev + ")";
    }
  }
  if (looked.empty()) looked = "\n  (no cache folder: HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME are unset)";
  return NotFound("model '" + text + "' not found in the Hugging Face cache; looked in:" + looked);
}

}  // namespace spool::formats
