// A minimal HTTP client over libcurl for the hub protocol: HEAD without following
// redirects (the hub's metadata lives on the first response), GET into a string, and
// GET streamed into a sink with an optional Range start. TLS, proxies ($https_proxy)
// and redirects are libcurl's. A custom Authorization header is never sent to a
// different host after a redirect (libcurl's rule), so $HF_TOKEN does not leak to a CDN.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace spool::hub {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; final response only
  std::string body;                            // GetString, or the error body of a streamed GET
  std::string url;                             // effective URL after redirects
};

// Receives the body of a streamed GET. `start(status, headers)` is called once the
// final response's headers are in (before any body byte) and returns false to refuse;
// `data` returns false to abort the transfer.
struct BodySink {
  std::function<bool(const HttpResponse& head)> start;
  std::function<bool(const char* data, size_t n)> data;
};

class HttpClient {
 public:
  // `extra_headers`: e.g. {"Authorization: Bearer ..."}.
  explicit HttpClient(std::vector<std::string> extra_headers);

  // Transport failures (DNS, refused, TLS, cut connection) are IoError naming the URL;
  // HTTP error statuses are returned as responses, not as errors.
  Result<HttpResponse> Head(const std::string& url) const;
  Result<HttpResponse> GetString(const std::string& url, size_t max_bytes = 64 << 20) const;
  // Streams the body of a 2xx response into `sink` (others go to response.body,
  // truncated to 64 KiB). `range_start` > 0 sends "Range: bytes=N-".
  Result<HttpResponse> GetStream(const std::string& url, uint64_t range_start, const BodySink& sink) const;

 private:
  std::vector<std::string> extra_headers_;
};

// Percent-encodes one path segment (keeps unreserved characters).
std::string UrlEncodeSegment(const std::string& s);
// Encodes each '/'-separated segment of a path, keeping the slashes.
std::string UrlEncodePath(const std::string& path);

}  // namespace spool::hub
