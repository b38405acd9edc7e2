#include "kv/session.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "base/aligned_buffer.h"
#include "base/json_input.h"
#include "base/strings.h"
#include "kv/checksum.h"
#include "kv/disk_kv.h"
#include "storage/file.h"

namespace spool::kv {

namespace {
constexpr char kMagic[8] = {'S', 'P', 'O', 'O', 'L', 'S', 'E', 'S'};
constexpr char kTrailer[8] = {'S', 'P', 'O', 'O', 'L', 'E', 'N', 'D'};
constexpr uint64_t kHeaderBytes = 32;
constexpr uint64_t kMaxMetaBytes = 512ull << 20;
constexpr int64_t kMaxTokens = int64_t{1} << 26;
constexpr int64_t kMaxDim = 1 << 16;

void PutU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void PutU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Checksum of one record, seeded with its place in the file.
uint32_t RecordCrc(int64_t layer, int64_t record, const void* k, const void* v, uint64_t bytes) {
  uint64_t where[2] = {static_cast<uint64_t>(layer), static_cast<uint64_t>(record)};
  uint32_t c = Crc32c(where, sizeof(where));
  c = Crc32c(k, bytes, c);
  return Crc32c(v, bytes, c);
}

int64_t LiveFrom(const SessionInfo& info, int64_t layer) {
  return layer < static_cast<int64_t>(info.live_from.size()) ? info.live_from[layer] : 0;
}

// Checksum of the recurrent-state block.
uint32_t StateCrc(const void* p, uint64_t bytes) {
  uint64_t where[2] = {~uint64_t{0}, bytes};
  return Crc32c(p, bytes, Crc32c(where, sizeof(where)));
}

// Checksum of checkpoint block `index` (at n_tokens), seeded with its place.
uint32_t CheckpointCrc(const void* p, uint64_t bytes, uint64_t index, int64_t n_tokens) {
  uint64_t where[4] = {~uint64_t{0} - 1, index, static_cast<uint64_t>(n_tokens), bytes};
  return Crc32c(p, bytes, Crc32c(where, sizeof(where)));
}

// Total file size for info, or an error when the numbers overflow.
Result<uint64_t> ExpectedFileBytes(const SessionInfo& info, uint64_t meta_len, const std::string& path) {
  const uint64_t n = info.tokens.size();
  uint64_t total = kHeaderBytes + meta_len + sizeof(kTrailer);
  for (int64_t l = 0; l < info.n_layer; ++l) {
    const uint64_t rows = n - static_cast<uint64_t>(LiveFrom(info, l));  // ReadSessionInfo checked live_from <= n
    const uint64_t records = (rows + info.record_tokens - 1) / info.record_tokens;
    uint64_t layer_bytes;
    if (__builtin_mul_overflow(rows, 2 * info.row_bytes(), &layer_bytes) ||
        __builtin_add_overflow(layer_bytes, records * 4, &layer_bytes) ||
        __builtin_add_overflow(total, layer_bytes, &total))
      return InvalidFile(path + ": session sizes overflow (" + std::to_string(n) + " tokens × " +
                         std::to_string(info.n_layer) + " layers)");
  }
  const uint64_t blocks = info.state_bytes > 0 ? 1 + info.checkpoints.size() : 0;  // ReadSessionInfo bounded the count
  uint64_t state_total;
  if (__builtin_mul_overflow(blocks, info.state_bytes + 4, &state_total) ||
      __builtin_add_overflow(total, state_total, &total))
    return InvalidFile(path + ": session sizes overflow (state block of " + std::to_string(info.state_bytes) + " bytes)");
  return total;
}

const char* DTypeText(DType d) { return d == DType::kF32 ? "f32" : "bf16"; }

nlohmann::ordered_json MetaJson(const SessionInfo& info) {
  nlohmann::ordered_json j{
      {"format", "spool-session"},
      {"model", info.model},
      {"fingerprint", info.fingerprint},
      {"kv_dtype", DTypeText(info.kv_dtype)},
      {"n_layer", info.n_layer},
      {"n_head_kv", info.n_head_kv},
      {"head_dim", info.head_dim},
      {"record_tokens", info.record_tokens},
      {"n_tokens", info.tokens.size()},
      {"tokens", info.tokens},
      {"pending", info.pending},
      {"live_from", info.live_from},
      {"settings", info.settings},
      {"created_unix", info.created_unix},
  };
  if (info.state_bytes > 0) j["state_bytes"] = info.state_bytes;
  if (!info.checkpoints.empty()) {
    nlohmann::ordered_json cps = nlohmann::ordered_json::array();
    for (const SessionCheckpoint& c : info.checkpoints) cps.push_back({{"n_tokens", c.n_tokens}, {"turn", c.turn}});
    j["checkpoints"] = std::move(cps);
  }
  return j;
}

// Buffered writer over a file descriptor; the first error sticks.
class Writer {
 public:
  Writer(int fd, std::string path) : fd_(fd), path_(std::move(path)) { buf_.reserve(kBuf); }
  void Put(const void* p, size_t n) {
    if (!st_.ok()) return;
    const auto* b = static_cast<const uint8_t*>(p);
    if (buf_.size() + n > kBuf) Flush();
    if (n >= kBuf) {
      WriteAll(b, n);
      return;
    }
    buf_.insert(buf_.end(), b, b + n);
  }
  void Flush() {
    if (!st_.ok() || buf_.empty()) return;
    WriteAll(buf_.data(), buf_.size());
    buf_.clear();
  }
  const Status& status() const { return st_; }
  void Fail(Status s) {
    if (st_.ok()) st_ = std::move(s);
  }

