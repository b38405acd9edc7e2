// spool serve MODEL: the OpenAI/Ollama-compatible HTTP server (server/server.h).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <atomic>
#include <thread>

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
  std::string& api_key = p.String("--api-key", "", "require 'Authorization: Bearer KEY' (default: $SPOOL_API_KEY)");
  int64_t& parallel = p.Int("-np,--parallel", 4, "sequences decoded together in one step");
  int64_t& cache_entries = p.Int("--cache-entries", 4, "finished sequences kept for prefix reuse (0: off)");
  std::string& alias = p.String("--alias", "", "model id that clients use (default: derived from MODEL)");
  std::string& max_body = p.String("--max-body", "8M", "largest request body accepted");
  bool& log_requests = p.Flag("--log-requests", "print one line per request on stderr");
  bool& special_in_content = p.Flag("--special-in-content", "special-token text in chat message content becomes control "
                                                            "tokens (as transformers); default: plain text");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  auto opts = ef.ToOptions();
  if (!opts.ok()) return Fail(opts.status().message());
  if (port < 0 || port > 65535) return Fail("--port must be in [0, 65535]");
  if (parallel < 1 || parallel > 256) return Fail("--parallel must be in [1, 256]");
  if (cache_entries < 0 || cache_entries > 1024) return Fail("--cache-entries must be in [0, 1024]");
  auto body = ParseSize(max_body);
  if (!body.ok() || *body < 1024) return Fail("--max-body must be a size of at least 1K, got '" + max_body + "'");
  auto resolved = ResolveModelName(p.positional()[0]);
  if (!resolved.ok()) return Fail(resolved.status().message());

  server::ServerOptions so;
  so.host = host;
  so.port = static_cast<int>(port);
  so.api_key = api_key;
  if (so.api_key.empty())
    if (const char* k = std::getenv("SPOOL_API_KEY")) so.api_key = k;
  so.model = resolved->path;
  so.model_id = alias.empty() ? (resolved->is_path ? "" : p.positional()[0]) : alias;
  so.engine = *opts;
  so.parallel = static_cast<int>(parallel);
  so.prefix_cache_entries = static_cast<int>(cache_entries);
  so.max_body_bytes = *body;
  so.log_requests = log_requests;
  so.special_in_content = special_in_content;

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
