// HTTP/1.1 transport over Boost.Beast + Boost.Asio (see http_server.h for the contract).
//
// Per connection (all on the one I/O thread):
//   WaitFirstByte (keep_alive_timeout) → ReadHeader (request_timeout starts) → limits →
//   [100 Continue] → ReadBody → queue for a handler thread → handler → write → next.
// Any refusal: Refuse(status) → write with Connection: close → Linger → Close.
#include "server/http_server.h"

#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace spool::server::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; plus_is_space for query strings.
std::string Unescape(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && HexDigit(in[i + 1]) >= 0 && HexDigit(in[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(in[i + 1]) * 16 + HexDigit(in[i + 2]));
      i += 2;
    } else {
      out += plus_is_space && in[i] == '+' ? ' ' : in[i];
    }
  }
  return out;
}

// "/a%20b?x=1&y" → path "/a b", params {x: "1", y: ""}.
void SplitTarget(std::string_view target, std::string* path, std::multimap<std::string, std::string>* params) {
  const size_t q = target.find('?');
  *path = Unescape(target.substr(0, q), /*plus_is_space=*/false);
  if (q == std::string_view::npos) return;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (!pair.empty())
      params->emplace(Unescape(pair.substr(0, eq), true), eq == std::string_view::npos ? "" : Unescape(pair.substr(eq + 1), true));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

const char* ReasonText(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

bool IsHttpError(const error_code& ec) { return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category(); }

using Parser = bhttp::request_parser<bhttp::string_body>;

void InitParser(Parser* p, const Limits& L) {
  p->header_limit(static_cast<uint32_t>(std::min<size_t>(L.max_header_bytes, UINT32_MAX)));
  p->body_limit(static_cast<uint64_t>(L.max_body_bytes));
}

// The refusal for a parse error (400/413/414/431). Over the header limit: 414 when Beast
// has not parsed the request line yet (no target), else 431.
int RefusalForParseError(const error_code& ec, const Parser& p) {
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) return p.get().target().empty() ? 414 : 431;
  if (ec == bhttp::error::body_limit) return 413;
  return 400;
}

// The refusal for a parsed header (414/431/413), or 0 when it is within the limits.
int RefusalForHeader(const Parser& p, const Limits& L) {
  const auto& msg = p.get();
  if (msg.method_string().size() + msg.target().size() + 10 > L.max_request_line_bytes) return 414;
  if (std::distance(msg.begin(), msg.end()) > L.max_header_fields) return 431;
  if (auto len = p.content_length(); len && *len > L.max_body_bytes) return 413;
  return 0;
}

// The request (all but the body, unless with_body: then moved out) as a Request.
void FillRequest(Parser& p, Request* req, bool with_body) {
  auto& msg = p.get();
  req->method = std::string(msg.method_string());
  req->target = std::string(msg.target());
  SplitTarget(req->target, &req->path, &req->params);
  req->version = msg.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
  for (const auto& f : msg) req->headers.emplace(std::string(f.name_string()), std::string(f.value()));
  if (with_body) req->body = std::move(msg.body());
}

}  // namespace

ParseResult ParseRequest(std::string_view bytes, const Limits& limits) {
  ParseResult r;
  Parser p;
  InitParser(&p, limits);
  p.eager(true);
  bool header_checked = false;
  while (!p.is_done()) {
    error_code ec;
    const size_t used = p.put(asio::const_buffer(bytes.data() + r.consumed, bytes.size() - r.consumed), ec);
    r.consumed += used;
    if (ec == bhttp::error::need_more) {  // Beast wants more than is left
      if (r.consumed == bytes.size() || used == 0) {
        r.need_more = true;
        return r;
      }
      continue;
    }
    if (ec) {
      r.status = RefusalForParseError(ec, p);
      return r;
    }
    if (p.is_header_done() && !header_checked) {
      header_checked = true;
      if ((r.status = RefusalForHeader(p, limits)) != 0) return r;
    }
    if (used == 0 && !p.is_done()) {
      r.need_more = true;
      return r;
    }
  }
  FillRequest(p, &r.request, /*with_body=*/true);
  r.keep_alive = p.get().keep_alive();
  return r;
}