 private:
  static constexpr size_t kBuf = 4 << 20;
  void WriteAll(const uint8_t* p, size_t n) {
    while (n > 0 && st_.ok()) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        int e = w < 0 ? errno : ENOSPC;
        std::string msg = path_ + ": writing the session failed: " + storage::ErrnoText(e);
        if (e == ENOSPC || e == EDQUOT) st_ = ResourceExhausted(msg + " (the disk is full; the previous session is kept)");
        else st_ = IoError(msg);
        return;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  int fd_;
  std::string path_;
  std::vector<uint8_t> buf_;
  Status st_;
};

std::string DirName(const std::string& path) {
  size_t s = path.rfind('/');
  if (s == std::string::npos) return ".";
  if (s == 0) return "/";
  return path.substr(0, s);
}

// Removes PATH.tmp.PID files left by processes that no longer exist.
void RemoveStaleTemporaries(const std::string& path) {
  const std::string dir = DirName(path);
  const std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!StartsWith(name, base)) continue;
    const std::string pid_text = name.substr(base.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (::kill(pid, 0) != 0 && errno == ESRCH) ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

Status GetInt(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi, int64_t* out, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer())
    return InvalidFile(path + ": session metadata field '" + key + "' is missing or not an integer");
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    return InvalidFile(path + ": session metadata field '" + key + "' = " + std::to_string(v) + " is outside [" +
                       std::to_string(lo) + ", " + std::to_string(hi) + "]");
  *out = v;
  return Status::Ok();
}

Status GetIds(const nlohmann::json& j, const char* key, size_t max, std::vector<int32_t>* out, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return InvalidFile(path + ": session metadata field '" + key + "' is missing or not an array");
  if (it->size() > max) return InvalidFile(path + ": session metadata field '" + key + "' has " + std::to_string(it->size()) +
                                           " entries, at most " + std::to_string(max) + " allowed");
  out->clear();
  out->reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& e = (*it)[i];
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX)
      return InvalidFile(path + ": session metadata '" + key + "'[" + std::to_string(i) + "] is not a token id");
    out->push_back(static_cast<int32_t>(e.get<int64_t>()));
  }
  return Status::Ok();
}

uint64_t HashBytes(uint64_t h, const void* p, size_t n) {  // FNV-1a, 64-bit
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
}  // namespace

Status ValidateSessionName(const std::string& name) {
  if (name.empty() || name.size() > 128)
    return InvalidArgument("session name must have 1 to 128 characters, got " + std::to_string(name.size()));
  if (name[0] == '.') return InvalidArgument("session name '" + name + "' must not start with '.'");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return InvalidArgument("session name '" + name + "' may contain only letters, digits, '.', '_' and '-'");
  return Status::Ok();
}

std::string DefaultSessionsDir() { return SpoolHome() + "/sessions"; }
std::string SessionPath(const std::string& dir, const std::string& name) { return dir + "/" + name + ".session"; }

Status SaveSession(const std::string& path, const SessionInfo& info, SequenceKv& kv, std::span<const uint8_t> state,
                   std::span<const std::span<const uint8_t>> checkpoints) {
  const KvLayout& L = kv.layout();
  SPOOL_CHECK(state.size() == info.state_bytes);
  SPOOL_CHECK(checkpoints.size() == info.checkpoints.size());
  SPOOL_CHECK(checkpoints.empty() || info.state_bytes > 0);
  SPOOL_CHECK(static_cast<int64_t>(checkpoints.size()) <= kMaxSessionCheckpoints);
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    SPOOL_CHECK(checkpoints[i].size() == info.state_bytes);
    SPOOL_CHECK(info.checkpoints[i].n_tokens > (i > 0 ? info.checkpoints[i - 1].n_tokens : 0) &&
                info.checkpoints[i].n_tokens <= static_cast<int64_t>(info.tokens.size()));
  }
  SPOOL_CHECK(kv.n_tokens() == static_cast<int64_t>(info.tokens.size()));
  SPOOL_CHECK(L.n_layer == info.n_layer && L.n_head_kv == info.n_head_kv && L.head_dim == info.head_dim &&
              L.dtype == info.kv_dtype && L.page_tokens == info.record_tokens);
  // Sliding-window layers store only the rows they still hold.
  SessionInfo stored = info;
  stored.live_from.assign(L.n_layer, 0);
  for (int64_t l = 0; l < L.n_layer; ++l) {
    stored.live_from[l] = std::min(kv.live_from(l), kv.n_tokens());
    SPOOL_CHECK(stored.live_from[l] % L.page_tokens == 0);
  }
  SPOOL_TRY(MakeDirs(DirName(path)));
  RemoveStaleTemporaries(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(tmp + ": cannot create: " + storage::ErrnoText(errno));
  auto fail = [&](Status st) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  };

