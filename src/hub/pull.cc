#include "hub/pull.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "base/progress.h"
#include "base/strings.h"
#include "hub/digest.h"

namespace spool::hub {

namespace fs = std::filesystem;

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Byte counts shown by the progress line: kB for small pulls, MB otherwise.
struct ProgressUnit {
  std::string name;
  int64_t scale;
};
ProgressUnit UnitFor(uint64_t total) {
  return total >= (100u << 20) ? ProgressUnit{"MB", 1000000} : ProgressUnit{"kB", 1000};
}

class Downloader {
 public:
  Downloader(const HubClient& hub, const PullSpec& spec, const PullOptions& options, std::string repo_dir,
             std::string commit)
      : hub_(hub), spec_(spec), options_(options), repo_dir_(std::move(repo_dir)), commit_(std::move(commit)) {}

  // HEADs every file (sizes, etags) and records them.
  Status Plan(const std::vector<std::string>& files) {
    for (const std::string& f : files) {
      SPOOL_ASSIGN_OR_RETURN(FileMeta meta, hub_.HeadFile(spec_.repo, commit_, f));
      if (!meta.commit.empty() && meta.commit != commit_)
        std::fprintf(options_.log, "note: %s: X-Repo-Commit %s differs from the listing's %s\n", f.c_str(),
                     meta.commit.c_str(), commit_.c_str());
      plan_.push_back({f, meta});
    }
    return Status::Ok();
  }

  // Downloads every planned file that has no blob yet. The progress line counts the
  // bytes this run still has to fetch (finished blobs and resumable .incomplete
  // prefixes excluded), so speed and ETA are this run's.
  Status Fetch(PullResult* result) {
    uint64_t to_fetch = 0;
    for (const auto& [file, meta] : plan_) {
      if (fs::exists(BlobPath(meta))) continue;
      std::error_code ec;
      uint64_t partial = fs::file_size(BlobPath(meta) + ".incomplete", ec);
      if (ec || partial > meta.size) partial = 0;
      to_fetch += meta.size - partial;
    }
    ProgressUnit unit = UnitFor(to_fetch);
    ProgressLine progress("pull " + spec_.repo, unit.name, static_cast<int64_t>(to_fetch / unit.scale), options_.log,
                          5.0);
    progress.set_enabled(options_.progress && to_fetch > 0);
    const uint64_t downloaded_before = result->bytes_downloaded;
    int64_t shown = -1;
    auto on_progress = [&] {  // only when the shown number changes (ProgressLine redraws at 100% every call)
      int64_t now = static_cast<int64_t>((result->bytes_downloaded - downloaded_before) / unit.scale);
      if (now != shown) progress.Update(shown = now);
    };
    for (const auto& [file, meta] : plan_) {
      if (fs::exists(BlobPath(meta))) continue;
      Status st = FetchBlob(file, meta, on_progress, result);
      if (!st.ok()) {
        progress.Finish();  // end the live line before the error is printed
        return st;
      }
    }
    progress.Finish();
    return Status::Ok();
  }

  // Symlinks snapshots/<commit>/<file> → blobs and writes refs/<rev>.
  Status Register(PullResult* result) {
    const std::string snap = repo_dir_ + "/snapshots/" + commit_;
    for (const auto& [file, meta] : plan_) {
      fs::path link = fs::path(snap) / file;
      std::error_code ec;
      fs::create_directories(link.parent_path(), ec);
      if (ec) return IoError(link.parent_path().string() + ": " + ec.message());
      std::string target = "../../blobs/" + meta.etag;
      for (size_t i = 0; i < file.size(); ++i)
        if (file[i] == '/') target = "../" + target;
      fs::remove(link, ec);
      fs::create_symlink(target, link, ec);
      if (ec) return IoError(link.string() + ": cannot create symlink to " + target + ": " + ec.message());
      result->files.push_back(file);
    }
    const std::string rev = spec_.revision.empty() ? "main" : spec_.revision;
    if (rev != commit_) {
      fs::path ref = fs::path(repo_dir_) / "refs" / rev;
      std::error_code ec;
      fs::create_directories(ref.parent_path(), ec);
      std::string tmp = ref.string() + ".tmp";
      {
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        if (!f) return IoError(Errno(tmp));
        bool ok = std::fwrite(commit_.data(), 1, commit_.size(), f) == commit_.size();
        ok = std::fclose(f) == 0 && ok;
        if (!ok) return IoError(Errno(tmp));
      }
      fs::rename(tmp, ref, ec);
      if (ec) return IoError(ref.string() + ": " + ec.message());
    }
    result->snapshot_dir = snap;
    return Status::Ok();
  }

  std::string BlobPathOf(const std::string& file) const {
    for (const auto& [f, meta] : plan_)
      if (f == file) return BlobPath(meta);
    return "";
  }

 private:
  std::string BlobPath(const FileMeta& meta) const { return repo_dir_ + "/blobs/" + meta.etag; }

