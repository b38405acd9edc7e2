// spool serve MODEL: the OpenAI/Ollama-compatible HTTP server (server/server.h).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <atomic>
#include <thread>
#include <vector>

#include "apps/command.h"
#include "apps/common_flags.h"
#include "apps/model_names.h"
#include "base/strings.h"
#include "server/server.h"

namespace spool::apps {
namespace {

int RunServe(int argc, char** argv) {
  ArgParser p("spool serve", "MODEL");
  EngineFlags ef = AddEngineFlags(p);
  std::string& host = p.String("--host", "127.0.0.1", "address to listen on");
  int64_t& port = p.Int("--port", 8080, "TCP port (0: any free port)");
  std::vector<std::string>& api_keys = p.List(
      "--api-key", "require 'Authorization: Bearer KEY'; repeat for several keys, each its own tenant (visible in ps: prefer "
                   "$SPOOL_API_KEY or --api-key-file)");
  std::string& api_key_file = p.String("--api-key-file", "", "read API keys from this file (one per line)");
  int64_t& parallel = p.Int("-np,--parallel", 4, "sequences decoded together in one step");
  int64_t& cache_entries = p.Int("--cache-entries", 4, "finished sequences kept for prefix reuse (0: off)");
  bool& shared_cache = p.Flag("--shared-prefix-cache", "let every client reuse every cached prefix (default: only its own API key and session)");
  std::string& session_dir = p.String("--session-dir", "", "where sessions are kept on disk (default: $SPOOL_HOME/server-sessions)");
  std::string& session_max_disk = p.String("--session-max-disk", "4G", "disk for sessions; least recently used go first (0: unlimited)");
  bool& no_disk_sessions = p.Flag("--no-disk-sessions", "keep sessions in RAM only (lost on restart)");
  std::string& alias = p.String("--alias", "", "model id that clients use (default: derived from MODEL)");
  std::string& max_body = p.String("--max-body", "8M", "largest request body accepted (any transfer encoding)");
  std::string& max_header = p.String("--max-header-bytes", "64K", "largest request line + header block (431/414 beyond)");
  int64_t& max_connections = p.Int("--max-connections", 512, "open connections; more get 503 + Retry-After");
  int64_t& max_queue = p.Int("--max-queue", 64, "requests waiting for an HTTP thread; more get 503 + Retry-After");
  double& request_timeout = p.Float("--request-timeout", 30, "seconds to receive a whole request from its first byte (408)");
  int64_t& http_threads = p.Int("--http-threads", 0, "threads that run request handlers (0: 4 x parallel + 8)");
  bool& log_requests = p.Flag("--log-requests", "print one line per request on stderr");
  bool& special_in_content = p.Flag("--special-in-content", "special-token text in chat message content becomes control "
                                                            "tokens (as transformers); default: plain text");
  std::string& reasoning_format = p.String("--reasoning-format", "auto", "split chat answers into reasoning_content / content "
                                                                         "/ tool_calls: auto (from the chat template), none, think "
                                                                         "(<think>), harmony (gpt-oss)");
  std::string& forced_output = p.String("--debug-forced-output", "", "TESTING ONLY: every request outputs the text of FILE "
                                                                     "(as the model's tokens) instead of sampling");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  if (port < 0 || port > 65535) return Fail("--port must be in [0, 65535]");
  if (parallel < 1 || parallel > 256) return Fail("--parallel must be in [1, 256]");
  if (cache_entries < 0 || cache_entries > 1024) return Fail("--cache-entries must be in [0, 1024]");
  auto opts = ef.ToOptions(Workload{Workload::Kind::kServe, parallel, cache_entries});
  if (!opts.ok()) return Fail(opts.status().message());
  auto body = ParseSize(max_body);
  if (!body.ok() || *body < 1024) return Fail("--max-body must be a size of at least 1K, got '" + max_body + "'");
  auto header = ParseSize(max_header);
  if (!header.ok() || *header < 1024 || *header > (64u << 20))
    return Fail("--max-header-bytes must be a size in [1K, 64M], got '" + max_header + "'");
  if (max_connections < 1 || max_connections > 100000) return Fail("--max-connections must be in [1, 100000]");
  if (max_queue < 0 || max_queue > 100000) return Fail("--max-queue must be in [0, 100000]");
  if (!(request_timeout > 0 && request_timeout <= 3600)) return Fail("--request-timeout must be in (0, 3600] seconds");
  if (http_threads < 0 || http_threads > 4096) return Fail("--http-threads must be in [0, 4096]");
    auto session_disk = ParseSize(session_max_disk);
  if (!session_disk.ok()) return Fail("--session-max-disk must be a size (e.g. 4G, 0 = unlimited), got '" + session_max_disk + "'");
  auto resolved = ResolveModelName(p.positional()[0]);
  if (!resolved.ok()) return Fail(resolved.status().message());

  server::ServerOptions so;
  so.host = host;
  so.port = static_cast<int>(port);
  for (const auto& k : api_keys)
    if (!k.empty()) so.api_keys.push_back(k);
  if (!api_key_file.empty()) {
    auto text = ReadFileToString(api_key_file);
    if (!text.ok()) return Fail("--api-key-file: " + text.status().message());
    size_t before = so.api_keys.size();
    for (size_t pos = 0; pos < text->size();) {
      size_t end = text->find_first_of("\r\n", pos);
      if (end == std::string::npos) end = text->size();
      if (end > pos) so.api_keys.push_back(text->substr(pos, end - pos));
      pos = end + 1;
    }
    if (so.api_keys.size() == before) return Fail("--api-key-file: " + api_key_file + " holds no key");
  }
  if (so.api_keys.empty())
    if (const char* k = std::getenv("SPOOL_API_KEY"); k && *k) so.api_keys.push_back(k);
  so.model = resolved->path;
  so.model_id = alias.empty() ? (resolved->is_path ? "" : p.positional()[0]) : alias;
  so.engine = *opts;
  so.parallel = static_cast<int>(parallel);
  so.prefix_cache_entries = static_cast<int>(cache_entries);
  so.shared_prefix_cache = shared_cache;
  so.disk_sessions = !no_disk_sessions;
  so.session_dir = session_dir;
  so.session_max_disk = *session_disk;
  so.max_body_bytes = *body;
  so.max_header_bytes = *header;
  so.max_connections = static_cast<int>(max_connections);
  so.max_queue = static_cast<int>(max_queue);
  so.request_timeout_s = request_timeout;
  so.http_threads = static_cast<int>(http_threads);
  so.log_requests = log_requests;
  so.special_in_content = special_in_content;
  auto format = chat::ParseReasoningFormat(reasoning_format);
  if (!format.ok()) return Fail("--reasoning-format: " + format.status().message());
  so.reasoning_format = *format;
  if (!forced_output.empty()) {
    auto text = ReadFileToString(forced_output);
    if (!text.ok()) return Fail("--debug-forced-output: " + text.status().message());
    if (text->empty()) return Fail("--debug-forced-output: " + forced_output + " is empty");
    so.debug_forced_output = *text;
  }
  {
    auto spec = ef.Speculative();
    if (!spec.ok()) return Fail(spec.status().message());
    so.speculative = *spec;
  }

  // Signals go to one watcher thread (created before any other thread so that every
  // thread inherits the blocked mask); a write to a closed socket is an error, not death.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  server::Server server(so);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    timespec ts{0, 200 * 1000 * 1000};
    while (!done.load()) {
      if (sigtimedwait(&set, nullptr, &ts) > 0) {
        std::fprintf(stderr, "spool serve: shutting down\n");
        server.Stop();
        return;
      }
    }
  });
  Status st = server.Run();
  done = true;
  watcher.join();
  if (!st.ok()) return Fail(st.message());
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("serve", "serve a model over HTTP (OpenAI and Ollama APIs)", spool::apps::RunServe);