  const std::string meta = MetaJson(stored).dump();
  uint8_t header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  PutU32(header + 8, kSessionVersion);
  PutU32(header + 12, Crc32c(meta.data(), meta.size()));
  PutU64(header + 16, meta.size());
  PutU32(header + 24, Crc32c(header, 24));
  Writer w(fd, tmp);
  w.Put(header, sizeof(header));
  w.Put(meta.data(), meta.size());

  const int64_t n = kv.n_tokens();
  const uint64_t rb = L.row_bytes();
  const char* pause = std::getenv("SPOOL_TEST_SESSION_SAVE_PAUSE_S");
  for (int64_t l = 0; l < L.n_layer && w.status().ok(); ++l) {
    if (pause && l == L.n_layer / 2) {
      w.Flush();
      std::this_thread::sleep_for(std::chrono::seconds(std::atoi(pause)));
    }
    Status st = kv.ForEachPage(l, n, [&](const KvPageView& page) {
      if (page.first_pos < stored.live_from[l]) return;  // released (zeros)
      const int64_t record = page.first_pos / L.page_tokens;
      const uint64_t bytes = static_cast<uint64_t>(page.n_tokens) * rb;
      w.Put(page.k, bytes);
      w.Put(page.v, bytes);
      uint8_t crc[4];
      PutU32(crc, RecordCrc(l, record, page.k, page.v, bytes));
      w.Put(crc, 4);
    });
    if (!st.ok()) w.Fail(st.WithContext("reading the KV cache to save it"));
  }
  if (!state.empty()) {
    w.Put(state.data(), state.size());
    uint8_t crc[4];
    PutU32(crc, StateCrc(state.data(), state.size()));
    w.Put(crc, 4);
  }
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    w.Put(checkpoints[i].data(), checkpoints[i].size());
    uint8_t crc[4];
    PutU32(crc, CheckpointCrc(checkpoints[i].data(), checkpoints[i].size(), i, info.checkpoints[i].n_tokens));
    w.Put(crc, 4);
  }
  w.Put(kTrailer, sizeof(kTrailer));
  w.Flush();
  if (!w.status().ok()) return fail(w.status());
  if (::fsync(fd) != 0) return fail(IoError(tmp + ": fsync failed: " + storage::ErrnoText(errno)));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // written and durable: no need to keep it cached
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return IoError(tmp + ": close failed: " + storage::ErrnoText(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return IoError(path + ": cannot replace the session file: " + storage::ErrnoText(e));
  }
  int dfd = ::open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // makes the rename durable
    ::close(dfd);
  }
  return Status::Ok();
}

