#include "hub/hub_api.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "hub/digest.h"

namespace spool::hub {

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string Header(const HttpResponse& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

bool IsHex40(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

}  // namespace

HubConfig HubConfig::FromEnv() {
  HubConfig c;
  c.endpoint = Env("HF_ENDPOINT");
  if (c.endpoint.empty()) c.endpoint = "https://huggingface.co";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  c.token = Env("HF_TOKEN");
  if (c.token.empty()) c.token = Env("HUGGING_FACE_HUB_TOKEN");
  if (c.token.empty()) {
    std::string path = Env("HF_TOKEN_PATH");
    if (path.empty() && !Env("HF_HOME").empty()) path = Env("HF_HOME") + "/token";
    if (path.empty() && !Env("HOME").empty()) path = Env("HOME") + "/.cache/huggingface/token";
    if (!path.empty())
      if (auto t = ReadFileToString(path); t.ok()) c.token = Trim(*t);
  }
  return c;
}

bool HubOffline() {
  std::string v = Env("HF_HUB_OFFLINE");
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

bool IsSafeRepoPath(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos)
    return false;
  for (const std::string& part : Split(path, '/'))
    if (part.empty() || part == "." || part == "..") return false;
  return true;
}

HubClient::HubClient(HubConfig config)
    : config_(std::move(config)),
      http_(config_.token.empty() ? std::vector<std::string>{}
                                  : std::vector<std::string>{"Authorization: Bearer " + config_.token}) {}

std::string HubClient::ResolveUrl(const std::string& repo, const std::string& revision, const std::string& file) const {
  return config_.endpoint + "/" + repo + "/resolve/" + UrlEncodeSegment(revision) + "/" + UrlEncodePath(file);
}

Status HubClient::HttpError(const HttpResponse& resp, const std::string& repo, const std::string& what) const {
  const std::string code = Header(resp, "x-error-code");
  std::string msg = Header(resp, "x-error-message");
  std::string where = what + " (HTTP " + std::to_string(resp.status) + " from " + config_.endpoint + ")";
  if (resp.status == 401 || resp.status == 403) {
    std::string why = code == "GatedRepo" ? "the repository is gated" : "the repository is gated or private";
    if (config_.token.empty())
      return NotFound(
                    where + ": access denied: " + why + " and no token was sent; set HF_TOKEN to a token " +
                        "that has access (for a gated model, accept its license on the model page first)");
    return NotFound(where + ": access denied: " + why + " and the token in HF_TOKEN was " +
                                            "refused or lacks access (accept the license on the model page, "
                                            "or check the token)");
  }
  if (resp.status == 404) {
    if (code == "RevisionNotFound") return NotFound(where + ": revision not found in " + repo);
    if (code == "EntryNotFound") return NotFound(where + ": file not found in " + repo);
    return NotFound(where + ": not found (no such repository " + repo + ", or it is private and needs HF_TOKEN)");
  }
  if (!msg.empty()) where += ": " + msg;
  return IoError(where + ": unexpected HTTP status");
}

Result<RepoListing> HubClient::ListFiles(const std::string& repo, const std::string& revision) const {
  const std::string url = config_.endpoint + "/api/models/" + repo + "/revision/" + UrlEncodeSegment(revision);
  SPOOL_ASSIGN_OR_RETURN(HttpResponse resp, http_.GetString(url));
  if (resp.status != 200) return HttpError(resp, repo, repo + "@" + revision);
  nlohmann::json j = nlohmann::json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidFile(url + ": response is not a JSON object");
  RepoListing out;
  if (!j.contains("sha") || !j["sha"].is_string() || !IsHex40(j["sha"].get<std::string>()))
    return InvalidFile(url + ": field 'sha' should be a 40-hex commit hash");
  out.commit = j["sha"].get<std::string>();
  if (!j.contains("siblings") || !j["siblings"].is_array())
    return InvalidFile(url + ": field 'siblings' should be an array of {\"rfilename\": ...}");
  for (const auto& s : j["siblings"]) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string())
      return InvalidFile(url + ": a 'siblings' entry has no string 'rfilename'");
    std::string name = s["rfilename"].get<std::string>();
    if (!IsSafeRepoPath(name)) return InvalidFile(url + ": unsafe file name in the listing: '" + name + "'");
    out.files.push_back(std::move(name));
  }
  return out;
}

Result<FileMeta> HubClient::HeadFile(const std::string& repo, const std::string& revision,
                                     const std::string& file) const {
  std::string url = ResolveUrl(repo, revision, file);
  HttpResponse resp;
  for (int hop = 0;; ++hop) {
    SPOOL_ASSIGN_OR_RETURN(resp, http_.Head(url));
    std::string location = Header(resp, "location");
    // Relative redirects stay on the hub (renamed repo): follow. Absolute ones go to the
    // CDN: the metadata we need is on this response.
    if (resp.status >= 300 && resp.status < 400 && !location.empty() && location.front() == '/' && hop < 5) {
      url = config_.endpoint + location;
      continue;
    }
    break;
  }
  if (resp.status >= 400 || resp.status < 200) return HttpError(resp, repo, repo + "/" + file);
  FileMeta meta;
  meta.commit = Header(resp, "x-repo-commit");
  std::string etag = Header(resp, "x-linked-etag");
  if (etag.empty()) etag = Header(resp, "etag");
  meta.etag = NormalizeEtag(etag);
  std::transform(meta.etag.begin(), meta.etag.end(), meta.etag.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (meta.etag.empty() || !IsSafeRepoPath(meta.etag) || meta.etag.find('/') != std::string::npos)
    return InvalidFile(url + ": missing or unusable ETag ('" + etag + "'); cannot name the blob");
  std::string size = Header(resp, "x-linked-size");
  if (size.empty()) size = Header(resp, "content-length");
  char* end = nullptr;
  unsigned long long n = std::strtoull(size.c_str(), &end, 10);
  if (size.empty() || end == size.c_str() || *end != '\0')
    return InvalidFile(url + ": missing or bad size (X-Linked-Size / Content-Length: '" + size + "')");
  meta.size = n;
  return meta;
}

}  // namespace spool::hub
