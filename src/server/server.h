// spool's HTTP server: OpenAI- and Ollama-compatible endpoints over one Engine,
// whose requests a runtime::Scheduler batches. See docs/parts/server.md for the
// endpoint list, request fields and limits.
//
// Lifecycle: Run() binds the port first (so /health answers 503 "loading" while the
// model loads), then opens the model, then serves until Stop() or a fatal error.
// Every HTTP handler runs on cpp-httplib's worker threads; only the scheduler thread
// touches the Engine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "runtime/engine.h"

namespace spool::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (printed on startup)
  std::string api_key;                 // "" → no authentication
  std::string model;                   // what to pass to Engine::Open (a path or hub id)
  std::string model_id;                // the name clients use ("model" field); "" → derived from `model`
  runtime::EngineOptions engine;
  int parallel = 4;                    // sequences decoded together
  int prefix_cache_entries = 4;        // finished sequences kept for prefix reuse
  size_t max_body_bytes = 8u << 20;    // larger bodies → 400
  int http_threads = 0;                // 0: 4 × parallel + 8
  bool log_requests = false;           // one line per request on stderr
  // Special-token text inside chat message content becomes control tokens (as
  // transformers); default: it stays plain text (chat/chat_prompt.h).
  bool special_in_content = false;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Serves until Stop(). Fails if the port cannot be bound or the model cannot be
  // opened (the message names it). Prints "spool serve: listening on http://HOST:PORT"
  // on stderr once bound.
  Status Run();
  // Thread-safe; makes Run() return.
  void Stop();
  // The bound port (valid after Run() printed it; for port 0).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "org/name:Q4_K_M" or "/path/to/SmolLM2-135M.Q4_1.gguf" → the default id shown to
// clients ("SmolLM2-135M.Q4_1" for paths; names as given otherwise).
std::string DefaultModelId(const std::string& model);

}  // namespace spool::server