Result<SessionInfo> ReadSessionInfo(const std::string& path) {
  auto file_r = storage::File::Open(path, storage::OpenMode{});
  if (!file_r.ok()) {
    if (file_r.status().code() == ErrorCode::kNotFound) return NotFound(path + ": no such session");
    return file_r.status();
  }
  const storage::File& f = *file_r;
  const uint64_t size = f.size();
  if (size < kHeaderBytes)
    return InvalidFile(path + ": truncated session file: the header needs " + std::to_string(kHeaderBytes) +
                       " bytes, the file has " + std::to_string(size));
  uint8_t h[kHeaderBytes];
  SPOOL_TRY(f.ReadAt(h, 0, kHeaderBytes));
  if (std::memcmp(h, kMagic, 8) != 0) return InvalidFile(path + ": not a spool session file (bad magic)");
  const uint32_t version = GetU32(h + 8);
  if (version < 1 || version > kSessionVersion)
    return Unsupported(path + ": session format version " + std::to_string(version) + ", this spool reads versions 1 to " +
                       std::to_string(kSessionVersion));
  if (GetU32(h + 24) != Crc32c(h, 24) || GetU32(h + 28) != 0)
    return InvalidFile(path + ": corrupt session header (checksum mismatch)");
  const uint64_t meta_len = GetU64(h + 16);
  if (meta_len > kMaxMetaBytes || meta_len > size - kHeaderBytes)
    return InvalidFile(path + ": session metadata length " + std::to_string(meta_len) + " exceeds the file (" +
                       std::to_string(size) + " bytes)");
  std::string meta(meta_len, '\0');
  SPOOL_TRY(f.ReadAt(meta.data(), kHeaderBytes, meta_len));
  if (GetU32(h + 12) != Crc32c(meta.data(), meta.size()))
    return InvalidFile(path + ": corrupt session metadata (checksum mismatch)");
  // Bounded like every untrusted JSON (base/json_input.h): a crafted file's metadata
  // cannot nest deep enough to recurse through the stack. The token list is its bulk.
  JsonLimits meta_limits;
  meta_limits.max_depth = 16;
  meta_limits.max_values = kMaxTokens + 4096;
  auto bounded = ParseJsonBounded(meta, path + ": session metadata", meta_limits);
  if (!bounded.ok()) return InvalidFile(bounded.status().message());
  const nlohmann::json j(*bounded);
  if (!j.is_object()) return InvalidFile(path + ": session metadata is not a JSON object");
  if (j.value("format", "") != "spool-session") return InvalidFile(path + ": session metadata has no format 'spool-session'");

  SessionInfo info;
  auto str = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return InvalidFile(path + ": session metadata field '" + key + "' is missing or not a string");
    *out = it->get<std::string>();
    return Status::Ok();
  };
  SPOOL_TRY(str("model", &info.model));
  SPOOL_TRY(str("fingerprint", &info.fingerprint));
  std::string dtype;
  SPOOL_TRY(str("kv_dtype", &dtype));
  if (dtype == "bf16") info.kv_dtype = DType::kBF16;
  else if (dtype == "f32") info.kv_dtype = DType::kF32;
  else return InvalidFile(path + ": session kv_dtype '" + dtype + "', expected bf16 or f32");
  SPOOL_TRY(GetInt(j, "n_layer", 1, kMaxDim, &info.n_layer, path));
  SPOOL_TRY(GetInt(j, "n_head_kv", 1, kMaxDim, &info.n_head_kv, path));
  SPOOL_TRY(GetInt(j, "head_dim", 1, kMaxDim, &info.head_dim, path));
  SPOOL_TRY(GetInt(j, "record_tokens", 1, 1 << 20, &info.record_tokens, path));
  int64_t n_tokens = 0;
  SPOOL_TRY(GetInt(j, "n_tokens", 0, kMaxTokens, &n_tokens, path));
  SPOOL_TRY(GetIds(j, "tokens", kMaxTokens, &info.tokens, path));
  if (static_cast<int64_t>(info.tokens.size()) != n_tokens)
    return InvalidFile(path + ": session n_tokens = " + std::to_string(n_tokens) + " but 'tokens' lists " +
                       std::to_string(info.tokens.size()));
  SPOOL_TRY(GetIds(j, "pending", 1 << 20, &info.pending, path));
  SPOOL_TRY(GetInt(j, "created_unix", 0, INT64_MAX, &info.created_unix, path));
  info.live_from.assign(info.n_layer, 0);
  if (version >= 2) {  // version 1 stored every row of every layer
    auto it = j.find("live_from");
    if (it == j.end() || !it->is_array() || static_cast<int64_t>(it->size()) != info.n_layer)
      return InvalidFile(path + ": session metadata field 'live_from' is missing or does not list " +
                         std::to_string(info.n_layer) + " layers");
    for (int64_t l = 0; l < info.n_layer; ++l) {
      const auto& e = (*it)[l];
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > n_tokens ||
          e.get<int64_t>() % info.record_tokens != 0)
        return InvalidFile(path + ": session metadata 'live_from'[" + std::to_string(l) +
                           "] is not a multiple of record_tokens in [0, n_tokens]");
      info.live_from[l] = e.get<int64_t>();
    }
  }
  if (auto it = j.find("settings"); it != j.end() && it->is_object()) info.settings = *it;
  if (j.contains("state_bytes")) {
    int64_t sb = 0;
    SPOOL_TRY(GetInt(j, "state_bytes", 0, int64_t{1} << 40, &sb, path));
    info.state_bytes = static_cast<uint64_t>(sb);
  }
  if (auto it = j.find("checkpoints"); it != j.end()) {
    if (version < 3) return InvalidFile(path + ": session metadata field 'checkpoints' in a version " + std::to_string(version) +
                                        " file (checkpoints came with version 3)");
    if (!it->is_array() || static_cast<int64_t>(it->size()) > kMaxSessionCheckpoints)
      return InvalidFile(path + ": session metadata field 'checkpoints' is not an array of at most " +
                         std::to_string(kMaxSessionCheckpoints) + " entries");
    if (!it->empty() && info.state_bytes == 0)
      return InvalidFile(path + ": session metadata lists " + std::to_string(it->size()) +
                         " state checkpoints but no recurrent state (state_bytes 0)");
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& e = (*it)[i];
      const std::string where = path + ": session metadata 'checkpoints'[" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("n_tokens") || !e["n_tokens"].is_number_integer() || !e.contains("turn") ||
          !e["turn"].is_boolean())
        return InvalidFile(where + " is not {\"n_tokens\": integer, \"turn\": boolean}");
      const int64_t at = e["n_tokens"].get<int64_t>();
      const int64_t prev = info.checkpoints.empty() ? 0 : info.checkpoints.back().n_tokens;
      if (at <= prev || at > n_tokens)
        return InvalidFile(where + " n_tokens = " + std::to_string(at) + ", expected in [" + std::to_string(prev + 1) +
                           ", " + std::to_string(n_tokens) + "] (ascending, within the session's tokens)");
      info.checkpoints.push_back(SessionCheckpoint{at, e["turn"].get<bool>()});
    }
  }
  SPOOL_ASSIGN_OR_RETURN(uint64_t expected, ExpectedFileBytes(info, meta_len, path));
  if (size != expected)
    return InvalidFile(path + ": session file is " + std::string(size < expected ? "truncated" : "too long") + ": expected " +
                       std::to_string(expected) + " bytes for " + std::to_string(n_tokens) + " tokens, found " +
                       std::to_string(size));
  info.file_bytes = size;
  return info;
}

