// Sessions on disk: a sequence's tokens, its KV cache and the settings needed to
// continue it later, in one file per session (DESIGN.md, "A restored session continues
// exactly as the uninterrupted run would have").
//
// File format (version 3, little-endian):
//   [0, 8)    magic "SPOOLSES"
//   [8, 12)   u32 version = 3 (version 1 files, which have no live_from, and version 2
//             files, which have no state checkpoints, still load)
//   [12, 16)  u32 CRC-32C of the metadata bytes
//   [16, 24)  u64 metadata length
//   [24, 28)  u32 CRC-32C of bytes [0, 24)
//   [28, 32)  u32 zero
//   metadata: UTF-8 JSON (SessionInfo's fields)
//   records, layer-major: for each layer, the tokens from live_from[layer] on in runs of
//     record_tokens (the last run shorter): K rows [rows, row_bytes], V rows [rows,
//     row_bytes], u32 CRC-32C seeded with (layer, record index = first token /
//     record_tokens) so misplaced records are caught too. live_from[layer] (a multiple
//     of record_tokens) is 0 except for sliding-window layers, whose released rows
//     (before the window of the next query) are not stored; a load checks that the
//     model's window needs none of them.
//   (state_bytes > 0) the recurrent-state block: state_bytes bytes (kv::RecurrentState's
//     f32 values, models with linear-attention layers) + u32 CRC-32C seeded with the tag
//     (2^64 − 1, state_bytes); metadata field "state_bytes", absent in older files = 0
//   (version 3, state_bytes > 0) the state's checkpoints (kv::RecurrentState: the
//     latest chunk boundaries and turn ends, at most kMaxSessionCheckpoints), listed in
//     the metadata field "checkpoints" as [{"n_tokens": N, "turn": bool}, ...] (N
//     strictly ascending in [1, n_tokens]; absent = none): one block each in that
//     order, state_bytes bytes + u32 CRC-32C seeded with (2^64 − 2, index, N,
//     state_bytes), so a block moved or swapped is caught too
//   trailer "SPOOLEND"
// The file size follows from the metadata; anything else is a truncated or padded file.
//
// Crash safety: SaveSession writes NAME.session.tmp.PID, fsyncs it, renames it over
// NAME.session and fsyncs the directory. A process killed at any point leaves either
// the previous session or the new one, never a mix; stale temporaries of dead
// processes are removed by the next save.
//
// Trust: session files are untrusted input. Every size, count, checksum and the model
// fingerprint are checked; failures are kInvalidFile (or kUnsupported for a newer
// version) naming the file and saying expected vs actual. Nothing is used before it
// has been checked.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "kv/kv_cache.h"

namespace spool::kv {

inline constexpr uint32_t kSessionVersion = 3;
// State checkpoints a session may list (RecurrentLayout keeps 2 + 2 by default).
inline constexpr int64_t kMaxSessionCheckpoints = 16;

// A recurrent-state checkpoint listed in a session (its block follows the state block).
struct SessionCheckpoint {
  int64_t n_tokens = 0;
  bool turn = false;  // a turn end (RecurrentState::KeepCheckpoint), else a chunk boundary
};

struct SessionInfo {
  std::string model;        // the model as the user named it (informational)
  std::string fingerprint;  // identity of the model's files and config (see ModelFingerprint)
  DType kv_dtype = DType::kBF16;
  int64_t n_layer = 0, n_head_kv = 0, head_dim = 0;
  int64_t record_tokens = 0;      // tokens per KV record
  uint64_t state_bytes = 0;       // recurrent-state block after the KV records (0: none)
  std::vector<SessionCheckpoint> checkpoints;  // state checkpoints, a block of state_bytes each
  std::vector<int32_t> tokens;    // tokens whose K/V are stored, in order
  std::vector<int32_t> pending;   // generated but not yet fed (their K/V are not stored)
  std::vector<int64_t> live_from; // [n_layer]: first stored position per layer (SaveSession fills it)
  nlohmann::ordered_json settings = nlohmann::ordered_json::object();  // informational (ctx, sampling, ...)
  int64_t created_unix = 0;
  uint64_t file_bytes = 0;        // filled in by ReadSessionInfo

  uint64_t row_bytes() const { return static_cast<uint64_t>(n_head_kv * head_dim) * (kv_dtype == DType::kF32 ? 4 : 2); }
};

// Names are 1..128 characters of [A-Za-z0-9._-], not starting with '.'.
Status ValidateSessionName(const std::string& name);
// $SPOOL_HOME/sessions (kv::SpoolHome()).
std::string DefaultSessionsDir();
std::string SessionPath(const std::string& dir, const std::string& name);  // dir/NAME.session

// Writes `kv`'s first info.tokens.size() tokens (kv.n_tokens() must equal it) with
// info's metadata, atomically replacing `path`. Errors: kResourceExhausted when the
// disk fills (ENOSPC), kIo otherwise; the previous file is left untouched either way.
// Test hook: environment SPOOL_TEST_SESSION_SAVE_PAUSE_S=N sleeps N seconds halfway
// through the records (the kill -9 test uses it to die mid-save deterministically).
// `state`: the recurrent-state block, info.state_bytes bytes (empty when 0);
// `checkpoints`: one block of info.state_bytes bytes per info.checkpoints entry.
Status SaveSession(const std::string& path, const SessionInfo& info, SequenceKv& kv,
                   std::span<const uint8_t> state = {},
                   std::span<const std::span<const uint8_t>> checkpoints = {});

// Reads and validates the header and metadata and the file size (not the records'
// checksums: LoadSessionKv checks those as it reads them).
Result<SessionInfo> ReadSessionInfo(const std::string& path);

// Reads every record of `path` (as described by info, from ReadSessionInfo) into the
// empty cache `kv`, checking each checksum before its rows are used, then commits.
// On failure kv may hold partial rows: discard it. `state` (not null) receives the
// recurrent-state block (info.state_bytes bytes), checked against its checksum;
// `checkpoints` (not null) one block per info.checkpoints entry, each checked.
Status LoadSessionKv(const std::string& path, const SessionInfo& info, SequenceKv& kv,
                     std::vector<uint8_t>* state = nullptr,
                     std::vector<std::vector<uint8_t>>* checkpoints = nullptr);
// Checks every record's checksum and the trailer without loading anything.
Status VerifySession(const std::string& path, const SessionInfo& info);

struct SessionEntry {
  std::string name, path;
  Result<SessionInfo> info = InvalidFile("unread");  // the session or why it is unusable
};
// Every NAME.session in dir, sorted by name; an absent dir is an empty list.
Result<std::vector<SessionEntry>> ListSessions(const std::string& dir);

// Identity of a model for sessions: sizes plus the first and last MiB of each file,
// and `description` (the caller's config and tensor index). Hex string.
Result<std::string> ModelFingerprint(const std::vector<std::string>& files, const std::string& description);

}  // namespace spool::kv