bool HeaderLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) < std::tolower(static_cast<unsigned char>(y));
  });
}

bool Request::has_header(const std::string& name) const { return headers.find(name) != headers.end(); }

std::string Request::get_param_value(const std::string& key) const {
  auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

std::string Request::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void Response::set_header(const std::string& name, const std::string& value) {
  headers.erase(name);
  headers.emplace(name, value);
}

std::string Response::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void Response::set_content(std::string content, const std::string& content_type) {
  body = std::move(content);
  set_header("Content-Type", content_type);
}

void Response::set_chunked_content_provider(const std::string& content_type, ContentProvider provider,
                                            ContentProviderResourceReleaser releaser) {
  set_header("Content-Type", content_type);
  content_provider_ = std::move(provider);
  content_releaser_ = std::move(releaser);
}

struct Route {
  std::string method;
  std::regex pattern;
  Server::Handler handler;
};

struct Server::Impl {
  explicit Impl(Limits l) : limits(l) {}

  Limits limits;
  std::vector<Route> routes;
  HandlerWithResponse pre_routing, error_handler;
  Logger logger;

  std::atomic<bool> stopping{false};
  std::atomic<int> n_open{0};    // connections within max_connections
  int n_refusing = 0;            // over-cap connections being answered 503 (I/O thread)
  bool bound = false;

  // Run()/Stop() handshake.
  std::mutex run_mu;
  std::condition_variable run_cv;
  bool running = false;

  // Handler threads and their bounded queue.
  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<std::function<void()>> queue;
  int idle_workers = 0;  // each takes one queued task at once, so it is not "waiting"
  std::condition_variable workers_idle_cv;
  bool queue_closed = false;

  // Open connections, for Stop() (I/O thread only).
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;

  // Declared last: destroyed first, before the members that connections refer to.
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::steady_timer accept_retry{ioc};

  void DoAccept();
  void CloseAll();
  bool Enqueue(std::function<void()> task);
  void WorkerLoop();
  void Dispatch(const std::shared_ptr<Connection>& conn, std::shared_ptr<Request> req, bool keep_alive);
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server::Impl* server, tcp::socket socket, bool counted)
      : server_(server),
        socket_(std::move(socket)),
        buffer_(server->limits.max_header_bytes + (64u << 10)),
        timer_(server->ioc),
        counted_(counted) {}

  void Start() {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      remote_addr_ = ep.address().to_string();
      remote_port_ = ep.port();
    }
    socket_.set_option(tcp::no_delay(true), ec);
    if (!counted_) return Refuse(503);
    WaitFirstByte();
  }

  // ---- I/O thread ----
  void Close() {
    Disarm();
    if (closed_.load()) return;
    {
      std::lock_guard<std::mutex> lock(fd_mu_);
      closed_ = true;
      error_code ec;
      socket_.close(ec);
    }
    server_->connections.erase(this);
    if (counted_) server_->n_open.fetch_sub(1);
    else --server_->n_refusing;
  }

  // ---- any thread ----
  bool ClientGone() {
    if (server_->stopping.load()) return true;
    std::lock_guard<std::mutex> lock(fd_mu_);
    if (closed_) return true;
    pollfd p{socket_.native_handle(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) < 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }

  // ---- handler thread: blocking writes through the I/O thread ----
  bool WriteChunkedHeader(const Response& res, bool keep_alive) {
    auto msg = std::make_shared<bhttp::response<bhttp::empty_body>>();
    msg->version(11);
    msg->result(static_cast<unsigned>(res.status));
    for (const auto& [k, v] : res.headers) msg->insert(k, v);
    msg->keep_alive(keep_alive);
    msg->chunked(true);
    return Blocking([this, msg](std::function<void(bool)> done) {
      auto sr = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*msg);
      Arm(server_->limits.write_timeout_s, Expiry::kClose);
      bhttp::async_write_header(socket_, *sr, [self = shared_from_this(), msg, sr, done](error_code ec, size_t) {
        self->Disarm();
        done(!ec);
      });
    });
  }
  // Runs res's content provider until it ends (sink.done()) or fails; true: complete.
  bool Stream(const Response& res, bool keep_alive) {
    bool ok = WriteChunkedHeader(res, keep_alive);
    DataSink sink;
    sink.connection_ = shared_from_this();
    while (ok && !sink.done_) {
      if (!res.content_provider_(sink.written_, sink) || sink.failed_) ok = false;
    }
    if (res.content_releaser_) res.content_releaser_(ok);
    return ok;
  }
  bool WriteChunk(const char* data, size_t n) {
    if (n == 0) return true;  // a zero-size chunk would end the body
    // A copy: the write must not point into the provider's memory should Blocking give up.
    auto bytes = std::make_shared<std::string>(data, n);
    return Blocking([this, bytes](std::function<void(bool)> done) {
      Arm(server_->limits.write_timeout_s, Expiry::kClose);
      asio::async_write(socket_, bhttp::make_chunk(asio::const_buffer(bytes->data(), bytes->size())),
                        [self = shared_from_this(), bytes, done](error_code ec, size_t) {
                          self->Disarm();
                          done(!ec);
                        });
    });
  }
  bool WriteLastChunk() {
    return Blocking([this](std::function<void(bool)> done) {
      Arm(server_->limits.write_timeout_s, Expiry::kClose);
      asio::async_write(socket_, bhttp::make_chunk_last(), [self = shared_from_this(), done](error_code ec, size_t) {
        self->Disarm();
        done(!ec);
      });
    });
  }

  // After a handler: whole responses are written here; streamed ones were written already.
  void Finish(std::shared_ptr<Response> res, bool keep_alive, bool streamed_ok) {
    asio::post(server_->ioc, [self = shared_from_this(), res, keep_alive, streamed_ok] {
      if (self->closed_) return;
      if (res->content_provider_) {
        if (!streamed_ok) return self->Close();
        return self->AfterResponse(keep_alive);
      }
      self->WriteWhole(*res, keep_alive);
    });
  }

 private:
  enum class Expiry { kClose, kCancel };

  template <typename Start>
  bool Blocking(Start start) {
    auto promise = std::make_shared<std::promise<bool>>();
    auto fut = promise->get_future();
    asio::post(server_->ioc, [self = shared_from_this(), start, promise]() mutable {
      if (self->closed_) return promise->set_value(false);
      start([promise](bool ok) { promise->set_value(ok); });
    });
    // The I/O thread runs until every handler thread has finished (Server::Run), so the
    // posted work runs; a destroyed, unrun promise would only mean false.
    if (fut.wait_for(std::chrono::duration<double>(server_->limits.write_timeout_s + 5)) != std::future_status::ready)
      return false;
    try {
      return fut.get();
    } catch (const std::future_error&) {  // the posted work was destroyed unrun
      return false;
    }
  }

  void Arm(double seconds, Expiry what) {
    const uint64_t gen = ++timer_gen_;
    timer_.expires_after(Seconds(seconds));
    timer_.async_wait([self = shared_from_this(), gen, what](error_code ec) {
      if (ec || gen != self->timer_gen_) return;
      if (what == Expiry::kClose) return self->Close();
      self->timed_out_ = true;
      error_code ignored;
      self->socket_.cancel(ignored);
    });
  }
  void Disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void WaitFirstByte() {
    if (server_->stopping) return Close();
    if (buffer_.size() > 0) return ReadHeader();  // pipelined
    Arm(server_->limits.keep_alive_timeout_s, Expiry::kClose);
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) return self->Close();
      self->ReadHeader();
    });
  }

  void ReadHeader() {
    const Limits& L = server_->limits;
    parser_.emplace();
    InitParser(&*parser_, L);
    timed_out_ = false;
    Arm(L.request_timeout_s, Expiry::kCancel);
    bhttp::async_read_header(socket_, buffer_, *parser_,
                             [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  // A read ended with `ec`: answer or close. True when the caller should stop.
  bool ReadFailed(error_code ec) {
    if (!ec) return false;
    if (timed_out_) return Refuse(408), true;
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || !IsHttpError(ec)) return Close(), true;
    Refuse(RefusalForParseError(ec, *parser_));
    return true;
  }

  void OnHeader(error_code ec) {
    if (closed_ || ReadFailed(ec)) return;
    if (int status = RefusalForHeader(*parser_, server_->limits)) return Refuse(status);
    if (parser_->is_done()) return OnRequest();
    if (beast::iequals(parser_->get()[bhttp::field::expect], "100-continue")) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
      bhttp::async_write(socket_, *cont, [self = shared_from_this(), cont](error_code ec, size_t) {
        if (ec || self->closed_) return self->Close();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](error_code ec, size_t) {
      if (self->closed_ || self->ReadFailed(ec)) return;
      self->OnRequest();
    });
  }

  void OnRequest() {
    Disarm();
    auto req = std::make_shared<Request>();
    FillRequest(*parser_, req.get(), /*with_body=*/true);
    req->remote_addr = remote_addr_;
    req->remote_port = remote_port_;
    req->connection_ = shared_from_this();
    const bool keep_alive = parser_->get().keep_alive();
    parser_.reset();
    server_->Dispatch(shared_from_this(), std::move(req), keep_alive);
  }

 public:
  // Answers `status` (the error handler may fill the body), then closes.
  void Refuse(int status) {
    Disarm();
    Request req;
    if (parser_ && parser_->is_header_done()) FillRequest(*parser_, &req, /*with_body=*/false);
    req.remote_addr = remote_addr_;
    req.remote_port = remote_port_;
    Response res;
    res.status = status;
    if (status == 503) res.set_header("Retry-After", std::to_string(server_->limits.retry_after_s));
    if (server_->error_handler) server_->error_handler(req, res);
    if (res.body.empty()) res.set_content(std::string(ReasonText(status)) + "\n", "text/plain");
    if (server_->logger) server_->logger(req, res);
    parser_.reset();
    WriteWhole(res, /*keep_alive=*/false);
  }

 private:
  void WriteWhole(const Response& res, bool keep_alive) {
    auto msg = std::make_shared<bhttp::response<bhttp::string_body>>();
    msg->version(11);
    msg->result(static_cast<unsigned>(res.status));
    for (const auto& [k, v] : res.headers) msg->insert(k, v);
    msg->body() = res.body;
    msg->keep_alive(keep_alive && !server_->stopping);
    msg->prepare_payload();
    Arm(server_->limits.write_timeout_s, Expiry::kClose);
    bhttp::async_write(socket_, *msg, [self = shared_from_this(), msg](error_code ec, size_t) {
      self->Disarm();
      if (ec || self->closed_) return self->Close();
      self->AfterResponse(msg->keep_alive());
    });
  }

  void AfterResponse(bool keep_alive) {
    if (keep_alive && !server_->stopping) return WaitFirstByte();
    Linger();
  }

  // Half-close, then read and drop what the client still sends (at most 1 s, 16 MiB), so
  // that it reads our answer instead of a reset.
  void Linger() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    Arm(1.0, Expiry::kClose);
    linger_left_ = 16u << 20;
    drain_.resize(16384);
    Drain();
  }
  void Drain() {
    socket_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](error_code ec, size_t n) {
      if (ec || self->closed_ || n >= self->linger_left_) return self->Close();
      self->linger_left_ -= n;
      self->Drain();
    });
  }

  Server::Impl* server_;  // outlives every connection (Run waits)
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  asio::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  bool timed_out_ = false;
  const bool counted_;
  std::optional<Parser> parser_;
  std::string remote_addr_;
  int remote_port_ = 0;
  std::vector<char> drain_;
  size_t linger_left_ = 0;
  std::mutex fd_mu_;  // socket_.close() vs ClientGone()'s poll from a handler thread
  std::atomic<bool> closed_{false};
};

