#include "apps/batch_job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "base/json_input.h"
#include "base/strings.h"
#include "server/api_response.h"

namespace spool::apps::batch {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string ApiErrorText(const server::ApiError& e) {
  return e.param.empty() ? e.message : e.message + " (param: body." + e.param + ")";
}

// Fills l.spec from the parsed line `j` (custom_id already taken); sets l.error on failure.
void ParseRequest(const Json& j, BatchLine* l) {
  auto fail = [&](std::string code, std::string message) { l->error = LineError{std::move(code), std::move(message)}; };
  if (auto m = j.find("method"); m != j.end() && !m->is_null()) {
    if (!m->is_string() || m->get<std::string>() != "POST")
      return fail("invalid_request", "'method' must be \"POST\", got " + m->dump());
  }
  auto body = j.find("body");
  if (body == j.end()) return fail("invalid_request", "missing 'body' (expected an object with 'messages' or 'prompt')");
  if (!body->is_object()) return fail("invalid_request", "'body' must be an object, got " + server::JsonTypeName(*body));
  server::ApiKind kind;
  auto url = j.find("url");
  if (url != j.end() && !url->is_null()) {
    if (!url->is_string()) return fail("invalid_request", "'url' must be a string, got " + server::JsonTypeName(*url));
    const std::string u = url->get<std::string>();
    if (u == "/v1/chat/completions") kind = server::ApiKind::kOpenAIChat;
    else if (u == "/v1/completions") kind = server::ApiKind::kOpenAICompletion;
    else return fail("invalid_url", "unsupported 'url' \"" + u + "\" (expected /v1/chat/completions or /v1/completions)");
  } else if (body->contains("messages")) {
    kind = server::ApiKind::kOpenAIChat;
  } else if (body->contains("prompt")) {
    kind = server::ApiKind::kOpenAICompletion;
  } else {
    return fail("invalid_request", "'body' has neither 'messages' nor 'prompt'");
  }
  if (auto e = server::ParseOpenAIRequest(*body, kind, &l->spec)) return fail("invalid_request", ApiErrorText(*e));
  l->spec.stream = false;  // a batch result is always one whole response
}

}  // namespace

Result<Shard> ParseShard(const std::string& text) {
  const size_t slash = text.find('/');
  Shard s;
  if (slash == std::string::npos || !ParseInt(std::string_view(text).substr(0, slash), &s.index) ||
      !ParseInt(std::string_view(text).substr(slash + 1), &s.count) || s.count < 1 || s.count > 1000000 ||
      s.index >= s.count)
    return InvalidArgument("--shard: expected i/N with 0 <= i < N <= 1000000, got '" + text + "'");
  return s;
}

std::vector<BatchLine> ParseBatchInput(const std::string& text, size_t max_line_bytes) {
  std::vector<BatchLine> out;
  std::map<std::string, int64_t> first_line;  // custom_id → line of its first occurrence
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view raw(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (Trim(raw).empty()) continue;
    BatchLine l;
    l.line = line_no;
    l.keyed_by_line = true;
    if (raw.size() > max_line_bytes) {
      l.error = LineError{"line_too_long", "line is " + std::to_string(raw.size()) + " bytes (at most " +
                                               std::to_string(max_line_bytes) + ")"};
      out.push_back(std::move(l));
      continue;
    }
    JsonParseFailure failure = JsonParseFailure::kNone;
    auto parsed = ParseJsonBounded(raw, "line", JsonLimits{}, &failure);
    Json j = parsed.ok() ? std::move(parsed).value() : Json();
    if (!parsed.ok()) {
      l.error = LineError{"invalid_json", failure == JsonParseFailure::kSyntax ? "line is not valid JSON" : parsed.status().message()};
    } else if (!j.is_object()) {
      l.error = LineError{"invalid_json", "line must be a JSON object, got " + server::JsonTypeName(j)};
    } else if (auto c = j.find("custom_id"); c == j.end() || !c->is_string() || c->get<std::string>().empty()) {
      l.error = LineError{"invalid_custom_id", c == j.end() ? "missing 'custom_id' (expected a non-empty string)"
                                                            : "'custom_id' must be a non-empty string, got " +
                                                                  (c->is_string() ? std::string("\"\"") : server::JsonTypeName(*c))};
    } else {
      l.custom_id = c->get<std::string>();
      auto [it, inserted] = first_line.emplace(l.custom_id, line_no);
      if (!inserted) {
        l.error = LineError{"duplicate_custom_id",
                            "custom_id \"" + l.custom_id + "\" already used on line " + std::to_string(it->second)};
      } else {
        l.keyed_by_line = false;
        ParseRequest(j, &l);
      }
    }
    out.push_back(std::move(l));
  }
  return out;
}

