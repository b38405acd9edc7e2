// spool's HTTP/1.1 transport: accept, bounded parsing, deadlines, a connection cap, a
// bounded pool of handler threads, responses (whole or chunked-streamed), keep-alive and
// pipelining. Nothing about models or JSON lives here; server.cc registers handlers.
//
// The API mirrors the subset of cpp-httplib that server.cc used (Request, Response,
// DataSink, Server::Get/Post/Delete, pre-routing/error handlers, logger), so handler code
// ports by renaming `httplib::` to `http::`. Boost.Beast parses and serialises; it is
// confined to http_server.cc.
//
// Threads: one I/O thread runs every socket operation (accept, read, parse, write,
// timers), so a slow or hostile connection costs a socket and a buffer, never a thread.
// A complete request goes to a queue served by `Limits::worker_threads` handler threads;
// handlers may block (generation requests wait on the scheduler). A handler's response is
// written by the I/O thread; a chunked content provider runs on the handler thread and
// each DataSink::write waits for its bytes to be written (or the write deadline).
//
// Requests on one connection are handled one at a time, in order (pipelined requests are
// read from the buffer after the previous response is written).
//
// Refusals, each answered with a status, `Connection: close`, a lingering close (the rest
// of the request is read and dropped for a moment so the client sees the answer, not a
// reset) and a call to the error handler and the logger:
//   400 unparseable request; 413 body over max_body_bytes (Content-Length or chunked);
//   414 request line over max_request_line_bytes; 431 header block over max_header_bytes
//   or more than max_header_fields fields; 408 request not complete within
//   request_timeout_s of its first byte; 503 + Retry-After when max_connections are open
//   or max_queue requests wait for a handler thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace spool::server::http {

struct Limits {
  size_t max_body_bytes = 8u << 20;        // any transfer encoding; larger → 413
  size_t max_header_bytes = 64u << 10;     // request line + header fields; larger → 431
  size_t max_request_line_bytes = 8u << 10;  // method + target + version; larger → 414
  int max_header_fields = 100;             // more → 431
  double request_timeout_s = 30;           // first byte of a request → last byte read; else 408
  double keep_alive_timeout_s = 5;         // idle wait for the next request's first byte; else close
  double write_timeout_s = 60;             // each response write (a whole response or one chunk)
  int max_connections = 512;               // open connections; more → 503 + Retry-After, close
  int worker_threads = 24;                 // handler threads
  int max_queue = 64;                      // complete requests waiting for a handler; more → 503
  int retry_after_s = 2;                   // the Retry-After value of a 503
};

// Case-insensitive header names.
struct HeaderLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, HeaderLess>;

class Connection;  // defined in http_server.cc

struct Request {
  std::string method;        // "GET", "POST", ...
  std::string target;        // as sent: "/v1/models/x?y=1"
  std::string path;          // target without the query, percent-decoded
  std::string version;       // "HTTP/1.1"
  Headers headers;
  std::multimap<std::string, std::string> params;  // the query, decoded ("a=1&b=x+y" → a:1, b:"x y")
  std::string body;          // at most Limits::max_body_bytes
  std::smatch matches;       // the route's regex captures (matched against `path`)
  std::string remote_addr;
  int remote_port = 0;

  bool has_header(const std::string& name) const;
  bool has_param(const std::string& key) const { return params.count(key) > 0; }
  // The first value of query parameter `key`, or "" when absent.
  std::string get_param_value(const std::string& key) const;
  // The first value of `name`, or "" when absent.
  std::string get_header_value(const std::string& name) const;
  // True once the client closed or reset the connection, or the server is stopping. One
  // non-blocking poll(); safe from the handler thread while it waits. A client that
  // half-closes its sending side after the request counts as gone (HTTP clients do not).
  bool is_connection_closed() const;

  std::shared_ptr<Connection> connection_;  // set by the transport
};

