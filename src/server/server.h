// spool's HTTP server: OpenAI- and Ollama-compatible endpoints over one Engine,
// whose requests a runtime::Scheduler batches. See docs/parts/server.md for the
// endpoint list, request fields and limits.
//
// Lifecycle: Run() binds the port first (so /health answers 503 "loading" while the
// model loads), then opens the model, then serves until Stop(). A model that fails to
// load makes Run() return that error at once (the listener is closed first).
// Stop() (any thread, e.g. cmd_serve's SIGTERM/SIGINT watcher): the listener and every
// connection are closed, queued requests are dropped, running handlers see their client
// gone and return (a generation is cancelled within its 250 ms poll), and then Run()
// returns. The Engine and Scheduler stay alive until ~Server, so work that needs the
// model after serving (e.g. saving state) runs after Run() returns.
// HTTP handlers run on the transport's handler threads (server/http_server.h); only the
// scheduler thread touches the Engine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "chat/reasoning.h"
#include "runtime/engine.h"
#include "runtime/speculative.h"

namespace spool::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (printed on startup)
  // Accepted keys ('Authorization: Bearer KEY'); empty → no authentication. Each key
  // is its own tenant: the prefix cache and the sessions of one key are invisible to
  // the others (runtime/scheduler.h, "Scope").
  std::vector<std::string> api_keys;
  std::string model;                   // what to pass to Engine::Open (a path or hub id)
  std::string model_id;                // the name clients use ("model" field); "" → derived from `model`
  runtime::EngineOptions engine;
  int parallel = 4;                    // sequences decoded together
  int prefix_cache_entries = 4;        // finished sequences kept for prefix reuse
  // Transport limits (server/http_server.h Limits; the flags of `spool serve`).
  size_t max_body_bytes = 8u << 20;    // larger bodies (any transfer encoding) → 400 request_too_large
  size_t max_header_bytes = 64u << 10; // request line + header fields; larger → 431 (414: request line)
  int max_connections = 512;           // open connections; more → 503 + Retry-After
  int max_queue = 64;                  // complete requests waiting for an HTTP thread; more → 503 + Retry-After
  double request_timeout_s = 30;       // the whole request, from its first byte; slower → 408
  int http_threads = 0;                // handler threads; 0: 4 × parallel + 8
  bool shared_prefix_cache = false;    // reuse across tenants and sessions (opt-in)
  // Disk sessions (runtime/session_store.h): the prefix cache entries of named
  // sessions are written under session_dir ("": $SPOOL_HOME/server-sessions) when
  // they leave RAM and at shutdown, at most session_max_disk bytes (0: unlimited).
  bool disk_sessions = true;
  std::string session_dir;
  uint64_t session_max_disk = 4ull << 30;
  bool log_requests = false;           // one line per request on stderr
  // Special-token text inside chat message content becomes control tokens (as
  // transformers); default: it stays plain text (chat/chat_prompt.h).
  bool special_in_content = false;
  // How chat answers are split into reasoning_content / content / tool_calls
  // (chat/reasoning.h); kAuto: decided from the model's template and vocabulary at load.
  chat::ReasoningFormat reasoning_format = chat::ReasoningFormat::kAuto;
  // Testing only (--debug-forced-output): every request "generates" exactly the tokens
  // of this text (the model's tokenizer, special tokens parsed) instead of sampling, so
  // that tests see reasoning and tool calls from a model too small to write them.
  // Everything after sampling (decoding, splitting, response shaping) is the real path.
  std::string debug_forced_output;
  // Speculative decoding for requests without a "speculative" field (--lookup,
  // --draft MODEL: the draft model itself is engine.draft_model).
  runtime::SpeculativeOptions speculative;
};


class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Serves until Stop(). Fails if the port cannot be bound or the model cannot be
  // opened (the message names it). Prints "spool serve: listening on http://HOST:PORT"
  // on stderr once bound.
  Status Run();
  // Thread-safe; makes Run() return. Run() then stops the scheduler and writes the
  // prefix cache's named sessions to disk (Scheduler::Shutdown) before it returns.
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
