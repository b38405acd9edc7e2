// The HTTP transport (server/http_server.h): ParseRequest against malformed and hostile
// requests (label `malformed`: runs under ASan/UBSan), and a live http::Server on
// 127.0.0.1 for pipelining, refusals, deadlines, streaming and Stop().
#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace spool::server::http {
namespace {

Limits SmallLimits() {
  Limits l;
  l.max_body_bytes = 1000;
  l.max_header_bytes = 2000;
  l.max_request_line_bytes = 500;
  l.max_header_fields = 10;
  return l;
}

TEST(ParseRequest, SimpleGet) {
  auto r = ParseRequest("GET /v1/models/a%20b?x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n", SmallLimits());
  ASSERT_EQ(r.status, 0);
  ASSERT_FALSE(r.need_more);
  EXPECT_EQ(r.request.method, "GET");
  EXPECT_EQ(r.request.target, "/v1/models/a%20b?x=1");
  EXPECT_EQ(r.request.path, "/v1/models/a b");
  EXPECT_EQ(r.request.get_param_value("x"), "1");
  EXPECT_FALSE(r.request.has_param("y"));
  auto q = ParseRequest("GET /s?name=a+b%21&flag&name=2 HTTP/1.1\r\n\r\n", SmallLimits());
  EXPECT_EQ(q.request.get_param_value("name"), "a b!");
  EXPECT_EQ(q.request.params.count("name"), 2u);
  EXPECT_TRUE(q.request.has_param("flag"));
  EXPECT_EQ(r.request.get_header_value("authorization"), "Bearer k");
  EXPECT_TRUE(r.request.has_header("HOST"));
  EXPECT_FALSE(r.request.has_header("Cookie"));
  EXPECT_TRUE(r.keep_alive);
  EXPECT_TRUE(r.request.is_connection_closed());  // no connection behind it
}

TEST(ParseRequest, ContentLengthBody) {
  auto r = ParseRequest("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", SmallLimits());
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.request.body, "hello");
}

TEST(ParseRequest, ChunkedBodyIsJoined) {
  auto r = ParseRequest("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
                        SmallLimits());
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.request.body, "abcde");
}

TEST(ParseRequest, ChunkedBodyOverTheLimitIs413) {
  std::string req = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) req += "64\r\n" + std::string(100, 'x') + "\r\n";  // 2000 bytes > 1000
  req += "0\r\n\r\n";
  EXPECT_EQ(ParseRequest(req, SmallLimits()).status, 413);
}

TEST(ParseRequest, ContentLengthOverTheLimitIs413WithoutTheBody) {
  EXPECT_EQ(ParseRequest("POST /a HTTP/1.1\r\nContent-Length: 300000000\r\n\r\n", SmallLimits()).status, 413);
}

TEST(ParseRequest, HeaderLimits) {
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 11; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(ParseRequest(many + "\r\n", SmallLimits()).status, 431);
  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(3000, 'a') + "\r\n\r\n";
  EXPECT_EQ(ParseRequest(big, SmallLimits()).status, 431);
  std::string endless = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 1000; ++i) endless += "X: y\r\n";  // never ends, but over the limit
  EXPECT_EQ(ParseRequest(endless, SmallLimits()).status, 431);
}

TEST(ParseRequest, RequestLineLimits) {
  EXPECT_EQ(ParseRequest("GET /" + std::string(600, 'a') + " HTTP/1.1\r\n\r\n", SmallLimits()).status, 414);
  EXPECT_EQ(ParseRequest("GET /" + std::string(5000, 'a'), SmallLimits()).status, 414);  // past the header limit
}

TEST(ParseRequest, MalformedIs400) {
  using namespace std::string_literals;
  for (const std::string& s : {"\x00\x01\x02 nonsense\r\n\r\n"s, "GET\r\n\r\n"s, "GET / HTTP/9.9\r\n\r\n"s,
                               "GET / HTTP/1.1\r\nNo colon here\r\n\r\n"s, "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"s,
                               "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"s,
                               "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"s,
                               "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"s}) {
    EXPECT_EQ(ParseRequest(s, SmallLimits()).status, 400) << s;
  }
}