// Where a chunked content provider writes; each write is sent as one chunk.
class DataSink {
 public:
  // Blocks until the bytes are written; false when the client is gone, the write
  // deadline passed or the server stops (the provider should then return false).
  bool write(const char* data, size_t n);
  // Ends the response (the last chunk); later writes fail.
  void done();
  // False once a write failed or the client is gone.
  bool is_writable() const;

 private:
  friend class Connection;
  std::shared_ptr<Connection> connection_;
  size_t written_ = 0;
  bool done_ = false;
  bool failed_ = false;
};

// Called again and again until it returns false (failure: the response is cut off) or
// calls sink.done(). `offset` is the number of bytes written so far.
using ContentProvider = std::function<bool(size_t offset, DataSink& sink)>;
// Called once after the provider finished; success is false when the response was cut off.
using ContentProviderResourceReleaser = std::function<void(bool success)>;

struct Response {
  int status = -1;  // -1: 200 after a handler, 404 when no route matched
  Headers headers;
  std::string body;

  void set_header(const std::string& name, const std::string& value);
  std::string get_header_value(const std::string& name) const;
  void set_content(std::string content, const std::string& content_type);
  void set_content(const char* data, size_t n, const std::string& content_type) {
    set_content(std::string(data, n), content_type);
  }
  void set_chunked_content_provider(const std::string& content_type, ContentProvider provider,
                                    ContentProviderResourceReleaser releaser = nullptr);

  ContentProvider content_provider_;
  ContentProviderResourceReleaser content_releaser_;
};

// One request parsed from `bytes` (what a client sent on a connection) under `limits`,
// exactly as the server parses and checks it, without a socket: for tests and the fuzzer.
struct ParseResult {
  int status = 0;          // 0: parsed (or need_more); else the refusal: 400, 413, 414 or 431
  bool need_more = false;  // the bytes end inside the request
  size_t consumed = 0;     // bytes used; a complete request's are followed by the next one's
  bool keep_alive = false; // of a complete request
  Request request;         // of a complete request (no connection: is_connection_closed() is true)
};
ParseResult ParseRequest(std::string_view bytes, const Limits& limits);

class Server {
 public:
  enum class HandlerResponse { Handled, Unhandled };
  using Handler = std::function<void(const Request&, Response&)>;
  using HandlerWithResponse = std::function<HandlerResponse(const Request&, Response&)>;
  using Logger = std::function<void(const Request&, const Response&)>;

  explicit Server(Limits limits = {});
  ~Server();  // Stop()s and waits for Run()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Replaces the limits; call before Bind().
  void set_limits(const Limits& limits);

  // Routes, tried in registration order; `pattern` must match the whole path. Register
  // before Run().
  Server& Get(const std::string& pattern, Handler handler);
  Server& Post(const std::string& pattern, Handler handler);
  Server& Delete(const std::string& pattern, Handler handler);
  // Runs before routing (on the handler thread); Handled skips the route.
  Server& set_pre_routing_handler(HandlerWithResponse handler);
  // Runs for every whole (not chunked) response with status >= 400, including the
  // transport's own refusals (then on the I/O thread, with what is known of the request);
  // Unhandled keeps a default body.
  Server& set_error_handler(HandlerWithResponse handler);
  // Runs once per answered request (after the handler, or after a refusal).
  Server& set_logger(Logger logger);

  // Binds and listens. port 0: any free port. Returns the bound port.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop(): returns after the listener is closed, every connection is
  // closed, and every handler thread has finished its request (handlers see
  // is_connection_closed() == true and DataSink writes fail from Stop() on, so a
  // generation ends within its next poll). Requests still queued are dropped. Run()
  // without a successful Bind() returns an error at once. If Stop() came first, Run()
  // returns at once.
  Status Run();
  // Thread-safe, idempotent, never blocks; callable before, during or after Run().
  void Stop();

  // Counters for tests and metrics.
  int open_connections() const;

  struct Impl;  // defined in http_server.cc

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace spool::server::http
