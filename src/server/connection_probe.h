// Tells a request handler whether its client is still connected, while the handler waits
// for generated tokens (cpp-httplib 0.11 gives handlers no connection check of its own).
//
// The accepted socket is found once per request, by its 4-tuple: the open socket of this
// process whose local and peer addresses are the request's local_addr:local_port and
// remote_addr:remote_port (unique while the connection is open, and the handler runs while
// it is). Afterwards ClientGone() is one non-blocking poll(): the peer closed or reset the
// connection (POLLRDHUP/POLLHUP/POLLERR). A client that only half-closes its sending side
// after the request counts as gone too; HTTP clients (curl, Python's, browsers) do not.
#pragma once

#include <string>

namespace spool::server {

class ConnectionProbe {
 public:
  // fd -1 (never gone) when no socket matches, e.g. an address string in another form.
  static ConnectionProbe Find(const std::string& local_addr, int local_port, const std::string& remote_addr,
                              int remote_port);

  // True once the client has closed or reset the connection. Cheap (one poll, no wait).
  bool ClientGone() const;

 private:
  explicit ConnectionProbe(int fd) : fd_(fd) {}
  int fd_ = -1;  // not owned: the server closes it after the handler returns
};

}  // namespace spool::server
