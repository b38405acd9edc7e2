// libFuzzer entry point for the HTTP request parser (http::ParseRequest: Beast's parser
// plus the transport's limit checks, as the server runs them on every connection).
// Contract under test: any byte string yields a complete request within the limits, a
// need-more, or a refusal status (400/413/414/431); pipelined requests parse one after
// another; never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "base/check.h"
#include "server/http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using spool::server::http::Limits;
  Limits small;  // the first byte picks small limits (to reach them) or the defaults
  small.max_body_bytes = 64;
  small.max_header_bytes = 256;
  small.max_request_line_bytes = 64;
  small.max_header_fields = 4;
  const Limits limits = size > 0 && (data[0] & 1) ? small : Limits{};
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  if (!rest.empty()) rest.remove_prefix(1);
  for (int i = 0; i < 16 && !rest.empty(); ++i) {  // pipelined requests, one by one
    auto r = spool::server::http::ParseRequest(rest, limits);
    SPOOL_CHECK(r.consumed <= rest.size());
    if (r.status != 0) {
      SPOOL_CHECK(r.status == 400 || r.status == 413 || r.status == 414 || r.status == 431);
      break;
    }
    if (r.need_more) break;
    SPOOL_CHECK(r.consumed > 0);
    SPOOL_CHECK(r.request.body.size() <= limits.max_body_bytes);
    SPOOL_CHECK(static_cast<int>(std::distance(r.request.headers.begin(), r.request.headers.end())) <=
                limits.max_header_fields);
    SPOOL_CHECK(!r.request.method.empty() && !r.request.target.empty());
    rest.remove_prefix(r.consumed);
  }
  return 0;
}
