// Recoverable failures as values (STYLE.md habit 2).
//
// A Status is either ok or carries a human-readable message that names the
// file/field and says expected vs actual. Result<T> holds a T or a failed Status.
// Both are [[nodiscard]]: ignoring a failure is a compile warning.
// No exception crosses a part's boundary; use these instead.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "base/check.h"

namespace spool {

// Broad failure classes, so callers (e.g. the HTTP server) can map them to codes.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // bad user input: flag, request, prompt
  kInvalidFile,      // malformed or untrusted file contents
  kNotFound,         // file / model / session does not exist
  kUnsupported,      // valid input we do not handle (architecture, dtype, feature)
  kIo,               // read/write failed, disk full
  kResourceExhausted,// budget too small, context full
  kCancelled,
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {
    SPOOL_CHECK(code != ErrorCode::kOk);
  }
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>" (for adding a file name etc.).
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return Status(ErrorCode::kInvalidArgument, std::move(m)); }
inline Status InvalidFile(std::string m) { return Status(ErrorCode::kInvalidFile, std::move(m)); }
inline Status NotFound(std::string m) { return Status(ErrorCode::kNotFound, std::move(m)); }
inline Status Unsupported(std::string m) { return Status(ErrorCode::kUnsupported, std::move(m)); }
inline Status IoError(std::string m) { return Status(ErrorCode::kIo, std::move(m)); }
inline Status ResourceExhausted(std::string m) { return Status(ErrorCode::kResourceExhausted, std::move(m)); }
inline Status Cancelled(std::string m) { return Status(ErrorCode::kCancelled, std::move(m)); }
inline Status InternalError(std::string m) { return Status(ErrorCode::kInternal, std::move(m)); }

// Holds either a value or a failed Status. Accessing value() of a failed Result aborts.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    SPOOL_CHECK_MSG(!std::get<Status>(v_).ok(), "Result constructed from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & {
    SPOOL_CHECK_MSG(ok(), status().message().c_str());
    return std::get<T>(v_);
  }
  const T& value() const& {
    SPOOL_CHECK_MSG(ok(), status().message().c_str());
    return std::get<T>(v_);
  }
  T&& value() && {
    SPOOL_CHECK_MSG(ok(), status().message().c_str());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace spool

// Early-return helpers. SPOOL_TRY(expr) returns the Status if it failed.
// SPOOL_ASSIGN_OR_RETURN(decl, expr) unwraps a Result or returns its Status.
#define SPOOL_TRY(expr)                        \
  do {                                         \
    ::spool::Status _st = (expr);              \
    if (!_st.ok()) return _st;                 \
  } while (0)

#define SPOOL_CONCAT_INNER(a, b) a##b
#define SPOOL_CONCAT(a, b) SPOOL_CONCAT_INNER(a, b)
#define SPOOL_ASSIGN_OR_RETURN(decl, expr) \
  SPOOL_ASSIGN_OR_RETURN_IMPL(SPOOL_CONCAT(_res_, __LINE__), decl, expr)
#define SPOOL_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  decl = std::move(tmp).value()
