#include "server/client.h"

#include <httplib.h>

namespace spool::server {

Result<nlohmann::ordered_json> GetJson(const std::string& host, int port, const std::string& path,
                                       const std::string& api_key) {
  httplib::Client cli(host, port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(10, 0);
  httplib::Headers headers;
  if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
  const std::string where = "http://" + host + ":" + std::to_string(port) + path;
  auto res = cli.Get(path.c_str(), headers);
  if (!res) return IoError(where + ": no server answered (" + httplib::to_string(res.error()) + ")");
  if (res->status != 200) return InvalidArgument(where + ": HTTP " + std::to_string(res->status) + ": " + res->body);
  auto j = nlohmann::ordered_json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return InvalidArgument(where + ": the answer is not JSON");
  return j;
}

}  // namespace spool::server
