#include "server/server.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include "base/timer.h"
#include "chat/chat_prompt.h"
#include "chat/chat_template.h"
#include "runtime/scheduler.h"
#include "runtime/session_store.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace spool::server {

std::string DefaultModelId(const std::string& model) {
  struct stat st{};
  if (::stat(model.c_str(), &st) != 0) return model;  // a hub id or alias: as given
  std::string name = model;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  size_t slash = name.rfind('/');
  if (slash != std::string::npos) name = name.substr(slash + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  return name;
}

namespace {

using Event = runtime::RequestHandle::Event;

std::string RandomId(const char* prefix) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return id;
}

// "Bearer KEY" against the key, in time that does not depend on where they differ.
bool ApiKeyMatches(const std::string& authorization, const std::string& key) {
  static const std::string kBearer = "Bearer ";
  const std::string given = authorization.compare(0, kBearer.size(), kBearer) == 0 ? authorization.substr(kBearer.size()) : "";
  unsigned diff = given.size() != key.size() ? 1u : 0u;
  for (size_t i = 0; i < key.size(); ++i)
    diff |= static_cast<unsigned char>(key[i]) ^ static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  return diff == 0;
}

bool IsOllama(ApiKind k) { return k == ApiKind::kOllamaChat || k == ApiKind::kOllamaGenerate; }
bool IsChat(ApiKind k) { return k == ApiKind::kOpenAIChat || k == ApiKind::kOllamaChat; }

// A scheduler error as an HTTP error (api_request.h); server-side failures are logged
// here with their details, which the client does not see.
ApiError FromStatus(const Status& st) {
  ApiError e = ApiErrorFromStatus(st);
  if (e.status >= 500 && e.status != 503) std::fprintf(stderr, "spool serve: request failed (HTTP %d): %s\n", e.status, st.message().c_str());
  return e;
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  http::Server http;
  std::atomic<bool> ready{false};
  std::atomic<int> bound_port{0};
  std::unique_ptr<runtime::Engine> engine;
  std::unique_ptr<runtime::SessionStore> session_store;  // declared before the scheduler that uses it
  std::unique_ptr<runtime::Scheduler> scheduler;
  std::map<std::string, std::string> tenant_of_key;      // API key → TenantForApiKey(key)
  std::optional<chat::ChatTemplate> chat_template;
  std::string chat_template_error;
  chat::SpecialTokens special;
  chat::ReasoningFormat reasoning_format = chat::ReasoningFormat::kNone;  // decided at load (never kAuto)
  std::vector<int32_t> forced_output;  // opts.debug_forced_output as ids
  std::string model_id, fingerprint;
  int64_t model_created = 0;
  uint64_t model_bytes = 0;
  double start_time = NowSeconds();
  Metrics metrics;

  // ---- helpers ----
  static void SendJson(http::Response& res, int status, const Json& j) {
    res.status = status;
    res.set_content(Dump(j), "application/json");
  }
  static void SendError(http::Response& res, const ApiError& e, bool ollama) {
    if (ollama) SendJson(res, e.status, Json{{"error", e.message}});
    else SendJson(res, e.status, e.ToJson());
  }
  bool CheckReady(http::Response& res, bool ollama) {
    if (ready.load()) return true;
    SendError(res, ApiError{503, "The model is still loading; retry shortly.", "server_error", "", "model_loading"}, ollama);
    return false;
  }
  // The tenant of a request's "Authorization: Bearer KEY": its key's digest, "" when
  // the server has no keys (one anonymous tenant), nullopt when no key matches. Every
  // configured key is compared in constant time, whichever matches.
  std::optional<std::string> MatchTenant(const std::string& authorization) const {
    if (tenant_of_key.empty()) return std::string();
    std::optional<std::string> found;
    for (const auto& [key, tenant] : tenant_of_key)
      if (ApiKeyMatches(authorization, key) && !found) found = tenant;
    return found;
  }
  // The tenant of an already authenticated request.
  std::string TenantOf(const http::Request& req) const {
    return MatchTenant(req.get_header_value("Authorization")).value_or("");
  }
  bool ModelMatches(const std::string& name) const {
    return name == model_id || name == opts.model || name == DefaultModelId(opts.model);
  }

  // Prompt tokens of a request, validated against the vocabulary and the context;
  // fills spec->max_tokens when the request left it open.
  std::optional<ApiError> BuildPrompt(GenerationSpec* spec, std::vector<int32_t>* out, std::string* rendered = nullptr) {
    const tokenizer::Tokenizer* tok = engine->tokenizer();
    if (!tok && !spec->has_prompt_ids)
      return ApiError{400, "The model has no tokenizer: pass the prompt as token ids to /v1/completions."};
    if (spec->chat) {
      if (!chat_template)
        return ApiError{400, "The model has no usable chat template (" + chat_template_error +
                                 "); use /v1/completions with a plain prompt."};
      chat::ChatTemplateInputs in;
      in.messages = spec->messages;
      in.tools = spec->tools;
      in.add_generation_prompt = true;
      in.bos_token = special.bos_token;
      in.eos_token = special.eos_token;
      in.extra_vars = spec->template_vars;
      chat::ChatPromptOptions po;
      po.special_in_content = opts.special_in_content;
      auto ids = chat::EncodeChatPrompt(*chat_template, *tok, in, po, rendered);
      if (!ids.ok()) return ApiError{400, "The chat template could not render these messages: " + ids.status().message(), "invalid_request_error", "messages"};
      *out = std::move(ids).value();
    } else if (spec->has_prompt_ids) {
      for (size_t i = 0; i < spec->prompt_ids.size(); ++i)
        if (spec->prompt_ids[i] >= engine->n_vocab())
          return ApiError{400, "Invalid token id " + std::to_string(spec->prompt_ids[i]) + " at prompt[" + std::to_string(i) +
                                   "]: the vocabulary has " + std::to_string(engine->n_vocab()) + " tokens.",
                          "invalid_request_error", "prompt"};
      *out = spec->prompt_ids;
    } else {
      auto ids = tok->Encode(spec->prompt_text, /*add_special=*/true, /*parse_special=*/true);
      if (!ids.ok()) return ApiError{400, ids.status().message(), "invalid_request_error", "prompt"};
      *out = std::move(ids).value();
    }
    if (out->empty()) return ApiError{400, "The prompt is empty (it encodes to no tokens).", "invalid_request_error", spec->chat ? "messages" : "prompt"};
    const int64_t n = static_cast<int64_t>(out->size());
    const int64_t ctx = engine->ctx();
    if (n >= ctx || (spec->max_tokens > 0 && n + spec->max_tokens > ctx)) {
      std::string msg = "This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                        std::to_string(n + std::max<int64_t>(spec->max_tokens, 0)) + " tokens (" + std::to_string(n) +
                        " in the " + (spec->chat ? "messages" : "prompt") + ", " +
                        std::to_string(std::max<int64_t>(spec->max_tokens, 0)) +
                        " in the completion). Please reduce the length of the prompt or completion.";
      return ApiError{400, msg, "invalid_request_error", spec->chat ? "messages" : "prompt", "context_length_exceeded"};
    }
    if (spec->max_tokens < 0) spec->max_tokens = ctx - n;
    return std::nullopt;
  }

  // ---- generation endpoints ----
  void HandleGenerate(const http::Request& req, http::Response& res, ApiKind kind) {
    const bool ollama = IsOllama(kind), chat = IsChat(kind);
    if (!CheckReady(res, ollama)) return;
    Json body;
    if (auto e = ParseJsonBody(req.body, &body)) return SendError(res, *e, ollama);
    GenerationSpec spec;
    auto perr = ollama ? ParseOllamaRequest(body, kind, &spec) : ParseOpenAIRequest(body, kind, &spec);
    if (perr) return SendError(res, *perr, ollama);
    if (!spec.model.empty() && !ModelMatches(spec.model)) {
      ApiError e{404, "The model `" + spec.model + "` does not exist or is not loaded (this server serves `" + model_id + "`).",
                 "invalid_request_error", "model", "model_not_found"};
      return SendError(res, e, ollama);
    }
    runtime::ScheduledRequest sr;
    std::string rendered;
    if (auto e = BuildPrompt(&spec, &sr.prompt, &rendered)) return SendError(res, *e, ollama);
    // Chat answers go through the reasoning splitter (chat/reasoning.h); with format
    // none and no tools it passes everything through as content.
    chat::ReasoningFormat format = reasoning_format;
    if (!spec.reasoning_format.empty()) {
      format = *chat::ParseReasoningFormat(spec.reasoning_format);  // checked by the parser
      if (format == chat::ReasoningFormat::kAuto) format = reasoning_format;
    }
    chat::SplitterOptions split_opts;
    split_opts.start_in_reasoning = chat::PromptOpensReasoning(format, rendered);
    split_opts.parse_tool_calls = spec.tools.is_array() && !spec.tools.empty();
    split_opts.id_prefix = RandomId("call_") + "_";
    if (chat && format == chat::ReasoningFormat::kHarmony) sr.keep_special_tokens = true;
    sr.forced_output = forced_output;
    if (auto e = CheckLogitBias(spec.sampling, engine->n_vocab(), ollama)) return SendError(res, *e, ollama);
    sr.sampling = spec.sampling;
    sr.max_tokens = spec.max_tokens;
    sr.ignore_eos = spec.ignore_eos;
    sr.stop = spec.stop;
    sr.reuse_prefix = spec.cache_prompt;
    sr.tenant = TenantOf(req);
    sr.cache_key = spec.session;
    if (auto e = ResolveSpeculative(spec.speculative, opts.speculative, engine->draft_engine() != nullptr, ollama,
                                    &sr.speculative))
      return SendError(res, *e, ollama);
    sr.report_progress = spec.stream && spec.return_progress && !ollama;
    const double t0 = NowSeconds();
    auto handle = scheduler->Submit(std::move(sr));
    // While waiting (queue, prefill, decode), a client that went away cancels its request.
    // The connection is polled every 250 ms, whether or not tokens arrive in between.
    double last_probe = NowSeconds();
    auto wait = [&](Event* ev) {  // false: the client is gone and the request was cancelled
      for (;;) {
        const bool got = handle->Next(ev, 250);
        if (!got || NowSeconds() - last_probe >= 0.25) {
          last_probe = NowSeconds();
          if (req.is_connection_closed()) {
            handle->Cancel();
            return false;
          }
        }
        if (got) return true;
      }
    };

    // The first event decides the status code: an error before any text is an HTTP error.
    Event first;
    if (!wait(&first)) return;
    if (first.kind == Event::Kind::kError) return SendError(res, FromStatus(first.error), ollama);

    ResponseMeta meta{RandomId(chat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)), spec.model.empty() ? model_id : spec.model,
                      fingerprint};
    if (!spec.stream) {
      std::string text;
      Event ev = std::move(first);
      for (;;) {
        if (ev.kind == Event::Kind::kText) text += ev.text;
        if (ev.kind == Event::Kind::kError) return SendError(res, FromStatus(ev.error), ollama);
        if (ev.kind == Event::Kind::kDone) break;
        if (!wait(&ev)) return;
      }
      metrics.AddRequestTimings(ev.completion);
      std::optional<AssistantParts> parts;
      if (chat) parts = ToParts(chat::SplitReasoning(format, ev.completion.text, split_opts));
      const AssistantParts* pp = parts ? &*parts : nullptr;
      if (ollama) return SendJson(res, 200, OllamaFinal(meta.model, chat, ev.completion.text, ev.completion, NowSeconds() - t0, pp));
      return SendJson(res, 200, OpenAIResponse(meta, chat, ev.completion, pp));
    }

    struct StreamState {
      std::shared_ptr<runtime::RequestHandle> handle;
      std::optional<Event> first;
      bool started = false;
      std::optional<chat::ReasoningSplitter> splitter;  // chat requests
      size_t tool_calls_sent = 0;
    };
    auto st = std::make_shared<StreamState>();
    st->handle = handle;
    st->first = std::move(first);
    if (chat) st->splitter.emplace(format, split_opts);
    const bool include_usage = spec.include_usage;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        ollama ? "application/x-ndjson" : "text/event-stream",
        [this, st, meta, chat, ollama, include_usage, t0, &req](size_t, http::DataSink& sink) -> bool {
          auto write = [&](const std::string& s) {
            if (sink.write(s.data(), s.size())) return true;
            st->handle->Cancel();
            return false;
          };
          if (!st->started) {
            st->started = true;
            if (chat && !ollama && !write(SseData(OpenAIChunk(meta, true, "", /*role_chunk=*/true, "", include_usage)))) return false;
          }
          Event ev;
          if (st->first) {
            ev = std::move(*st->first);
            st->first.reset();
          } else if (!st->handle->Next(&ev, 250)) {
            if (req.is_connection_closed() || !sink.is_writable()) {
              st->handle->Cancel();
              return false;
            }
            return true;  // called again
          }
          // A chat delta from the splitter: nothing to send while it holds text back.
          auto send_delta = [&](const chat::ReasoningDelta& d) {
            if (d.empty()) return true;
            const size_t first_tool = st->tool_calls_sent;
            st->tool_calls_sent += d.tool_calls.size();
            if (ollama) return write(Dump(OllamaDeltaChunk(meta.model, d)) + "\n");
            return write(SseData(OpenAIDeltaChunk(meta, d, first_tool, include_usage)));
          };
          if (ev.kind == Event::Kind::kProgress) {  // only OpenAI streams ask for it
            Json chunk = OpenAIChunk(meta, chat, "", false, "", include_usage);
            const auto& p = ev.progress;
            chunk["prompt_progress"] = Json{{"total", p.total}, {"cache", p.cache}, {"processed", p.processed},
                                            {"time_ms", static_cast<int64_t>(p.seconds * 1000)}};
            return write(SseData(chunk));
          }
          if (ev.kind == Event::Kind::kText) {
            if (st->splitter) return send_delta(st->splitter->Push(ev.text));
            if (ollama) return write(Dump(OllamaChunk(meta.model, chat, ev.text)) + "\n");
            return write(SseData(OpenAIChunk(meta, chat, ev.text, false, "", include_usage)));
          }
          if (ev.kind == Event::Kind::kError) {
            ApiError e = FromStatus(ev.error);
            write(ollama ? Dump(Json{{"error", e.message}}) + "\n" : SseData(e.ToJson()));
            sink.done();
            return true;
          }
          metrics.AddRequestTimings(ev.completion);
          if (st->splitter && !send_delta(st->splitter->Finish())) return false;
          if (ollama) {
            if (!write(Dump(OllamaFinal(meta.model, chat, "", ev.completion, NowSeconds() - t0)) + "\n")) return false;
          } else {
            const std::string finish = chat ? ChatFinishReason(ev.completion, st->tool_calls_sent > 0) : ev.completion.finish_reason;
            if (!write(SseData(OpenAIChunk(meta, chat, "", false, finish, include_usage)))) return false;
            if (include_usage && !write(SseData(OpenAIUsageChunk(meta, chat, ev.completion)))) return false;
            if (!write("data: [DONE]\n\n")) return false;
          }
          sink.done();
          return true;
        },
        [handle](bool success) {
          if (!success) handle->Cancel();
        });
  }

  // ---- other endpoints ----
  Json ModelObject() const {
    return Json{{"id", model_id}, {"object", "model"}, {"created", model_created}, {"owned_by", "spool"}};
  }

  Json OllamaModelObject(bool ps) const {
    const auto& src = engine->source();
    std::string family = engine->config().arch;
    Json j{{"name", model_id}, {"model", model_id}};
    if (!ps) j["modified_at"] = IsoTimeNow();
    j["size"] = model_bytes;
    j["digest"] = fingerprint;
    j["details"] = Json{{"parent_model", ""},
                        {"format", src.kind == formats::ModelSource::Kind::kGguf ? "gguf" : "safetensors"},
                        {"family", family},
                        {"families", Json::array({family})},
                        {"parameter_size", ""},
                        {"quantization_level", ""}};
    if (ps) {
      j["size_vram"] = 0;
      j["expires_at"] = "0001-01-01T00:00:00Z";
      j["context_length"] = engine->ctx();
    }
    return j;
  }

  void Routes() {
    http.Get("/health", [this](const http::Request&, http::Response& res) {
      if (ready.load()) SendJson(res, 200, Json{{"status", "ok"}});
      else SendJson(res, 503, Json{{"status", "loading"}});
    });
    http.Get("/metrics", [this](const http::Request&, http::Response& res) {
      runtime::SchedulerStats s;
      if (scheduler && ready.load()) s = scheduler->stats();
      res.set_content(metrics.Render(s, ready.load(), NowSeconds() - start_time), "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const http::Request&, http::Response& res) {
      if (!CheckReady(res, false)) return;
      SendJson(res, 200, Json{{"object", "list"}, {"data", Json::array({ModelObject()})}});
    });
    http.Get(R"(/v1/models/(.+))", [this](const http::Request& req, http::Response& res) {
      if (!CheckReady(res, false)) return;
      std::string name = req.matches[1];
      if (!ModelMatches(name))
        return SendError(res, ApiError{404, "The model `" + name + "` does not exist", "invalid_request_error", "model", "model_not_found"}, false);
      SendJson(res, 200, ModelObject());
    });
    http.Post("/v1/chat/completions", [this](const http::Request& q, http::Response& r) { HandleGenerate(q, r, ApiKind::kOpenAIChat); });
    http.Post("/v1/completions", [this](const http::Request& q, http::Response& r) { HandleGenerate(q, r, ApiKind::kOpenAICompletion); });
    http.Post("/api/chat", [this](const http::Request& q, http::Response& r) { HandleGenerate(q, r, ApiKind::kOllamaChat); });
    http.Post("/api/generate", [this](const http::Request& q, http::Response& r) { HandleGenerate(q, r, ApiKind::kOllamaGenerate); });
    http.Get("/api/tags", [this](const http::Request&, http::Response& res) {
      if (!CheckReady(res, true)) return;
      SendJson(res, 200, Json{{"models", Json::array({OllamaModelObject(false)})}});
    });
    http.Get("/api/ps", [this](const http::Request&, http::Response& res) {
      if (!ready.load()) return SendJson(res, 200, Json{{"models", Json::array()}, {"loading", opts.model}});
      SendJson(res, 200, Json{{"models", Json::array({OllamaModelObject(true)})}});
    });
    http.Get("/api/version", [](const http::Request&, http::Response& res) { SendJson(res, 200, Json{{"version", "0.1.0"}}); });
    http.Get("/v1/sessions", [this](const http::Request& req, http::Response& res) { HandleListSessions(req, res); });
    http.Delete(R"(/v1/sessions/(.+))", [this](const http::Request& req, http::Response& res) { HandleDeleteSession(req, res); });
    http.Post("/tokenize", [this](const http::Request& req, http::Response& res) { HandleTokenize(req, res); });
    http.Post("/detokenize", [this](const http::Request& req, http::Response& res) { HandleDetokenize(req, res); });
    http.Post("/apply-template", [this](const http::Request& req, http::Response& res) { HandleApplyTemplate(req, res); });
  }

  // GET /v1/sessions: the caller's named sessions (RAM and disk). Without API keys
  // every client is the same tenant, and a list of ids would let one user resume
  // another's session, so it is refused unless the cache is shared anyway.
  void HandleListSessions(const http::Request& req, http::Response& res) {
    if (!CheckReady(res, false)) return;
    if (tenant_of_key.empty() && !opts.shared_prefix_cache)
      return SendError(res, ApiError{403, "Listing sessions needs --api-key (without keys every client is the same tenant, so "
                                          "the list would show other users' session ids).", "invalid_request_error", "", "forbidden"}, false);
    Json data = Json::array();
    for (const runtime::SessionSummary& s : scheduler->ListSessions(TenantOf(req)))
      data.push_back(Json{{"id", s.id},
                          {"object", "session"},
                          {"tokens", s.tokens},
                          {"bytes", s.bytes},
                          {"last_used", s.last_used_ms / 1000},
                          {"last_used_ms", s.last_used_ms},
                          {"in_memory", s.in_memory},
                          {"on_disk", s.on_disk}});
    SendJson(res, 200, Json{{"object", "list"}, {"data", data}});
  }

  // DELETE /v1/sessions/{id}: forgets the caller's session (RAM entries and file).
  void HandleDeleteSession(const http::Request& req, http::Response& res) {
    if (!CheckReady(res, false)) return;
    const std::string id = req.matches[1];
    if (!scheduler->ForgetSession(TenantOf(req), id))
      return SendError(res, ApiError{404, "No session with this id.", "invalid_request_error", "id", "session_not_found"}, false);
    SendJson(res, 200, Json{{"id", id}, {"object", "session.deleted"}, {"deleted", true}});
  }

  void HandleTokenize(const http::Request& req, http::Response& res) {
    if (!CheckReady(res, false)) return;
    Json body;
    if (auto e = ParseJsonBody(req.body, &body)) return SendError(res, *e, false);
    const tokenizer::Tokenizer* tok = engine->tokenizer();
    if (!tok) return SendError(res, ApiError{400, "The model has no tokenizer."}, false);
    auto content = body.find("content");
    if (content == body.end() || !content->is_string())
      return SendError(res, ApiError{400, "'content' must be a string", "invalid_request_error", "content"}, false);
    bool add_special = false, with_pieces = false;
    for (auto [name, target] : {std::pair{"add_special", &add_special}, std::pair{"with_pieces", &with_pieces}}) {
      auto it = body.find(name);
      if (it == body.end() || it->is_null()) continue;
      if (!it->is_boolean()) return SendError(res, ApiError{400, std::string("'") + name + "' must be a boolean, got " + JsonTypeName(*it), "invalid_request_error", name}, false);
      *target = it->get<bool>();
    }
    auto ids = tok->Encode(content->get<std::string>(), add_special, /*parse_special=*/true);
    if (!ids.ok()) return SendError(res, ApiError{400, ids.status().message(), "invalid_request_error", "content"}, false);
    Json tokens = Json::array();
    for (int32_t id : *ids) {
      if (with_pieces) tokens.push_back(Json{{"id", id}, {"piece", tok->TokenToPiece(id)}});
      else tokens.push_back(id);
    }
    SendJson(res, 200, Json{{"tokens", tokens}});
  }

  void HandleDetokenize(const http::Request& req, http::Response& res) {
    if (!CheckReady(res, false)) return;
    Json body;
    if (auto e = ParseJsonBody(req.body, &body)) return SendError(res, *e, false);
    const tokenizer::Tokenizer* tok = engine->tokenizer();
    if (!tok) return SendError(res, ApiError{400, "The model has no tokenizer."}, false);
    auto tokens = body.find("tokens");
    if (tokens == body.end() || !tokens->is_array())
      return SendError(res, ApiError{400, "'tokens' must be an array of token ids", "invalid_request_error", "tokens"}, false);
    std::vector<int32_t> ids;
    for (size_t i = 0; i < tokens->size(); ++i) {
      const Json& v = (*tokens)[i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok->n_vocab())
        return SendError(res, ApiError{400, "tokens[" + std::to_string(i) + "]: expected a token id in [0, " + std::to_string(tok->n_vocab()) + "), got " + Dump(v), "invalid_request_error", "tokens"}, false);
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    auto text = tok->Decode(ids);
    if (!text.ok()) return SendError(res, ApiError{400, text.status().message(), "invalid_request_error", "tokens"}, false);
    SendJson(res, 200, Json{{"content", *text}});
  }

  // Same inputs as `spool template render`: messages, tools, add_generation_prompt,
  // vars (extra template variables), bos/eos overrides, now (unix seconds).
  void HandleApplyTemplate(const http::Request& req, http::Response& res) {
    if (!CheckReady(res, false)) return;
    Json body;
    if (auto e = ParseJsonBody(req.body, &body)) return SendError(res, *e, false);
    if (!chat_template) return SendError(res, ApiError{400, "The model has no usable chat template (" + chat_template_error + ")."}, false);
    GenerationSpec spec;
    Json chat_body = Json{{"messages", body.contains("messages") ? body["messages"] : Json(nullptr)}};
    if (auto e = ParseOpenAIRequest(chat_body, ApiKind::kOpenAIChat, &spec)) return SendError(res, *e, false);
    chat::ChatTemplateInputs in;
    in.messages = spec.messages;
    in.bos_token = special.bos_token;
    in.eos_token = special.eos_token;
    in.add_generation_prompt = true;
    auto bad = [&](const char* field, const char* expected) {
      SendError(res, ApiError{400, std::string("'") + field + "' must be " + expected + ", got " + JsonTypeName(body[field]), "invalid_request_error", field}, false);
    };
    if (body.contains("tools") && !body["tools"].is_null()) {
      if (!body["tools"].is_array()) return bad("tools", "an array");
      in.tools = body["tools"];
    }
    if (body.contains("add_generation_prompt")) {
      if (!body["add_generation_prompt"].is_boolean()) return bad("add_generation_prompt", "a boolean");
      in.add_generation_prompt = body["add_generation_prompt"].get<bool>();
    }
    for (const char* f : {"vars", "chat_template_kwargs"}) {
      if (!body.contains(f) || body[f].is_null()) continue;
      if (!body[f].is_object()) return bad(f, "an object");
      for (auto& [k, v] : body[f].items()) in.extra_vars[k] = v;
    }
    if (body.contains("bos")) {
      if (!body["bos"].is_string()) return bad("bos", "a string");
      in.bos_token = body["bos"].get<std::string>();
    }
    if (body.contains("eos")) {
      if (!body["eos"].is_string()) return bad("eos", "a string");
      in.eos_token = body["eos"].get<std::string>();
    }
    if (body.contains("now")) {
      if (!body["now"].is_number_integer()) return bad("now", "an integer");
      in.now_unix_seconds = body["now"].get<int64_t>();
    }
    auto text = chat_template->Render(in);
    if (!text.ok()) return SendError(res, ApiError{400, text.status().message(), "invalid_request_error", "messages"}, false);
    SendJson(res, 200, Json{{"prompt", *text}});
  }

  void Hooks() {
    http::Limits limits;
    limits.max_body_bytes = opts.max_body_bytes;
    limits.max_header_bytes = opts.max_header_bytes;
    limits.max_request_line_bytes = std::min(limits.max_request_line_bytes, opts.max_header_bytes);
    limits.max_connections = opts.max_connections;
    limits.max_queue = opts.max_queue;
    limits.request_timeout_s = opts.request_timeout_s;
    limits.worker_threads = opts.http_threads > 0 ? opts.http_threads : 4 * opts.parallel + 8;
    http.set_limits(limits);
    http.set_pre_routing_handler([this](const http::Request& req, http::Response& res) {
      if (opts.api_keys.empty() || req.path == "/health") return http::Server::HandlerResponse::Unhandled;
      std::string auth = req.get_header_value("Authorization");
      if (MatchTenant(auth)) return http::Server::HandlerResponse::Unhandled;
      SendError(res,
                ApiError{401, auth.empty() ? "You didn't provide an API key. Provide it in the Authorization header as 'Bearer KEY'."
                                           : "Incorrect API key provided.",
                         "invalid_request_error", "", "invalid_api_key"},
                req.path.rfind("/api/", 0) == 0);
      return http::Server::HandlerResponse::Handled;
    });
    http.set_error_handler(http::Server::HandlerWithResponse([](const http::Request& req, http::Response& res) {
      if (!res.body.empty()) return http::Server::HandlerResponse::Unhandled;
      ApiError e{res.status, "HTTP error " + std::to_string(res.status)};
      if (res.status == 404) {
        e.message = "Unknown request URL: " + req.method + " " + req.path;
        e.code = "unknown_url";
      } else if (res.status == 413) {
        e = ApiError{400, "The request body is larger than this server's limit (--max-body)."};
        e.code = "request_too_large";
      } else if (res.status == 405) {
        e.message = "Method " + req.method + " is not allowed for " + req.path;
      } else if (res.status == 408) {
        e.message = "The request was not received completely within this server's limit (--request-timeout).";
        e.code = "request_timeout";
      } else if (res.status == 414) {
        e.message = "The request line is longer than this server accepts.";
        e.code = "uri_too_long";
      } else if (res.status == 431) {
        e.message = "The request headers are larger, or more numerous, than this server accepts (--max-header-bytes).";
        e.code = "headers_too_large";
      } else if (res.status == 503) {
        e = ApiError{503, "The server is busy (--max-connections / --max-queue); retry after the Retry-After delay.",
                     "server_error", "", "server_busy"};
      }
      SendJson(res, e.status, e.ToJson());
      return http::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const http::Request& req, const http::Response& res) {
      metrics.CountRequest(req.path, res.status);
      if (opts.log_requests) std::fprintf(stderr, "spool serve: %s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });
  }

  Status LoadModel() {
    runtime::PlanForScheduler(&opts.engine, opts.parallel);
    SPOOL_ASSIGN_OR_RETURN(engine, runtime::Engine::Open(opts.model, opts.engine));
    auto source = chat::LoadChatTemplate(engine->source().root);
    if (source.ok()) {
      auto parsed = chat::ChatTemplate::Parse(*source);
      if (parsed.ok()) chat_template = std::move(parsed).value();
      else chat_template_error = parsed.status().message();
    } else {
      chat_template_error = source.status().message();
    }
    if (auto sp = chat::LoadSpecialTokens(engine->source().root); sp.ok()) special = *sp;
    reasoning_format = opts.reasoning_format;
    if (reasoning_format == chat::ReasoningFormat::kAuto)
      reasoning_format = chat::DetectReasoningFormat(source.ok() ? *source : std::string(), engine->tokenizer());
    std::fprintf(stderr, "spool serve: reasoning format %s%s\n", chat::ReasoningFormatName(reasoning_format),
                 opts.reasoning_format == chat::ReasoningFormat::kAuto ? " (auto)" : "");
    if (!opts.debug_forced_output.empty()) {
      if (!engine->tokenizer()) return InvalidArgument("--debug-forced-output needs a model with a tokenizer");
      SPOOL_ASSIGN_OR_RETURN(forced_output, engine->tokenizer()->Encode(opts.debug_forced_output, /*add_special=*/false,
                                                                         /*parse_special=*/true));
      std::fprintf(stderr, "spool serve: TESTING: every request outputs the %zu tokens of --debug-forced-output\n",
                   forced_output.size());
    }
    struct stat st{};
    if (::stat(engine->source().root.c_str(), &st) == 0) model_created = static_cast<int64_t>(st.st_mtime);
    model_bytes = engine->source().total_tensor_bytes();
    char fp[32];
    std::snprintf(fp, sizeof fp, "fp_%010llx",
                  static_cast<unsigned long long>(std::hash<std::string>{}(engine->source().root + std::to_string(model_bytes)) & 0xffffffffffull));
    fingerprint = fp;
    runtime::SchedulerOptions so;
    so.max_active = opts.parallel;
    so.prefix_cache_entries = opts.prefix_cache_entries;
    so.shared_prefix_cache = opts.shared_prefix_cache;
    if (opts.disk_sessions) {
      auto store = runtime::SessionStore::Open({opts.session_dir, opts.session_max_disk});
      // The default folder is shared by every server of this user: a second server runs
      // without disk sessions instead of refusing to start. A folder given with
      // --session-dir that is in use is an error.
      if (!store.ok() && store.status().code() == ErrorCode::kResourceExhausted && opts.session_dir.empty()) {
        std::fprintf(stderr, "spool serve: warning: %s; disk sessions are off for this server (give it its own --session-dir)\n",
                     store.status().message().c_str());
      } else {
        if (!store.ok()) return store.status();
        session_store = std::move(store).value();
        std::fprintf(stderr, "spool serve: sessions in %s (%.1f MiB used)\n", session_store->dir().c_str(),
                     static_cast<double>(session_store->total_bytes()) / (1 << 20));
        so.session_store = session_store.get();
      }
    }
    scheduler = std::make_unique<runtime::Scheduler>(*engine, so);
    return Status::Ok();
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(options);
  for (const std::string& key : impl_->opts.api_keys) impl_->tenant_of_key[key] = runtime::TenantForApiKey(key);
  impl_->model_id = impl_->opts.model_id.empty() ? DefaultModelId(impl_->opts.model) : impl_->opts.model_id;
}

Server::~Server() {
  Stop();
  impl_->scheduler.reset();  // before the engine it uses
}

int Server::port() const { return impl_->bound_port.load(); }

void Server::Stop() { impl_->http.Stop(); }

Status Server::Run() {
  Impl& s = *impl_;
  if (s.opts.parallel < 1) return InvalidArgument("--parallel must be >= 1, got " + std::to_string(s.opts.parallel));
  s.Hooks();
  s.Routes();
  auto port = s.http.Bind(s.opts.host, s.opts.port);
  if (!port.ok()) return port.status();
  s.bound_port = *port;
  std::fprintf(stderr, "spool serve: listening on http://%s:%d (loading %s)\n", s.opts.host.c_str(), *port, s.opts.model.c_str());
  Status http_status;
  std::thread listener([&s, &http_status] { http_status = s.http.Run(); });
  Status st = s.LoadModel();
  if (!st.ok()) {
    s.http.Stop();
    listener.join();
    return st;
  }
  s.ready = true;
  std::fprintf(stderr, "spool serve: model %s ready (ctx %lld, parallel %d)\n", s.model_id.c_str(),
               static_cast<long long>(s.engine->ctx()), s.opts.parallel);
  listener.join();
  // The listener has stopped: no new requests. Stop the scheduler and write the
  // prefix cache's sessions to disk before the engine goes away.
  s.scheduler->Shutdown();
  if (s.session_store) {
    const runtime::SchedulerStats st = s.scheduler->stats();
    std::fprintf(stderr, "spool serve: stopped (%lld session files written, %lld errors)\n",
                 static_cast<long long>(st.session_spills), static_cast<long long>(st.session_errors));
  }
  return http_status;
}

}  // namespace spool::server
