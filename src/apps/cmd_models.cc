// Local model management: spool list, spool show-path, spool rm, spool ps.
//
// Models live in the Hugging Face hub cache (models--org--name/snapshots/<commit>/,
// shared with other tools) and in $SPOOL_HOME/models/ (plain .gguf files and HF
// folders). `rm` deletes only from those two places.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/model_names.h"
#include "base/strings.h"
#include "formats/hf_cache.h"
#include "server/client.h"

namespace spool::apps {
namespace {

namespace fs = std::filesystem;

struct LocalModel {
  std::string name;       // what to pass to run/chat/serve
  std::string id;         // short id: snapshot commit, or a hash of file name + size
  uint64_t size = 0;      // bytes on disk (symlinks followed)
  int64_t modified = 0;   // unix seconds
  std::string path;       // folder or file
  std::string repo_dir;   // HF cache: models--org--name folder ("" for spool home)
  std::vector<std::string> files;  // what `rm` of a GGUF quant deletes (link + blob)
};

uint64_t FileSize(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);  // follows symlinks
  return ec ? 0 : static_cast<uint64_t>(n);
}

int64_t MTime(const fs::path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
}

std::string ShortHash(const std::string& s) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(std::hash<std::string>{}(s) & 0xffffffffffffull));
  return buf;
}

// Quantisation label at the end of a GGUF file stem ("Llama-3.2-1B-Instruct-Q4_K_M" → "Q4_K_M").
std::string QuantLabel(const std::string& stem) {
  size_t cut = stem.find_last_of("-.");
  std::string label = cut == std::string::npos ? stem : stem.substr(cut + 1);
  return label;
}

bool IsGguf(const fs::path& p) { return p.extension() == ".gguf"; }

std::vector<LocalModel> ScanHfCache() {
  std::vector<LocalModel> out;
  std::error_code ec;
  for (const std::string& cache : formats::HfCacheDirs()) {
    for (auto it = fs::directory_iterator(cache, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const std::string dir = it->path().filename().string();
      if (dir.rfind("models--", 0) != 0) continue;
      std::string repo = dir.substr(8);
      size_t sep = repo.find("--");
      if (sep == std::string::npos) continue;
      repo = repo.substr(0, sep) + "/" + repo.substr(sep + 2);
      std::error_code ec2;
      for (auto snap = fs::directory_iterator(it->path() / "snapshots", ec2); !ec2 && snap != fs::directory_iterator();
           snap.increment(ec2)) {
        const std::string commit = snap->path().filename().string();
        LocalModel whole{repo, commit.substr(0, 12), 0, MTime(snap->path()), snap->path().string(), it->path().string(), {}};
        std::vector<LocalModel> quants;
        std::error_code ec3;
        for (auto f = fs::recursive_directory_iterator(snap->path(), ec3); !ec3 && f != fs::recursive_directory_iterator();
             f.increment(ec3)) {
          if (!f->is_regular_file()) continue;  // follows the symlink into blobs/
          uint64_t n = FileSize(f->path());
          whole.size += n;
          if (IsGguf(f->path())) {
            LocalModel q{repo + ":" + QuantLabel(f->path().stem().string()), commit.substr(0, 12), n, MTime(f->path()),
                         f->path().string(), it->path().string(), {f->path().string()}};
            std::error_code ec4;
            if (fs::is_symlink(f->path(), ec4)) q.files.push_back(fs::canonical(f->path(), ec4).string());
            quants.push_back(q);
          }
        }
        if (quants.empty()) out.push_back(whole);
        else out.insert(out.end(), quants.begin(), quants.end());
      }
    }
    ec.clear();
  }
  return out;
}

std::vector<LocalModel> ScanSpoolHome() {
  std::vector<LocalModel> out;
  std::error_code ec;
  const fs::path dir = fs::path(SpoolHome()) / "models";
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (IsGguf(p)) {
      out.push_back({p.stem().string(), ShortHash(p.filename().string() + std::to_string(FileSize(p))), FileSize(p), MTime(p),
                     p.string(), "", {p.string()}});
    } else if (it->is_directory() && fs::exists(p / "config.json")) {
      uint64_t n = 0;
      std::error_code ec2;
      for (auto f = fs::recursive_directory_iterator(p, ec2); !ec2 && f != fs::recursive_directory_iterator(); f.increment(ec2))
        if (f->is_regular_file()) n += FileSize(f->path());
      out.push_back({p.filename().string(), ShortHash(p.filename().string() + std::to_string(n)), n, MTime(p), p.string(), "",
                     {p.string()}});
    }
  }
  return out;
}

std::vector<LocalModel> AllModels() {
  auto a = ScanSpoolHome();
  auto b = ScanHfCache();
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end(), [](const LocalModel& x, const LocalModel& y) { return x.name < y.name; });
  return a;
}