namespace {
Status CheckLayout(const std::string& path, const SessionInfo& info, const KvLayout& L) {
  if (L.n_layer != info.n_layer || L.n_head_kv != info.n_head_kv || L.head_dim != info.head_dim)
    return InvalidArgument(path + ": the session's KV shape (" + std::to_string(info.n_layer) + " layers × " +
                           std::to_string(info.n_head_kv) + " heads × " + std::to_string(info.head_dim) +
                           ") does not match the model's (" + std::to_string(L.n_layer) + " × " +
                           std::to_string(L.n_head_kv) + " × " + std::to_string(L.head_dim) + ")");
  if (L.dtype != info.kv_dtype)
    return InvalidArgument(path + ": the session's KV cache is " + DTypeText(info.kv_dtype) + " but --kv-type is " +
                           DTypeText(L.dtype) + " (use --kv-type " + DTypeText(info.kv_dtype) + ")");
  return Status::Ok();
}
Status ReadRecords(const std::string& path, const SessionInfo& info, SequenceKv* kv_or_null,
                   std::vector<uint8_t>* state, std::vector<std::vector<uint8_t>>* checkpoints);
}  // namespace

Status LoadSessionKv(const std::string& path, const SessionInfo& info, SequenceKv& kv, std::vector<uint8_t>* state,
                     std::vector<std::vector<uint8_t>>* checkpoints) {
  return ReadRecords(path, info, &kv, state, checkpoints);
}

