// A minimal HTTP client for talking to a running `spool serve` (used by `spool ps`).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace spool::server {

// GET http://host:port/path and parse the JSON body. IoError naming the address when
// nothing answers; InvalidArgument when the status is not 200 or the body is not JSON.
Result<nlohmann::ordered_json> GetJson(const std::string& host, int port, const std::string& path,
                                       const std::string& api_key = "");

}  // namespace spool::server