std::string Ago(int64_t t) {
  int64_t d = static_cast<int64_t>(std::time(nullptr)) - t;
  if (d < 60) return "just now";
  auto unit = [](int64_t n, const char* u) { return std::to_string(n) + " " + u + (n == 1 ? "" : "s") + " ago"; };
  if (d < 3600) return unit(d / 60, "minute");
  if (d < 86400) return unit(d / 3600, "hour");
  if (d < 86400 * 60) return unit(d / 86400, "day");
  return unit(d / (86400 * 30), "month");
}

int RunList(int argc, char** argv) {
  ArgParser p("spool list", "");
  bool& json = p.Flag("--json", "print a JSON array");
  if (auto st = p.Parse(argc, argv); !st.ok() || p.help_requested()) {
    std::fputs(p.Usage().c_str(), st.ok() ? stdout : stderr);
    return st.ok() ? 0 : 2;
  }
  auto models = AllModels();
  if (json) {
    std::printf("[");
    for (size_t i = 0; i < models.size(); ++i) {
      const auto& m = models[i];
      std::printf("%s{\"name\":\"%s\",\"id\":\"%s\",\"size\":%llu,\"modified\":%lld,\"path\":\"%s\"}", i ? "," : "",
                  m.name.c_str(), m.id.c_str(), static_cast<unsigned long long>(m.size), static_cast<long long>(m.modified),
                  m.path.c_str());
    }
    std::printf("]\n");
    return 0;
  }
  size_t w = 4;
  for (const auto& m : models) w = std::max(w, m.name.size());
  std::printf("%-*s  %-12s  %9s  %s\n", static_cast<int>(w), "NAME", "ID", "SIZE", "MODIFIED");
  for (const auto& m : models)
    std::printf("%-*s  %-12s  %9s  %s\n", static_cast<int>(w), m.name.c_str(), m.id.c_str(), FormatBytes(m.size).c_str(),
                Ago(m.modified).c_str());
  return 0;
}

int RunShowPath(int argc, char** argv) {
  if (argc != 1) {
    std::fputs("usage: spool show-path NAME   (prints the file or folder NAME resolves to)\n", stderr);
    return 2;
  }
  auto r = ResolveModelName(argv[0]);
  if (!r.ok()) return Fail(r.status().message());
  std::printf("%s\n", r->path.c_str());
  return 0;
}

int RunRm(int argc, char** argv) {
  if (argc < 1) {
    std::fputs("usage: spool rm NAME...   (names as `spool list` shows them)\n", stderr);
    return 2;
  }
  int rc = 0;
  auto models = AllModels();
  for (int i = 0; i < argc; ++i) {
    std::string name = argv[i];
    for (const auto& e : ModelRegistry())
      if (e.alias == name) name = e.repo;
    std::vector<const LocalModel*> hits;
    for (const auto& m : models)
      if (m.name == name) hits.push_back(&m);
    if (hits.empty()) {
      rc = Fail(std::string(argv[i]) + ": no such model in " + SpoolHome() + "/models or the Hugging Face cache (see `spool list`)");
      continue;
    }
    std::error_code ec;
    for (const LocalModel* m : hits) {
      if (!m->repo_dir.empty() && m->name.find(':') == std::string::npos) {
        fs::remove_all(m->repo_dir, ec);  // the whole repo: refs, snapshots, blobs
      } else {
        for (const auto& f : m->files) fs::remove_all(f, ec);
      }
      if (ec) rc = Fail(m->path + ": " + ec.message());
    }
    if (!ec) std::printf("deleted '%s'\n", argv[i]);
  }
  return rc;
}

int RunPs(int argc, char** argv) {
  ArgParser p("spool ps", "");
  std::string& host = p.String("--host", "127.0.0.1", "server address");
  int64_t& port = p.Int("--port", 8080, "server port");
  std::string& key = p.String("--api-key", "", "API key of the server");
  if (auto st = p.Parse(argc, argv); !st.ok() || p.help_requested()) {
    std::fputs(p.Usage().c_str(), st.ok() ? stdout : stderr);
    return st.ok() ? 0 : 2;
  }
  auto j = server::GetJson(host, static_cast<int>(port), "/api/ps", key);
  if (!j.ok()) return Fail(j.status().message());
  std::printf("%-40s  %9s  %s\n", "NAME", "SIZE", "CONTEXT");
  if (j->contains("loading")) std::printf("(loading %s)\n", (*j)["loading"].get<std::string>().c_str());
  for (const auto& m : (*j)["models"]) {
    std::printf("%-40s  %9s  %lld\n", m.value("name", "").c_str(), FormatBytes(m.value("size", uint64_t{0})).c_str(),
                static_cast<long long>(m.value("context_length", int64_t{0})));
  }
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("list", "list downloaded models (NAME, ID, SIZE, MODIFIED)", spool::apps::RunList);
SPOOL_COMMAND("show-path", "print the file or folder a model name resolves to", spool::apps::RunShowPath);
SPOOL_COMMAND("rm", "delete a downloaded model", spool::apps::RunRm);
SPOOL_COMMAND("ps", "show what a running `spool serve` has loaded", spool::apps::RunPs);
