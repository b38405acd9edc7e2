// The server's disk sessions: the prefix cache's entries that belong to a named
// session (a request's `session`/`user` field) are written here when they leave RAM
// (LRU eviction) and when the server shuts down, and read back by a later request of
// the same session, in this process or after a restart. Files are ordinary session
// files (kv/session.h: checksummed, written atomically), so `spool sessions list
// --dir DIR` shows them too.
//
// Scope: a session belongs to (tenant, id). The tenant is a digest of the API key the
// client used ("" when the server has no keys: one anonymous tenant); the id is the
// client's string. Ids are untrusted: the file name is the hex SHA-256 of (tenant,
// id), never the id itself, and the file's metadata carries tenant and id
// (settings.server_session), which Load compares before anything is used, so a file
// can only ever be resumed by the scope that wrote it.
//
// Limits: the store keeps the sum of its files' sizes under max_disk_bytes by
// deleting the least recently used sessions (by last use, not by write time) after a
// save; a session larger than the whole limit is not kept.
//
// Damaged files (bad checksum, truncated, another model, another scope) are never
// used: Open and Load log one line naming the file and the reason and go on; the file
// is left where it is (a later save of the same session replaces it).
//
// One process per directory: Open takes an exclusive lock (flock on DIR/.lock) and
// fails (kIo, naming the folder) when another server holds it.
//
// Threading: every method takes the store's mutex, so List/Remove may run on HTTP
// threads while the scheduler thread saves and loads. Save and Load call the Engine:
// only the thread that owns the Engine (the scheduler's) may call them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "kv/session.h"
#include "runtime/engine.h"

namespace spool::runtime {

// Tenant of a client that presented `api_key`: hex SHA-256 of the key (never the key
// itself, which must not reach the disk). "" for "" (the anonymous tenant).
std::string TenantForApiKey(const std::string& api_key);

// $SPOOL_HOME/server-sessions.
std::string DefaultServerSessionsDir();

struct SessionStoreOptions {
  std::string dir;              // "" = DefaultServerSessionsDir()
  uint64_t max_disk_bytes = 0;  // 0 = unlimited
};

struct StoredSession {
  std::string tenant, id;
  std::string file;             // file name inside the store's dir
  int64_t tokens = 0;
  uint64_t bytes = 0;
  int64_t last_used_ms = 0;
};

class SessionStore {
 public:
  // Creates the directory if needed and indexes the session files in it (metadata
  // only; damaged files are logged and skipped). Stale temporaries of dead processes
  // (a kill -9 mid-save) are removed.
  static Result<std::unique_ptr<SessionStore>> Open(SessionStoreOptions options);
  ~SessionStore();  // releases the directory lock
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  const std::string& dir() const { return options_.dir; }
  // Ids longer than this are not persisted (the request still works from RAM).
  static constexpr size_t kMaxIdBytes = 1024;

  // The stored session of (tenant, id), if the index has one.
  bool Find(const std::string& tenant, const std::string& id, StoredSession* out) const;
  // Its tokens (from the metadata, validated; the KV records are not read).
  Result<std::vector<int32_t>> PeekTokens(const std::string& tenant, const std::string& id) const;
  // Loads the session into a new sequence after checking that the file belongs to
  // (tenant, id) and to this model (Engine::LoadSession checks every checksum).
  // NotFound when there is none; any other error means the file was not used.
  Result<std::unique_ptr<Sequence>> Load(Engine& engine, const std::string& tenant, const std::string& id);
  // Writes `seq` as the session (tenant, id), replacing the previous file atomically,
  // then deletes least recently used sessions until the store fits max_disk_bytes.
  Status Save(Engine& engine, const std::string& tenant, const std::string& id, Sequence& seq, int64_t last_used_ms);
  // Deletes the session's file; false if there was none.
  bool Remove(const std::string& tenant, const std::string& id);
  // Sessions of `tenant`, most recently used first.
  std::vector<StoredSession> List(const std::string& tenant) const;
  uint64_t total_bytes() const;

 private:
  explicit SessionStore(SessionStoreOptions o) : options_(std::move(o)) {}
  std::string FileName(const std::string& tenant, const std::string& id) const;
  std::string PathOf(const std::string& file) const { return options_.dir + "/" + file; }
  // (path, header) of the stored file of (tenant, id), its recorded scope checked.
  Result<std::pair<std::string, kv::SessionInfo>> OpenScoped(const std::string& tenant, const std::string& id) const;
  void EnforceLimitLocked(const std::string& keep_file);

  SessionStoreOptions options_;
  int lock_fd_ = -1;  // flock'ed DIR/.lock
  mutable std::mutex mu_;
  std::map<std::string, StoredSession> index_;  // by file name
};

}  // namespace spool::runtime
