#include "runtime/session_store.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/check.h"
#include "base/log.h"
#include "base/strings.h"
#include "kv/disk_kv.h"

namespace spool::runtime {

namespace {

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SPOOL_CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

constexpr const char* kSettingsKey = "server_session";

// The (tenant, id, last use) a server session file carries in its settings.
Status ReadScope(const kv::SessionInfo& info, const std::string& path, StoredSession* out) {
  auto it = info.settings.find(kSettingsKey);
  if (it == info.settings.end() || !it->is_object())
    return InvalidFile(path + ": not a server session (settings." + kSettingsKey + " is missing)");
  const auto& s = *it;
  if (!s.contains("tenant") || !s["tenant"].is_string() || !s.contains("id") || !s["id"].is_string() ||
      !s.contains("last_used_ms") || !s["last_used_ms"].is_number_integer())
    return InvalidFile(path + ": settings." + kSettingsKey + " needs string 'tenant', string 'id' and integer 'last_used_ms'");
  if (!info.pending.empty())
    return InvalidFile(path + ": a server session has no pending tokens, this file has " + std::to_string(info.pending.size()));
  out->tenant = s["tenant"].get<std::string>();
  out->id = s["id"].get<std::string>();
  out->last_used_ms = s["last_used_ms"].get<int64_t>();
  out->tokens = static_cast<int64_t>(info.tokens.size());
  out->bytes = info.file_bytes;
  return Status::Ok();
}

// Removes NAME.session.tmp.PID files of processes that no longer exist.
void RemoveStaleTemporaries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const size_t at = name.find(".session.tmp.");
    if (at == std::string::npos) continue;
    const std::string pid_text = name.substr(at + 13);
    if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid_text)), 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  ::closedir(d);
  for (const auto& name : stale) ::unlink((dir + "/" + name).c_str());
}

}  // namespace

std::string TenantForApiKey(const std::string& api_key) {
  return api_key.empty() ? std::string() : Sha256Hex("spool-tenant\n" + api_key);
}

std::string DefaultServerSessionsDir() { return kv::SpoolHome() + "/server-sessions"; }