Result<ResumeState> RecoverOutput(const std::string& path) {
  ResumeState st;
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) {
    if (errno == ENOENT) return st;
    return IoError(path + ": " + std::strerror(errno));
  }
  SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  const size_t last_nl = text.rfind('\n');
  const size_t complete = last_nl == std::string::npos ? 0 : last_nl + 1;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < complete) {
    const size_t nl = text.find('\n', pos);
    std::string_view raw(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (Trim(raw).empty()) continue;
    const std::string where = path + " line " + std::to_string(line_no);
    auto parsed = ParseJsonBounded(raw, where);
    Json j = parsed.ok() ? std::move(parsed).value() : Json();
    if (!parsed.ok() || !j.is_object() || !j.contains("custom_id") || !j.contains("error"))
      return InvalidArgument(where + " is not a batch result record (expected an object with custom_id and error); "
                             "refusing to append to it");
    const Json& cid = j["custom_id"];
    const Json& err = j["error"];
    const bool dup = err.is_object() && err.value("code", Json()) == Json("duplicate_custom_id");
    if (cid.is_string() && !dup) {
      st.done_ids.insert(cid.get<std::string>());
    } else {
      const Json line = err.is_object() ? err.value("line", Json()) : Json();
      if (!line.is_number_integer())
        return InvalidArgument(where + ": an error record without a custom_id needs error.line (an integer)");
      st.done_lines.insert(line.get<int64_t>());
    }
    ++st.records;
  }
  if (complete < text.size()) {
    if (::truncate(path.c_str(), static_cast<off_t>(complete)) != 0)
      return IoError(path + ": cannot truncate the torn last line: " + std::strerror(errno));
    st.truncated_bytes = text.size() - complete;
  }
  return st;
}

Result<OutputWriter> OutputWriter::Open(const std::string& path, bool fsync_each) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(path + ": cannot open for appending: " + std::strerror(errno));
  return OutputWriter(fd, fsync_each, path);
}

OutputWriter::~OutputWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status OutputWriter::Append(const Json& record) {
  std::string line = server::Dump(record);
  line += '\n';
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(path_ + ": write failed: " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (fsync_ && ::fdatasync(fd_) != 0) return IoError(path_ + ": fdatasync failed: " + std::strerror(errno));
  return Status::Ok();
}

std::string RequestId(const BatchLine& l) {
  const uint64_t h = l.keyed_by_line ? Fnv1a("line:" + std::to_string(l.line)) : Fnv1a("id:" + l.custom_id);
  char buf[32];
  std::snprintf(buf, sizeof buf, "batch_req_%016llx", static_cast<unsigned long long>(h));
  return buf;
}

Json SuccessRecord(const BatchLine& l, const Json& response_body) {
  Json r;
  r["id"] = RequestId(l);
  r["custom_id"] = l.custom_id;
  r["response"] = Json{{"status_code", 200}, {"request_id", RequestId(l)}, {"body", response_body}};
  r["error"] = nullptr;
  return r;
}

Json ErrorRecord(const BatchLine& l, const LineError& e) {
  Json r;
  r["id"] = RequestId(l);
  r["custom_id"] = l.custom_id.empty() ? Json() : Json(l.custom_id);
  r["response"] = nullptr;
  r["error"] = Json{{"code", e.code}, {"message", e.message}, {"line", l.line}};
  return r;
}

}  // namespace spool::apps::batch