Status VerifySession(const std::string& path, const SessionInfo& info) {
  return ReadRecords(path, info, nullptr, nullptr, nullptr);
}

namespace {
Status ReadRecords(const std::string& path, const SessionInfo& info, SequenceKv* kv_or_null,
                   std::vector<uint8_t>* state, std::vector<std::vector<uint8_t>>* checkpoints) {
  if (kv_or_null) SPOOL_TRY(CheckLayout(path, info, kv_or_null->layout()));
  if (kv_or_null) SPOOL_CHECK(kv_or_null->n_tokens() == 0);
  SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(path, storage::OpenMode{.direct = true}));
  uint8_t h[kHeaderBytes];
  SPOOL_TRY(f.ReadAt(h, 0, kHeaderBytes));
  const uint64_t meta_len = GetU64(h + 16);
  SPOOL_ASSIGN_OR_RETURN(uint64_t expected, ExpectedFileBytes(info, meta_len, path));
  if (f.size() != expected)
    return InvalidFile(path + ": session file changed size: expected " + std::to_string(expected) + " bytes, found " +
                       std::to_string(f.size()));
  const int64_t n = static_cast<int64_t>(info.tokens.size());
  const uint64_t rb = info.row_bytes();
  AlignedBuffer buf(2 * static_cast<uint64_t>(info.record_tokens) * rb + 4);
  uint64_t off = kHeaderBytes + meta_len;
  // Only a sliding layer whose window reaches no further back than live_from may skip
  // rows: the next query (position n) attends to n - window + 1 on. Checked for every
  // layer before any record is used.
  for (int64_t l = 0; kv_or_null && l < info.n_layer; ++l) {
    const int64_t live = LiveFrom(info, l), w = kv_or_null->layout().layer_window(l);
    if (live > 0 && (w <= 0 || live > n - w + 1))
      return InvalidFile(path + ": the session stores layer " + std::to_string(l) + " from position " +
                         std::to_string(live) + " on, but this model's layer " + std::to_string(l) +
                         (w <= 0 ? std::string(" attends to every position")
                                 : " attends to the last " + std::to_string(w) + " positions (from " +
                                       std::to_string(n - w + 1) + ")"));
  }
  for (int64_t l = 0; l < info.n_layer; ++l) {
    const int64_t live = LiveFrom(info, l);
    if (kv_or_null && live > 0) SPOOL_TRY(kv_or_null->WriteReleased(l, 0, live));
    for (int64_t first = live, record = live / info.record_tokens; first < n; first += info.record_tokens, ++record) {
      const int64_t rows = std::min(info.record_tokens, n - first);
      const uint64_t bytes = static_cast<uint64_t>(rows) * rb;
      SPOOL_TRY(f.ReadAt(buf.data(), off, 2 * bytes + 4));
      off += 2 * bytes + 4;
      if (GetU32(buf.data() + 2 * bytes) != RecordCrc(l, record, buf.data(), buf.data() + bytes, bytes))
        return InvalidFile(path + ": corrupt session: checksum mismatch in layer " + std::to_string(l) + ", tokens [" +
                           std::to_string(first) + ", " + std::to_string(first + rows) + ")");
      if (kv_or_null) SPOOL_TRY(kv_or_null->WriteRaw(l, first, rows, buf.data(), buf.data() + bytes));
    }
  }
  if (info.state_bytes > 0) {
    std::vector<uint8_t> block(info.state_bytes + 4);
    SPOOL_TRY(f.ReadAt(block.data(), off, block.size()));
    off += block.size();
    if (GetU32(block.data() + info.state_bytes) != StateCrc(block.data(), info.state_bytes))
      return InvalidFile(path + ": corrupt session: checksum mismatch in the recurrent-state block (" +
                         std::to_string(info.state_bytes) + " bytes)");
    if (state) {
      block.resize(info.state_bytes);
      *state = std::move(block);
    }
  }
  if (checkpoints) checkpoints->clear();
  for (size_t i = 0; i < info.checkpoints.size(); ++i) {
    std::vector<uint8_t> block(info.state_bytes + 4);
    SPOOL_TRY(f.ReadAt(block.data(), off, block.size()));
    off += block.size();
    if (GetU32(block.data() + info.state_bytes) !=
        CheckpointCrc(block.data(), info.state_bytes, i, info.checkpoints[i].n_tokens))
      return InvalidFile(path + ": corrupt session: checksum mismatch in recurrent-state checkpoint " + std::to_string(i) +
                         " (at " + std::to_string(info.checkpoints[i].n_tokens) + " tokens, " +
                         std::to_string(info.state_bytes) + " bytes)");
    if (checkpoints) {
      block.resize(info.state_bytes);
      checkpoints->push_back(std::move(block));
    }
  }
  char trailer[8];
  SPOOL_TRY(f.ReadAt(trailer, off, 8));
  if (std::memcmp(trailer, kTrailer, 8) != 0) return InvalidFile(path + ": corrupt session: bad trailer");
  return kv_or_null ? kv_or_null->Commit(n) : Status::Ok();
}
}  // namespace