TEST(ParseRequest, IncompleteNeedsMore) {
  for (const char* part : {"", "GE", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n",
                           "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"}) {
    auto r = ParseRequest(part, SmallLimits());
    EXPECT_EQ(r.status, 0) << part;
    EXPECT_TRUE(r.need_more) << part;
  }
}

TEST(ParseRequest, PipelinedRequestsParseOneAtATime) {
  const std::string a = "GET /one HTTP/1.1\r\n\r\n", b = "POST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
  auto r = ParseRequest(a + b, SmallLimits());
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.request.path, "/one");
  EXPECT_EQ(r.consumed, a.size());
  auto r2 = ParseRequest(std::string_view(a + b).substr(r.consumed), SmallLimits());
  ASSERT_EQ(r2.status, 0);
  EXPECT_EQ(r2.request.path, "/two");
  EXPECT_EQ(r2.request.body, "hi");
}

TEST(ParseRequest, ConnectionCloseAndHttp10) {
  EXPECT_FALSE(ParseRequest("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", SmallLimits()).keep_alive);
  EXPECT_FALSE(ParseRequest("GET / HTTP/1.0\r\n\r\n", SmallLimits()).keep_alive);
}

// ---- a live server ----

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

void Send(int fd, const std::string& s) { ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }

// Everything until the peer closes or `seconds` pass.
std::string ReadAll(int fd, double seconds = 5) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads until `needle` has been seen `count` times (or 5 s).
std::string ReadUntil(int fd, const std::string& needle, int count = 1) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char buf[4096];
  auto seen = [&] {
    int n = 0;
    for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) ++n;
    return n;
  };
  while (seen() < count && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

class LiveServer : public ::testing::Test {
 protected:
  void Start(Limits limits) {
    server_ = std::make_unique<Server>(limits);
    server_->Get("/hello", [](const Request&, Response& res) { res.set_content("hi", "text/plain"); });
    server_->Post("/echo/(\\w+)", [](const Request& req, Response& res) {
      res.set_content(req.matches[1].str() + ":" + req.body, "text/plain");
    });
    server_->Get("/wait", [this](const Request& req, Response& res) {  // until the client leaves
      waiting_ = true;
      while (!req.is_connection_closed()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      noticed_gone_ = true;
      res.set_content("late", "text/plain");
    });
    server_->Get("/stream", [this](const Request&, Response& res) {
      res.set_chunked_content_provider(
          "text/plain",
          [](size_t offset, DataSink& sink) {
            if (offset >= 300) {
              sink.done();
              return true;
            }
            std::string part(100, 'a' + static_cast<char>(offset / 100));
            return sink.write(part.data(), part.size());
          },
          [this](bool ok) { stream_ok_ = ok; });
    });
    server_->set_error_handler([](const Request&, Response& res) {
      if (!res.body.empty()) return Server::HandlerResponse::Unhandled;
      res.set_content("error " + std::to_string(res.status), "text/plain");
      return Server::HandlerResponse::Handled;
    });
    auto port = server_->Bind("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = *port;
    runner_ = std::thread([this] { run_status_ = server_->Run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (runner_.joinable()) runner_.join();
  }

  std::unique_ptr<Server> server_;
  std::thread runner_;
  Status run_status_;
  int port_ = 0;
  std::atomic<bool> waiting_{false}, noticed_gone_{false}, stream_ok_{false};
};

TEST_F(LiveServer, PipelinedRequestsAreAnsweredInOrder) {
  Start(Limits{});
  int fd = Connect(port_);
  Send(fd, "GET /hello HTTP/1.1\r\n\r\nPOST /echo/x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /nope HTTP/1.1\r\n\r\n");
  std::string got = ReadUntil(fd, "HTTP/1.1", 3);
  got += ReadUntil(fd, "error 404");
  ::close(fd);
  size_t a = got.find("\r\n\r\nhi"), b = got.find("x:abc"), c = got.find("404 Not Found");
  ASSERT_NE(a, std::string::npos) << got;
  ASSERT_NE(b, std::string::npos) << got;
  ASSERT_NE(c, std::string::npos) << got;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST_F(LiveServer, RefusalsCarryTheirStatusAndClose) {
  Limits l = SmallLimits();
  l.request_timeout_s = 0.5;
  Start(l);
  struct Case {
    std::string request;
    const char* status;
  } cases[] = {
      {"POST /echo/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"},
      {"POST /echo/x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", "413"},
      {"GET /" + std::string(5000, 'a') + " HTTP/1.1\r\n\r\n", "414"},
      {"GET /hello HTTP/1.1\r\nX: " + std::string(3000, 'a') + "\r\n\r\n", "431"},
      {"GET /hello HTTP/1.1\r\nX-Slow: a", "408"},  // never finished
  };
  for (const auto& c : cases) {
    int fd = Connect(port_);
    Send(fd, c.request);
    std::string got = ReadAll(fd, 3);
    ::close(fd);
    EXPECT_EQ(got.rfind(std::string("HTTP/1.1 ") + c.status, 0), 0u) << c.status << ": " << got.substr(0, 80);
    EXPECT_NE(got.find("Connection: close"), std::string::npos) << c.status;
  }
  int fd = Connect(port_);
  Send(fd, "GET /hello HTTP/1.1\r\n\r\n");
  EXPECT_NE(ReadUntil(fd, "\r\n\r\nhi").find("200 OK"), std::string::npos);
  ::close(fd);
}

TEST_F(LiveServer, FullQueueAnswers503WithRetryAfter) {
  Limits l;
  l.worker_threads = 1;
  l.max_queue = 0;
  Start(l);
  int busy = Connect(port_);
  Send(busy, "GET /wait HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 200 && !waiting_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(waiting_);
  int fd = Connect(port_);
  Send(fd, "GET /hello HTTP/1.1\r\n\r\n");
  std::string got = ReadAll(fd, 3);
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
  EXPECT_NE(got.find("Retry-After: "), std::string::npos) << got;
  ::close(busy);  // the handler notices and returns
  for (int i = 0; i < 200 && !noticed_gone_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(noticed_gone_);
}

TEST_F(LiveServer, StreamsChunks) {
  Start(Limits{});
  int fd = Connect(port_);
  Send(fd, "GET /stream HTTP/1.1\r\n\r\n");
  std::string got = ReadUntil(fd, "0\r\n\r\n");
  ::close(fd);
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  EXPECT_NE(got.find("64\r\n" + std::string(100, 'a') + "\r\n64\r\n" + std::string(100, 'b')), std::string::npos) << got;
  for (int i = 0; i < 100 && !stream_ok_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(stream_ok_);
}

TEST_F(LiveServer, StopEndsRunWhileAHandlerWaits) {
  Start(Limits{});
  int fd = Connect(port_);
  Send(fd, "GET /wait HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 200 && !waiting_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(waiting_);
  auto t0 = std::chrono::steady_clock::now();
  server_->Stop();
  runner_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_TRUE(noticed_gone_);
  EXPECT_TRUE(run_status_.ok());
  ::close(fd);
}

TEST(Server, StopBeforeRunMakesRunReturnAtOnce) {
  Server s;
  ASSERT_TRUE(s.Bind("127.0.0.1", 0).ok());
  s.Stop();
  EXPECT_TRUE(s.Run().ok());
  Server unbound;
  EXPECT_FALSE(unbound.Run().ok());
  EXPECT_FALSE(unbound.Bind("not-an-address", 0).ok());
}

}  // namespace
}  // namespace spool::server::http