bool Request::is_connection_closed() const { return !connection_ || connection_->ClientGone(); }

bool DataSink::write(const char* data, size_t n) {
  if (done_ || failed_ || !connection_) return false;
  if (!connection_->WriteChunk(data, n)) failed_ = true;
  else written_ += n;
  return !failed_;
}

void DataSink::done() {
  if (done_ || failed_ || !connection_) return;
  if (!connection_->WriteLastChunk()) failed_ = true;
  done_ = true;
}

bool DataSink::is_writable() const { return !done_ && !failed_ && connection_ && !connection_->ClientGone(); }

// ---- Server::Impl ----

void Server::Impl::DoAccept() {
  acceptor.async_accept([this](error_code ec, tcp::socket socket) {
    if (stopping || !acceptor.is_open()) return;
    if (ec) {  // e.g. out of file descriptors: try again shortly instead of spinning
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](error_code e) {
        if (!e && !stopping) DoAccept();
      });
      return;
    }
    const bool counted = n_open.load() < limits.max_connections;
    if (!counted && n_refusing >= limits.max_connections) {
      error_code ignored;
      socket.close(ignored);  // far over the cap: not even a 503
    } else {
      auto conn = std::make_shared<Connection>(this, std::move(socket), counted);
      if (counted) n_open.fetch_add(1);
      else ++n_refusing;
      connections.emplace(conn.get(), conn);
      conn->Start();
    }
    DoAccept();
  });
}

