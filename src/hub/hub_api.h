// The Hugging Face hub protocol, client side (what huggingface_hub does):
//   GET  {endpoint}/api/models/{org}/{name}/revision/{rev}  → {"sha": commit, "siblings": [{"rfilename"}]}
//   HEAD {endpoint}/{org}/{name}/resolve/{rev}/{file}       → X-Repo-Commit, ETag / X-Linked-Etag,
//        Content-Length / X-Linked-Size; LFS files answer 302 to a CDN (not followed for HEAD;
//        relative redirects, e.g. of a renamed repo, are followed).
// Errors carry the hub's meaning: 401 (gated or private; token missing or refused),
// 403, 404 (X-Error-Code RepoNotFound / EntryNotFound / RevisionNotFound).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "hub/http.h"

namespace spool::hub {

struct HubConfig {
  std::string endpoint;  // no trailing '/'
  std::string token;     // "" = anonymous
  // $HF_ENDPOINT (default https://huggingface.co); token from $HF_TOKEN,
  // $HUGGING_FACE_HUB_TOKEN, or the file $HF_TOKEN_PATH / $HF_HOME/token /
  // ~/.cache/huggingface/token (what `huggingface-cli login` writes).
  static HubConfig FromEnv();
};

// True when $HF_HUB_OFFLINE is 1/true/yes/on.
bool HubOffline();

struct RepoListing {
  std::string commit;              // 40-hex commit the revision points to
  std::vector<std::string> files;  // every file path in the repo at that commit
};

struct FileMeta {
  std::string etag;    // normalised: sha256 for LFS files, git blob sha1 otherwise
  uint64_t size = 0;
  std::string commit;  // X-Repo-Commit ("" if absent)
};

class HubClient {
 public:
  explicit HubClient(HubConfig config);
  const HubConfig& config() const { return config_; }
  const HttpClient& http() const { return http_; }

  Result<RepoListing> ListFiles(const std::string& repo, const std::string& revision) const;
  Result<FileMeta> HeadFile(const std::string& repo, const std::string& revision, const std::string& file) const;
  std::string ResolveUrl(const std::string& repo, const std::string& revision, const std::string& file) const;
  // A Status for an HTTP error `resp` of `what` (a repo or file), naming the cause.
  Status HttpError(const HttpResponse& resp, const std::string& repo, const std::string& what) const;

 private:
  HubConfig config_;
  HttpClient http_;
};

// Rejects repo file names that could escape the snapshot folder.
bool IsSafeRepoPath(const std::string& path);

}  // namespace spool::hub
