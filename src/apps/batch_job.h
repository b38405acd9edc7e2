// The file side of `spool batch`: reading an OpenAI Batch input file (JSONL), choosing a
// shard, recovering a partly written output file, and shaping output records. No model
// here, so all of it is unit-tested on its own (tests/batch/).
//
// Input line (OpenAI Batch format; `method` and `url` optional):
//   {"custom_id": "a1", "method": "POST", "url": "/v1/chat/completions",
//    "body": {"model": "...", "messages": [...], "max_tokens": 32, "temperature": 0}}
// `url` picks the body kind; without it, a body with "messages" is a chat request and
// one with "prompt" a completion. Blank lines are skipped (but keep their line number).
//
// Output line, one per input line, in completion order (not input order):
//   {"id": "batch_req_…", "custom_id": "a1",
//    "response": {"status_code": 200, "request_id": "…", "body": {chat.completion…}},
//    "error": null}
// A line that cannot run gets "response": null and
//   "error": {"code": "…", "message": "…", "line": N}
//
// Resume key: a record with a string custom_id and any code but "duplicate_custom_id"
// marks that custom_id done; every other error record (no usable custom_id, or a
// duplicate) marks its input line done. A re-run skips both.
//
// Sharding: `--shard i/N` keeps the lines whose 0-based physical line index ≡ i (mod N),
// blank lines included. Duplicate custom_ids are found over the whole file before the
// shard is chosen, so every shard agrees which occurrence is "the first".
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "server/api_request.h"

namespace spool::apps::batch {

using Json = nlohmann::ordered_json;

struct Shard {
  int64_t index = 0;  // 0 ≤ index < count
  int64_t count = 1;
  bool Contains(int64_t line_index) const { return line_index % count == index; }
};
// "i/N" with 0 ≤ i < N ≤ 1e6; InvalidArgument naming --shard otherwise.
Result<Shard> ParseShard(const std::string& text);

struct LineError {
  std::string code;     // "invalid_json", "invalid_custom_id", "duplicate_custom_id", "invalid_request", ...
  std::string message;
};

// One input line, parsed. Exactly one of `error` / `spec` is meaningful.
struct BatchLine {
  int64_t line = 0;              // 1-based physical line number
  std::string custom_id;         // "" when the line has no usable custom_id
  bool keyed_by_line = false;    // resume tracks this line by number (bad or duplicate custom_id)
  std::optional<LineError> error;
  server::GenerationSpec spec;   // when !error
};

// Parses every non-blank line of `text` (the whole input file). Never fails: a bad
// line becomes a BatchLine with `error` set. Lines over `max_line_bytes` are errors.
std::vector<BatchLine> ParseBatchInput(const std::string& text, size_t max_line_bytes = 64u << 20);

// What an existing output file already holds.
struct ResumeState {
  std::set<std::string> done_ids;
  std::set<int64_t> done_lines;
  int64_t records = 0;
  uint64_t truncated_bytes = 0;  // a torn last line (no '\n') that was cut away
  bool Done(const BatchLine& l) const {
    return l.keyed_by_line ? done_lines.count(l.line) > 0 : done_ids.count(l.custom_id) > 0;
  }
};

// Reads `path` (absent → empty state). A final line without '\n' (a write cut short
// by a kill) is truncated away in the file itself. A complete line that is not a
// result record is an error naming the file and line: the file is then left alone.
Result<ResumeState> RecoverOutput(const std::string& path);

// Appends records to the output file: one write(2) per record, so a kill loses at most
// the record being written and never splits an earlier one.
class OutputWriter {
 public:
  static Result<OutputWriter> Open(const std::string& path, bool fsync_each);
  OutputWriter(OutputWriter&& o) noexcept : fd_(o.fd_), fsync_(o.fsync_), path_(std::move(o.path_)) { o.fd_ = -1; }
  OutputWriter& operator=(OutputWriter&&) = delete;
  ~OutputWriter();
  Status Append(const Json& record);

 private:
  OutputWriter(int fd, bool fsync_each, std::string path) : fd_(fd), fsync_(fsync_each), path_(std::move(path)) {}
  int fd_ = -1;
  bool fsync_ = false;
  std::string path_;
};

// Stable request id for a line: "batch_req_" + 16 hex digits of a hash of custom_id/line.
std::string RequestId(const BatchLine& l);
// {"id", "custom_id", "response": {"status_code": 200, "request_id", "body"}, "error": null}
Json SuccessRecord(const BatchLine& l, const Json& response_body);
// {"id", "custom_id" (null when none), "response": null, "error": {"code", "message", "line"}}
Json ErrorRecord(const BatchLine& l, const LineError& e);

}  // namespace spool::apps::batch