void Server::Impl::CloseAll() {
  error_code ec;
  acceptor.close(ec);
  accept_retry.cancel();
  std::vector<std::shared_ptr<Connection>> open;
  for (auto& [p, weak] : connections)
    if (auto c = weak.lock()) open.push_back(c);
  for (auto& c : open) c->Close();
  connections.clear();
}

bool Server::Impl::Enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(queue_mu);
    if (queue_closed || static_cast<int>(queue.size()) >= limits.max_queue + idle_workers) return false;
    queue.push_back(std::move(task));
  }
  queue_cv.notify_one();
  return true;
}

void Server::Impl::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(queue_mu);
      ++idle_workers;
      workers_idle_cv.notify_all();
      queue_cv.wait(lock, [&] { return queue_closed || !queue.empty(); });
      --idle_workers;
      if (queue_closed) return;
      task = std::move(queue.front());
      queue.pop_front();
    }
    task();
    // The task holds the connection; drop it on the I/O thread, which owns sockets.
    asio::post(ioc, [t = std::move(task)] {});
  }
}

void Server::Impl::Dispatch(const std::shared_ptr<Connection>& conn, std::shared_ptr<Request> req, bool keep_alive) {
  auto task = [this, conn, req, keep_alive] {
    auto res = std::make_shared<Response>();
    bool handled = false, routed = false;
    try {
      if (pre_routing && pre_routing(*req, *res) == HandlerResponse::Handled) handled = true;
      for (size_t i = 0; !handled && i < routes.size(); ++i) {
        if (routes[i].method != req->method || !std::regex_match(req->path, req->matches, routes[i].pattern)) continue;
        routed = true;
        routes[i].handler(*req, *res);
        break;
      }
    } catch (const std::exception& e) {  // a handler bug must not take the server down
      *res = Response();
      res->status = 500;
      res->set_content(std::string("Internal server error: ") + e.what() + "\n", "text/plain");
    }
    if (res->status == -1) res->status = (handled || routed) ? 200 : 404;
    if (!res->content_provider_ && res->status >= 400 && error_handler) error_handler(*req, *res);
    if (logger) logger(*req, *res);
    const bool ok = res->content_provider_ ? conn->Stream(*res, keep_alive) : true;
    conn->Finish(res, keep_alive, ok);
  };
  if (!Enqueue(std::move(task))) conn->Refuse(503);
}