Result<std::vector<SessionEntry>> ListSessions(const std::string& dir) {
  std::vector<SessionEntry> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return IoError(dir + ": cannot list sessions: " + storage::ErrnoText(errno));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (EndsWith(name, ".session") && name.size() > 8) names.push_back(name.substr(0, name.size() - 8));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    SessionEntry e;
    e.name = name;
    e.path = SessionPath(dir, name);
    e.info = ReadSessionInfo(e.path);
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::string> ModelFingerprint(const std::vector<std::string>& files, const std::string& description) {
  uint64_t h = 0xcbf29ce484222325ull;
  uint32_t crc = 0;
  h = HashBytes(h, description.data(), description.size());
  constexpr uint64_t kEdge = 1 << 20;
  std::vector<uint8_t> buf;
  for (const auto& path : files) {
    SPOOL_ASSIGN_OR_RETURN(storage::File f, storage::File::Open(path, storage::OpenMode{}));
    const uint64_t size = f.size();
    h = HashBytes(h, &size, sizeof(size));
    const uint64_t head = std::min(size, kEdge);
    buf.resize(head);
    SPOOL_TRY(f.ReadAt(buf.data(), 0, head));
    crc = Crc32c(buf.data(), head, crc);
    const uint64_t tail = std::min(size - head, kEdge);
    buf.resize(tail);
    SPOOL_TRY(f.ReadAt(buf.data(), size - tail, tail));
    crc = Crc32c(buf.data(), tail, crc);
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%016llx%08x", static_cast<unsigned long long>(h), crc);
  return std::string(text);
}

}  // namespace spool::kv
