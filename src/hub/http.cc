#include "hub/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace spool::hub {

namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  HttpResponse resp;
  const BodySink* sink = nullptr;  // null: collect the body into resp.body
  size_t max_body = 0;
  bool started = false;
  bool refused = false;      // sink.start said no
  bool too_large = false;
  bool sink_failed = false;  // sink.data said no
  long current_status = 0;
};

size_t OnHeader(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  std::string line(buf, len);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect or 100): start over
    t->resp.headers.clear();
    size_t sp = line.find(' ');
    t->current_status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t v = colon + 1;
  while (v < line.size() && line[v] == ' ') ++v;
  t->resp.headers[name] = line.substr(v);
  return len;
}

size_t OnBody(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  bool success = t->current_status >= 200 && t->current_status < 300;
  if (t->sink && success) {
    if (!t->started) {
      t->started = true;
      t->resp.status = t->current_status;
      if (t->sink->start && !t->sink->start(t->resp)) {
        t->refused = true;
        return 0;
      }
    }
    if (!t->sink->data(buf, len)) {
      t->sink_failed = true;
      return 0;
    }
    return len;
  }
  size_t room = t->max_body > t->resp.body.size() ? t->max_body - t->resp.body.size() : 0;
  if (len > room) {
    if (!t->sink) {
      t->too_large = true;
      return 0;
    }
    len = room;  // error bodies are only for messages: keep the head
    t->resp.body.append(buf, len);
    return size * n;
  }
  t->resp.body.append(buf, len);
  return len;
}

Result<HttpResponse> Perform(const std::string& url, const std::vector<std::string>& extra_headers, bool head,
                             bool follow, uint64_t range_start, const BodySink* sink, size_t max_body) {
  GlobalInitOnce();
  CURL* curl = curl_easy_init();
  if (!curl) return InternalError("curl_easy_init failed");
  Transfer t;
  t.sink = sink;
  t.max_body = max_body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* hdrs = nullptr;
  for (const auto& h : extra_headers) hdrs = curl_slist_append(hdrs, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "spool/0.1");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);  // abort after 60 s without a byte
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  if (head) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  std::string range;
  if (range_start > 0) {
    range = std::to_string(range_start) + "-";
    curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.resp.status);
  char* eff = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff) t.resp.url = eff;
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(curl);
  if (t.refused) return Cancelled(url + ": response refused");
  if (t.sink_failed) return IoError(url + ": could not store the downloaded data");
  if (t.too_large) return IoError(url + ": response larger than " + std::to_string(max_body) + " bytes");
  if (rc == CURLE_OK && sink && !t.started && t.resp.status >= 200 && t.resp.status < 300 && sink->start &&
      !sink->start(t.resp))  // an empty body: the sink still learns the response
    return Cancelled(url + ": response refused");
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    return IoError(url + ": " + why);
  }
  return std::move(t.resp);
}

}  // namespace

HttpClient::HttpClient(std::vector<std::string> extra_headers) : extra_headers_(std::move(extra_headers)) {}

Result<HttpResponse> HttpClient::Head(const std::string& url) const {
  return Perform(url, extra_headers_, /*head=*/true, /*follow=*/false, 0, nullptr, 0);
}

Result<HttpResponse> HttpClient::GetString(const std::string& url, size_t max_bytes) const {
  return Perform(url, extra_headers_, false, true, 0, nullptr, max_bytes);
}

Result<HttpResponse> HttpClient::GetStream(const std::string& url, uint64_t range_start, const BodySink& sink) const {
  return Perform(url, extra_headers_, false, true, range_start, &sink, 64 << 10);
}

std::string UrlEncodeSegment(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UrlEncodePath(const std::string& path) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    out += UrlEncodeSegment(path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    out.push_back('/');
    start = slash + 1;
  }
  return out;
}

}  // namespace spool::hub