// ---- Server ----

Server::Server(Limits limits) : impl_(std::make_shared<Impl>(limits)) {}

Server::~Server() {
  Stop();
  std::unique_lock<std::mutex> lock(impl_->run_mu);
  impl_->run_cv.wait(lock, [&] { return !impl_->running; });
}

void Server::set_limits(const Limits& limits) { impl_->limits = limits; }

Server& Server::Get(const std::string& pattern, Handler handler) {
  impl_->routes.push_back({"GET", std::regex(pattern), std::move(handler)});
  return *this;
}
Server& Server::Post(const std::string& pattern, Handler handler) {
  impl_->routes.push_back({"POST", std::regex(pattern), std::move(handler)});
  return *this;
}
Server& Server::Delete(const std::string& pattern, Handler handler) {
  impl_->routes.push_back({"DELETE", std::regex(pattern), std::move(handler)});
  return *this;
}
Server& Server::set_pre_routing_handler(HandlerWithResponse handler) {
  impl_->pre_routing = std::move(handler);
  return *this;
}
Server& Server::set_error_handler(HandlerWithResponse handler) {
  impl_->error_handler = std::move(handler);
  return *this;
}
Server& Server::set_logger(Logger logger) {
  impl_->logger = std::move(logger);
  return *this;
}

int Server::open_connections() const { return impl_->n_open.load(); }