  template <typename OnProgress>
  Status FetchBlob(const std::string& file, const FileMeta& meta, OnProgress on_progress, PullResult* result) {
    const std::string blob = BlobPath(meta);
    const std::string partial = blob + ".incomplete";
    std::error_code ec;
    fs::create_directories(repo_dir_ + "/blobs", ec);
    if (ec) return IoError(repo_dir_ + "/blobs: " + ec.message());
    int fd = ::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return IoError(Errno(partial));
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
      return IoError(partial + ": another download of this file is in progress (locked)");
    struct stat st{};
    if (::fstat(fd, &st) != 0) return IoError(Errno(partial));
    uint64_t have = static_cast<uint64_t>(st.st_size);
    if (have > meta.size) {  // longer than the file: not ours to resume
      if (::ftruncate(fd, 0) != 0) return IoError(Errno(partial));
      have = 0;
    }
    DigestKind kind = DigestKindForEtag(meta.etag);
    StreamingDigest digest(kind, meta.size);
    if (have > 0) {  // hash what is already there
      std::vector<char> buf(1 << 20);
      uint64_t off = 0;
      while (off < have) {
        ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), have - off), static_cast<off_t>(off));
        if (n <= 0) return IoError(Errno(partial));
        digest.Update(buf.data(), static_cast<size_t>(n));
        off += static_cast<uint64_t>(n);
      }
      std::fprintf(options_.log, "resuming %s at byte %llu of %llu\n", file.c_str(),
                   static_cast<unsigned long long>(have), static_cast<unsigned long long>(meta.size));
    }
    uint64_t written = have;
    std::string write_error;
    BodySink sink;
    sink.start = [&](const HttpResponse& head) {
      if (have > 0 && head.status != 206) {  // the server sent the whole file: start over
        if (::ftruncate(fd, 0) != 0) return false;
        digest.Reset();
        written = 0;
      }
      return true;
    };
    sink.data = [&](const char* data, size_t n) {
      if (written + n > meta.size) {
        write_error = "the server sent more than the expected " + std::to_string(meta.size) + " bytes";
        return false;
      }
      size_t off = 0;
      while (off < n) {
        ssize_t w = ::pwrite(fd, data + off, n - off, static_cast<off_t>(written + off));
        if (w <= 0) {
          write_error = Errno(partial);
          return false;
        }
        off += static_cast<size_t>(w);
      }
      digest.Update(data, n);
      written += n;
      result->bytes_downloaded += n;
      on_progress();
      return true;
    };
    const std::string url = hub_.ResolveUrl(spec_.repo, commit_, file);
    auto resp = hub_.http().GetStream(url, have, sink);
    if (!write_error.empty()) return IoError(file + ": " + write_error);
    if (!resp.ok())
      return IoError(file + ": download interrupted at byte " + std::to_string(written) + " of " +
                     std::to_string(meta.size) + " (" + resp.status().message() + "); " + partial +
                     " is kept: run the same `spool pull` again to resume");
    if (resp->status < 200 || resp->status >= 300) return hub_.HttpError(*resp, spec_.repo, spec_.repo + "/" + file);
    if (written != meta.size)
      return IoError(file + ": download ended at byte " + std::to_string(written) + " of " +
                     std::to_string(meta.size) + "; " + partial + " is kept: run `spool pull` again to resume");
    if (::fsync(fd) != 0) return IoError(Errno(partial));
    std::string got = digest.FinishHex();
    if (kind == DigestKind::kNone) {
      result->unverified.push_back(file);
      std::fprintf(options_.log, "warning: %s: ETag '%s' is not a sha256 or git sha1; content not verified\n",
                   file.c_str(), meta.etag.c_str());
    } else if (got != meta.etag) {
      ::unlink(partial.c_str());
      return InvalidFile(file + ": checksum mismatch: the hub's ETag says " + DigestKindName(kind) + " " + meta.etag +
                         ", the downloaded " + std::to_string(written) + " bytes hash to " + got +
                         "; the download was discarded and nothing was registered");
    }
    if (::rename(partial.c_str(), blob.c_str()) != 0) return IoError(Errno("rename " + partial));
    return Status::Ok();
  }

  const HubClient& hub_;
  const PullSpec& spec_;
  const PullOptions& options_;
  std::string repo_dir_;
  std::string commit_;
  std::vector<std::pair<std::string, FileMeta>> plan_;
};

}  // namespace

