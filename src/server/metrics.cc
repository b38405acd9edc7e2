#include "server/metrics.h"

#include <cstdio>
#include <set>

namespace spool::server {

namespace {
const std::set<std::string>& KnownPaths() {
  static const std::set<std::string> k = {"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions",
                                          "/tokenize", "/detokenize", "/apply-template", "/api/chat", "/api/generate",
                                          "/api/tags", "/api/ps", "/api/version", "/v1/sessions"};
  return k;
}

void Line(std::string& out, const char* name, const char* type, const char* help, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + buf + "\n";
}
}  // namespace

void Metrics::CountRequest(const std::string& path, int status) {
  std::string p = KnownPaths().count(path)                      ? path
                  : path.rfind("/v1/models/", 0) == 0   ? "/v1/models/{id}"
                  : path.rfind("/v1/sessions/", 0) == 0 ? "/v1/sessions/{id}"
                                                        : "other";
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{p, status}];
}

void Metrics::AddRequestTimings(const runtime::Completion& c) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_seconds_sum_ += c.queue_seconds + c.prefill_seconds;
  ++ttft_count_;
}

std::string Metrics::Render(const runtime::SchedulerStats& s, bool ready, double uptime_seconds) const {
  std::string out;
  out += "# HELP spool_http_requests_total HTTP requests by path and status code.\n# TYPE spool_http_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : requests_)
      out += "spool_http_requests_total{path=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
             std::to_string(n) + "\n";
    Line(out, "spool_time_to_first_token_seconds_sum", "counter", "Sum over finished generations of queue + prefill time.", ttft_seconds_sum_);
    Line(out, "spool_time_to_first_token_seconds_count", "counter", "Finished generations.", static_cast<double>(ttft_count_));
  }
  Line(out, "spool_model_loaded", "gauge", "1 once the model is loaded and requests are served.", ready ? 1 : 0);
  Line(out, "spool_uptime_seconds", "gauge", "Seconds since the server started.", uptime_seconds);
  Line(out, "spool_requests_queued", "gauge", "Generation requests waiting for a decode slot.", static_cast<double>(s.queued));
  Line(out, "spool_requests_active", "gauge", "Sequences in the decode batch.", static_cast<double>(s.active));
  Line(out, "spool_prefill_requests", "gauge", "Requests prefilling their prompt now.", static_cast<double>(s.prefilling));
  Line(out, "spool_prefill_tokens_done", "gauge", "Prompt tokens in the caches of the requests prefilling now (cached ones included).", static_cast<double>(s.prefill_tokens_done));
  Line(out, "spool_prefill_tokens_total", "gauge", "Prompt tokens of the requests prefilling now.", static_cast<double>(s.prefill_tokens_total));
  Line(out, "spool_generations_finished_total", "counter", "Generations that finished (stop or length).", static_cast<double>(s.requests_done));
  Line(out, "spool_generations_cancelled_total", "counter", "Generations cancelled (client gone).", static_cast<double>(s.requests_cancelled));
  Line(out, "spool_generations_failed_total", "counter", "Generations that failed in the engine.", static_cast<double>(s.requests_failed));
  Line(out, "spool_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", static_cast<double>(s.prompt_tokens));
  Line(out, "spool_prompt_tokens_cached_total", "counter", "Prompt tokens reused from the prefix cache (not prefilled).", static_cast<double>(s.cached_prompt_tokens));
  Line(out, "spool_generated_tokens_total", "counter", "Tokens generated.", static_cast<double>(s.generated_tokens));
  Line(out, "spool_decode_steps_total", "counter", "Batched decode steps.", static_cast<double>(s.decode_steps));
  Line(out, "spool_decode_batch_tokens_total", "counter", "Tokens decoded in batched steps (mean batch = this / steps).", static_cast<double>(s.decode_batch_tokens));
  Line(out, "spool_prefill_seconds_total", "counter", "Seconds spent in prefill.", s.prefill_seconds);
  Line(out, "spool_decode_seconds_total", "counter", "Seconds spent in decode steps.", s.decode_seconds);
  Line(out, "spool_speculative_drafted_tokens_total", "counter", "Draft tokens verified (speculative decoding).", static_cast<double>(s.spec_drafted));
  Line(out, "spool_speculative_accepted_tokens_total", "counter", "Draft tokens accepted by the model (each one a token without a pass of its own).", static_cast<double>(s.spec_accepted));
  Line(out, "spool_decode_tokens_per_weight_pass", "gauge", "Tokens emitted per decode step (pass over the weights), all sequences: (decode batch tokens + accepted drafts) / decode steps.",
       s.decode_steps > 0 ? static_cast<double>(s.decode_batch_tokens + s.spec_accepted) / static_cast<double>(s.decode_steps) : 0.0);
  Line(out, "spool_session_loads_total", "counter", "Sessions resumed from disk.", static_cast<double>(s.session_loads));
  Line(out, "spool_session_spills_total", "counter", "Session files written (eviction from RAM, shutdown).", static_cast<double>(s.session_spills));
  Line(out, "spool_weight_dense_bytes_read_total", "counter", "Weight bytes read from disk for dense parts (streamed groups, embedding rows).", static_cast<double>(s.dense_weight_bytes));
  Line(out, "spool_weight_expert_bytes_read_total", "counter", "Weight bytes read from disk for routed experts (MoE expert cache misses).", static_cast<double>(s.expert_bytes));
  Line(out, "spool_expert_cache_hits_total", "counter", "Routed experts found in the expert cache (MoE).", static_cast<double>(s.expert_hits));
  Line(out, "spool_expert_cache_misses_total", "counter", "Routed experts read from disk into the expert cache (MoE).", static_cast<double>(s.expert_misses));
  Line(out, "spool_session_errors_total", "counter", "Session files that could not be used or written (each logged).", static_cast<double>(s.session_errors));
  return out;
}

}  // namespace spool::server