Result<int> Server::Bind(const std::string& host, int port) {
  Impl& s = *impl_;
  error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return InvalidArgument("--host: '" + host + "' is not an IP address");
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return IoError("cannot bind to " + host + ":" + std::to_string(port) + ": " + ec.message() +
                   (port != 0 ? " (in use, or a bad --host?)" : ""));
  s.bound = true;
  // Room for every allowed connection (and as many being refused) plus the model's files.
  rlimit rl{};
  const rlim_t want = static_cast<rlim_t>(2 * s.limits.max_connections + 256);
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<int>(s.acceptor.local_endpoint(ec).port());
}

Status Server::Run() {
  Impl& s = *impl_;
  if (!s.bound) return InvalidArgument("http::Server::Run before a successful Bind");
  {
    std::lock_guard<std::mutex> lock(s.run_mu);
    if (s.running) return InvalidArgument("http::Server::Run called twice");
    if (s.stopping) return Status::Ok();
    s.running = true;
  }
  // Handler threads first, all waiting before the first accept (so max_queue counts
  // requests that really wait).
  const int n_workers = std::max(1, s.limits.worker_threads);
  std::vector<std::thread> workers;
  for (int i = 0; i < n_workers; ++i) workers.emplace_back([&s] { s.WorkerLoop(); });
  {
    std::unique_lock<std::mutex> lock(s.queue_mu);
    s.workers_idle_cv.wait(lock, [&] { return s.idle_workers == n_workers; });
  }
  auto guard = asio::make_work_guard(s.ioc);
  asio::post(s.ioc, [&s] { s.DoAccept(); });
  std::thread io([&s] { s.ioc.run(); });
  {
    std::unique_lock<std::mutex> lock(s.run_mu);
    s.run_cv.wait(lock, [&] { return s.stopping.load(); });
  }
  // Stop() has posted CloseAll; requests still queued are dropped (on the I/O thread,
  // which owns their sockets), running handlers see a closed connection and finish.
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(s.queue_mu);
    s.queue_closed = true;
    dropped.swap(s.queue);
  }
  s.queue_cv.notify_all();
  asio::post(s.ioc, [d = std::move(dropped)] {});
  for (auto& w : workers) w.join();
  std::promise<void> barrier;
  asio::post(s.ioc, [&] {
    s.CloseAll();
    barrier.set_value();
  });
  barrier.get_future().wait();
  guard.reset();
  s.ioc.stop();
  io.join();
  {
    std::lock_guard<std::mutex> lock(s.run_mu);
    s.running = false;
  }
  s.run_cv.notify_all();
  return Status::Ok();
}

void Server::Stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.run_mu);
    if (s.stopping.exchange(true)) return;
  }
  s.run_cv.notify_all();
  asio::post(s.ioc, [&s] { s.CloseAll(); });
}

}  // namespace spool::server::http