Result<std::vector<std::string>> SafetensorsFiles(const std::vector<std::string>& listing, bool* sharded) {
  if (!Contains(listing, "config.json")) {
    bool has_gguf = std::any_of(listing.begin(), listing.end(),
                                [](const std::string& f) { return Lower(f).ends_with(".gguf"); });
    return NotFound(std::string("the repository has no config.json") +
                    (has_gguf ? " (it holds .gguf files: pull one with NAME:QUANT, e.g. org/name:Q4_K_M)" : ""));
  }
  std::vector<std::string> files = {"config.json"};
  for (const char* optional :
       {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"})
    if (Contains(listing, optional)) files.push_back(optional);
  if (Contains(listing, "model.safetensors")) {
    files.push_back("model.safetensors");
    *sharded = false;
  } else if (Contains(listing, "model.safetensors.index.json")) {
    files.push_back("model.safetensors.index.json");
    *sharded = true;
  } else {
    return NotFound("the repository has neither model.safetensors nor model.safetensors.index.json");
  }
  return files;
}

Result<std::vector<std::string>> GgufFiles(const std::vector<std::string>& listing, const std::string& quant) {
  static const std::regex kSplit("-[0-9]{5}-of-[0-9]{5}\\.gguf$", std::regex::icase);
  std::map<std::string, std::vector<std::string>> groups;  // stem without split suffix → parts
  std::vector<std::string> all_gguf;
  for (const std::string& f : listing) {
    std::string lower = Lower(f);
    if (!lower.ends_with(".gguf")) continue;
    all_gguf.push_back(f);
    std::string base = fs::path(f).filename().string();
    if (Lower(base).find(Lower(quant)) == std::string::npos) continue;
    std::string stem = std::regex_replace(f, kSplit, "");
    if (stem == f) stem = f.substr(0, f.size() - 5);
    groups[stem].push_back(f);
  }
  if (groups.empty()) {
    std::string have;
    for (const auto& f : all_gguf) have += "\n  " + f;
    return NotFound("no .gguf file with '" + quant + "' in its name" +
                    (have.empty() ? std::string(" (the repository has no .gguf files)") : "; the repository has:" + have));
  }
  if (groups.size() > 1) {  // prefer stems that end with the label ("...-Q4_K" over "...-Q4_K_M" for "Q4_K")
    std::map<std::string, std::vector<std::string>> exact;
    for (const auto& [stem, parts] : groups)
      if (Lower(stem).ends_with(Lower(quant))) exact[stem] = parts;
    if (exact.size() == 1) groups = exact;
  }
  if (groups.size() > 1) {
    std::string names;
    for (const auto& [stem, parts] : groups) names += "\n  " + parts.front();
    return InvalidArgument("'" + quant + "' matches several .gguf files; use a longer label:" + names);
  }
  std::vector<std::string> parts = groups.begin()->second;
  std::sort(parts.begin(), parts.end());
  return parts;
}

Result<PullResult> Pull(const HubClient& hub, const PullSpec& spec, const PullOptions& options) {
  if (HubOffline())
    return Unsupported("HF_HUB_OFFLINE is set: `spool pull` needs the network; nothing was fetched "
                       "(unset HF_HUB_OFFLINE, or use a model already in the cache)");
  if (options.cache_dir.empty())
    return InvalidArgument("no Hugging Face cache folder: set HF_HUB_CACHE, HF_HOME or HOME");
  std::vector<std::string> parts = Split(spec.repo, '/');
  if (parts.size() != 2) return InvalidArgument("'" + spec.repo + "' is not of the form org/name");
  const std::string revision = spec.revision.empty() ? "main" : spec.revision;
  if (revision.find("..") != std::string::npos || revision.front() == '/')
    return InvalidArgument("bad revision '" + revision + "'");
  SPOOL_ASSIGN_OR_RETURN(RepoListing listing, hub.ListFiles(spec.repo, revision));
  const std::string repo_dir = options.cache_dir + "/models--" + parts[0] + "--" + parts[1];
  PullResult result;
  result.commit = listing.commit;
  Downloader dl(hub, spec, options, repo_dir, listing.commit);
  std::vector<std::string> files;
  if (!spec.quant.empty()) {
    auto g = GgufFiles(listing.files, spec.quant);
    if (!g.ok()) return g.status().WithContext(spec.repo + "@" + revision);
    files = *g;
  } else {
    bool sharded = false;
    auto s = SafetensorsFiles(listing.files, &sharded);
    if (!s.ok()) return s.status().WithContext(spec.repo + "@" + revision);
    files = *s;
    if (sharded) {  // fetch the index first: it names the shards
      Downloader index_dl(hub, spec, options, repo_dir, listing.commit);
      SPOOL_TRY(index_dl.Plan({"model.safetensors.index.json"}));
      PullResult index_result;
      SPOOL_TRY(index_dl.Fetch(&index_result));
      result.bytes_downloaded += index_result.bytes_downloaded;
      const std::string index_path = index_dl.BlobPathOf("model.safetensors.index.json");
      SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
      nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        return InvalidFile(spec.repo + "/model.safetensors.index.json: no 'weight_map' object");
      std::set<std::string> shards;
      for (const auto& [name, shard] : j["weight_map"].items()) {
        if (!shard.is_string() || !IsSafeRepoPath(shard.get<std::string>()))
          return InvalidFile(spec.repo + "/model.safetensors.index.json: weight_map['" + name +
                             "'] is not a safe file name");
        shards.insert(shard.get<std::string>());
      }
      for (const std::string& shard : shards) {
        if (!Contains(listing.files, shard))
          return NotFound(spec.repo + "/model.safetensors.index.json names shard '" + shard +
                          "', which the repository does not have");
        files.push_back(shard);
      }
    }
  }
  SPOOL_TRY(dl.Plan(files));
  SPOOL_TRY(dl.Fetch(&result));
  SPOOL_TRY(dl.Register(&result));
  return result;
}

}  // namespace spool::hub
