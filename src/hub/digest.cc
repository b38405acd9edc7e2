#include "hub/digest.h"

#include <openssl/evp.h>

#include <cctype>

#include "base/check.h"

namespace spool::hub {

namespace {
bool AllHex(const std::string& s) {
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}
}  // namespace

DigestKind DigestKindForEtag(const std::string& etag) {
  if (etag.size() == 64 && AllHex(etag)) return DigestKind::kSha256;
  if (etag.size() == 40 && AllHex(etag)) return DigestKind::kGitSha1;
  return DigestKind::kNone;
}

const char* DigestKindName(DigestKind kind) {
  switch (kind) {
    case DigestKind::kSha256: return "sha256";
    case DigestKind::kGitSha1: return "git-sha1";
    case DigestKind::kNone: return "none";
  }
  return "none";
}

std::string NormalizeEtag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

struct StreamingDigest::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

StreamingDigest::StreamingDigest(DigestKind kind, uint64_t total_size)
    : kind_(kind), total_size_(total_size), impl_(std::make_unique<Impl>()) {
  if (kind_ != DigestKind::kNone) {
    impl_->ctx = EVP_MD_CTX_new();
    SPOOL_CHECK(impl_->ctx != nullptr);
  }
  Reset();
}

StreamingDigest::~StreamingDigest() {
  if (impl_->ctx) EVP_MD_CTX_free(impl_->ctx);
}

void StreamingDigest::Reset() {
  if (kind_ == DigestKind::kNone) return;
  const EVP_MD* md = kind_ == DigestKind::kSha256 ? EVP_sha256() : EVP_sha1();
  SPOOL_CHECK(EVP_DigestInit_ex(impl_->ctx, md, nullptr) == 1);
  if (kind_ == DigestKind::kGitSha1) {
    std::string header = "blob " + std::to_string(total_size_);
    header.push_back('\0');
    Update(header.data(), header.size());
  }
}

void StreamingDigest::Update(const void* data, size_t n) {
  if (kind_ == DigestKind::kNone || n == 0) return;
  SPOOL_CHECK(EVP_DigestUpdate(impl_->ctx, data, n) == 1);
}

std::string StreamingDigest::FinishHex() {
  if (kind_ == DigestKind::kNone) return "";
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SPOOL_CHECK(EVP_DigestFinal_ex(impl_->ctx, out, &len) == 1);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[out[i] >> 4]);
    hex.push_back(kHex[out[i] & 15]);
  }
  return hex;
}

}  // namespace spool::hub
