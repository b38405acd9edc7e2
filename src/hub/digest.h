// Streaming digests that check a downloaded blob against the hub's ETag:
//   64 hex digits  → SHA-256 of the content (LFS files: X-Linked-Etag)
//   40 hex digits  → git blob SHA-1: sha1("blob <size>\0" + content) (small git files)
// Anything else cannot be verified (reported as such, never silently accepted as checked).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace spool::hub {

enum class DigestKind { kNone, kSha256, kGitSha1 };

// Which digest an ETag (already stripped of quotes and "W/") names.
DigestKind DigestKindForEtag(const std::string& etag);
const char* DigestKindName(DigestKind kind);  // "sha256", "git-sha1", "none"

class StreamingDigest {
 public:
  // `total_size` is needed up front by the git blob header.
  StreamingDigest(DigestKind kind, uint64_t total_size);
  ~StreamingDigest();
  StreamingDigest(const StreamingDigest&) = delete;
  StreamingDigest& operator=(const StreamingDigest&) = delete;

  // Starts over (a server that ignored our Range request sends the whole file).
  void Reset();
  void Update(const void* data, size_t n);
  // Lower-case hex digest ("" for kNone). Call once.
  std::string FinishHex();

 private:
  struct Impl;
  DigestKind kind_;
  uint64_t total_size_;
  std::unique_ptr<Impl> impl_;
};

// Strips surrounding quotes and a weak "W/" prefix from an ETag header value.
std::string NormalizeEtag(std::string etag);

}  // namespace spool::hub