Result<std::unique_ptr<SessionStore>> SessionStore::Open(SessionStoreOptions options) {
  if (options.dir.empty()) options.dir = DefaultServerSessionsDir();
  SPOOL_TRY(kv::MakeDirs(options.dir).WithContext("--session-dir"));
  std::unique_ptr<SessionStore> store(new SessionStore(std::move(options)));
  // Two servers on one folder would delete each other's files (the disk limit) and
  // keep stale indexes: the second one is refused.
  const std::string lock_path = store->dir() + "/.lock";
  store->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (store->lock_fd_ < 0) return IoError(lock_path + ": cannot create the session folder's lock file");
  if (::flock(store->lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return Status(ErrorCode::kResourceExhausted,
                  store->dir() + ": another spool serve uses this --session-dir (pass another folder, or stop it)");
  RemoveStaleTemporaries(store->dir());
  SPOOL_ASSIGN_OR_RETURN(auto entries, kv::ListSessions(store->dir()));
  for (auto& e : entries) {
    const std::string file = e.name + ".session";
    if (!e.info.ok()) {
      SPOOL_LOG_WARN("spool serve: ignoring damaged session file %s", e.info.status().message().c_str());
      continue;
    }
    StoredSession s;
    if (Status st = ReadScope(*e.info, e.path, &s); !st.ok()) {
      SPOOL_LOG_WARN("spool serve: ignoring session file %s", st.message().c_str());
      continue;
    }
    if (store->FileName(s.tenant, s.id) != file) {
      SPOOL_LOG_WARN("spool serve: ignoring session file %s: its name does not match the session it holds", e.path.c_str());
      continue;
    }
    s.file = file;
    store->index_[file] = std::move(s);
  }
  return store;
}

SessionStore::~SessionStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string SessionStore::FileName(const std::string& tenant, const std::string& id) const {
  // Both parts are length-prefixed so that no two (tenant, id) pairs share a digest input.
  const std::string key = std::to_string(tenant.size()) + ":" + tenant + std::to_string(id.size()) + ":" + id;
  return Sha256Hex("spool-server-session\n" + key).substr(0, 40) + ".session";
}

bool SessionStore::Find(const std::string& tenant, const std::string& id, StoredSession* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(FileName(tenant, id));
  if (it == index_.end() || it->second.tenant != tenant || it->second.id != id) return false;
  if (out) *out = it->second;
  return true;
}

// The file of (tenant, id) and its header, checked to belong to that scope: a file is
// only ever resumed by the (tenant, id) that wrote it.
Result<std::pair<std::string, kv::SessionInfo>> SessionStore::OpenScoped(const std::string& tenant, const std::string& id) const {
  StoredSession s;
  if (!Find(tenant, id, &s)) return NotFound("no stored session");
  std::string path = PathOf(s.file);
  SPOOL_ASSIGN_OR_RETURN(kv::SessionInfo info, kv::ReadSessionInfo(path));
  StoredSession on_disk;
  SPOOL_TRY(ReadScope(info, path, &on_disk));
  if (on_disk.tenant != tenant || on_disk.id != id) return InvalidFile(path + ": the file holds another session");
  return std::make_pair(std::move(path), std::move(info));
}

Result<std::vector<int32_t>> SessionStore::PeekTokens(const std::string& tenant, const std::string& id) const {
  SPOOL_ASSIGN_OR_RETURN(auto scoped, OpenScoped(tenant, id));
  return std::move(scoped.second.tokens);
}

Result<std::unique_ptr<Sequence>> SessionStore::Load(Engine& engine, const std::string& tenant, const std::string& id) {
  SPOOL_ASSIGN_OR_RETURN(auto scoped, OpenScoped(tenant, id));
  const std::string& path = scoped.first;
  std::vector<int32_t> pending;
  SPOOL_ASSIGN_OR_RETURN(auto seq, engine.LoadSession(path, &pending));
  if (!pending.empty()) return InvalidFile(path + ": a server session has no pending tokens");
  return seq;
}

Status SessionStore::Save(Engine& engine, const std::string& tenant, const std::string& id, Sequence& seq,
                          int64_t last_used_ms) {
  if (id.empty() || id.size() > kMaxIdBytes)
    return InvalidArgument("session ids of 1 to " + std::to_string(kMaxIdBytes) + " bytes are stored, got " +
                           std::to_string(id.size()));
  const std::string file = FileName(tenant, id);
  const std::string path = PathOf(file);
  nlohmann::ordered_json settings = {
      {kSettingsKey, {{"tenant", tenant}, {"id", id}, {"last_used_ms", last_used_ms}}},
      {"ctx", engine.ctx()},
      {"prefill_chunk", engine.options().prefill_chunk},
  };
  // The write runs without the lock (List stays responsive); only the scheduler thread
  // saves, loads and removes, so no other writer races on this file.
  SPOOL_TRY(engine.SaveSession(path, seq, {}, settings));
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return IoError(path + ": cannot stat the saved session");
  std::lock_guard<std::mutex> lock(mu_);
  index_[file] = StoredSession{tenant, id, file, seq.n_tokens(), static_cast<uint64_t>(st.st_size), last_used_ms};
  if (options_.max_disk_bytes > 0 && static_cast<uint64_t>(st.st_size) > options_.max_disk_bytes) {
    ::unlink(path.c_str());
    index_.erase(file);
    return ResourceExhausted(path + ": the session needs " + std::to_string(st.st_size) +
                             " bytes, more than --session-max-disk (" + std::to_string(options_.max_disk_bytes) +
                             "); it was not kept");
  }
  EnforceLimitLocked(file);
  return Status::Ok();
}

void SessionStore::EnforceLimitLocked(const std::string& keep_file) {
  if (options_.max_disk_bytes == 0) return;
  uint64_t total = 0;
  for (const auto& [f, s] : index_) total += s.bytes;
  while (total > options_.max_disk_bytes) {
    // Least recently used first (ties: by file name, so the order is deterministic).
    auto victim = index_.end();
    for (auto it = index_.begin(); it != index_.end(); ++it) {
      if (it->first == keep_file) continue;
      if (victim == index_.end() || it->second.last_used_ms < victim->second.last_used_ms) victim = it;
    }
    if (victim == index_.end()) break;
    SPOOL_LOG_INFO("spool serve: --session-max-disk: removing least recently used session file %s",
                   victim->first.c_str());
    ::unlink(PathOf(victim->first).c_str());
    total -= victim->second.bytes;
    index_.erase(victim);
  }
}

bool SessionStore::Remove(const std::string& tenant, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(FileName(tenant, id));
  if (it == index_.end() || it->second.tenant != tenant || it->second.id != id) return false;
  ::unlink(PathOf(it->first).c_str());
  index_.erase(it);
  return true;
}

std::vector<StoredSession> SessionStore::List(const std::string& tenant) const {
  std::vector<StoredSession> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [f, s] : index_)
      if (s.tenant == tenant) out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const StoredSession& a, const StoredSession& b) {
    return a.last_used_ms != b.last_used_ms ? a.last_used_ms > b.last_used_ms : a.id < b.id;
  });
  return out;
}

uint64_t SessionStore::total_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const auto& [f, s] : index_) total += s.bytes;
  return total;
}

}  // namespace spool::runtime
