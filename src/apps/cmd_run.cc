// spool run MODEL [PROMPT]: generate text from a prompt, streaming it to stdout.
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "apps/common_flags.h"
#include "apps/prompt.h"
#include "apps/reasoning_view.h"
#include "apps/run_session.h"
#include "base/progress.h"
#include "base/strings.h"
#include "base/sysinfo.h"
#include "runtime/generate.h"
#include "runtime/planner.h"

namespace spool::apps {
namespace {

int RunRun(int argc, char** argv) {
  ArgParser p("spool run", "MODEL [PROMPT]");
  EngineFlags ef = AddEngineFlags(p);
  SamplingFlags sf = AddSamplingFlags(p);
  int64_t& n_predict = p.Int("-n,--max-tokens", 128, "tokens to generate at most");
  bool& chat = p.Flag("--chat", "wrap the prompt as a user message in the model's chat template");
  std::string& system = p.String("--system", "", "system message (with --chat)");
  std::string& file = p.String("-f,--file", "", "read the prompt from a file");
  bool& stats = p.Flag("--stats", "print timings and memory after the run (stderr)");
  bool& json = p.Flag("--json", "print one JSON object (prompt_ids, ids, text, stats) instead of streaming");
  bool& ignore_eos = p.Flag("--ignore-eos", "keep generating after end-of-sequence tokens");
  bool& no_special = p.Flag("--no-parse-special", "treat special-token text in the prompt as plain text");
  bool& special_in_content = p.Flag("--special-in-content", "with --chat: special-token text in the message becomes "
                                                            "control tokens (as transformers); default: plain text");
  std::string& ids_text = p.String("--prompt-ids", "", "comma-separated token ids instead of a text prompt; @FILE reads them from FILE (separated by commas or whitespace)");
  std::string& session = p.String("--session", "", "continue the saved session NAME (created if absent) and save it "
                                                   "afterwards; see spool sessions");
  bool& reuse_prefix = p.Flag("--reuse-prefix", "with --session: the prompt is the whole text again; reuse the "
                                                 "longest cached prefix instead of appending");
  std::string& trace_routing = p.String("--trace-routing", "", "MoE models: write each token's routed experts per "
                                                                 "layer to FILE (JSON lines: pos, layer, experts, weights)");
  ReasoningFlags rf = AddReasoningFlags(p);
  std::string& forced_output = p.String("--debug-forced-output", "", "TESTING ONLY: output the text of FILE (as the model's "
                                                                     "tokens) instead of sampling");
  std::string& checkpoint_every = p.String(
      "--checkpoint-every", "auto",
      "with --session: save the session every N prompt tokens of a long prefill (at chunk ends), so that a killed "
      "run resumes there when run again; auto: every max(8192, a quarter of the sequence) tokens; off: never");
  bool& truncate = p.Flag("--truncate", "if the prompt does not fit the context, keep its first token and its end "
                                         "(ctx - n_predict tokens in all)");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().empty() || p.positional().size() > 2) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  const std::string model = p.positional()[0];
  // --prompt-ids "" is an empty prompt given as ids (continue a session of a model
  // without a tokenizer), not a missing one.
  const bool ids_given = p.Given("--prompt-ids");
  std::string prompt_text;
  bool have_text = false;
  if (p.positional().size() == 2) {
    prompt_text = p.positional()[1];
    have_text = true;
  } else if (!file.empty()) {
    auto r = ReadFileToString(file);
    if (!r.ok()) return Fail(r.status().message());
    prompt_text = *r;
    have_text = true;
  } else if (!ids_given && !IsTerminal(stdin)) {
    prompt_text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    have_text = true;
  }
  if (!have_text && !ids_given) return Fail("no prompt: give PROMPT, --file, --prompt-ids or pipe text on stdin");
  if (n_predict < 0) return Fail("--max-tokens must be >= 0");
  if (!chat && (!rf.vars->empty() || p.Given("--reasoning-format") || *rf.hide))
    return Fail("--var, --reasoning-format and --hide-reasoning need --chat");
  auto template_vars = rf.TemplateVars();
  if (!template_vars.ok()) return Fail(template_vars.status().message());
  auto checkpoint_r = ParseCheckpointEvery(checkpoint_every);
  if (!checkpoint_r.ok()) return Fail(checkpoint_r.status().message());
  if (p.Given("--checkpoint-every") && session.empty()) return Fail("--checkpoint-every needs --session NAME");

  auto opts = ef.ToOptions();
  if (!opts.ok()) return Fail(opts.status().message());
  opts->measure_disk = stats;  // the plan printed by --stats predicts decode speed
  auto sp = sf.ToParams();
  if (!sp.ok()) return Fail(sp.status().message());
  auto spec = ef.Speculative();
  if (!spec.ok()) return Fail(spec.status().message());
  auto engine_r = runtime::Engine::Open(model, *opts);
  if (!engine_r.ok()) return Fail(engine_r.status().message());
  runtime::Engine& engine = **engine_r;
  auto drafter = runtime::MakeDrafter(engine, *spec);
  if (!drafter.ok()) return Fail(drafter.status().message());
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> trace(nullptr, std::fclose);
  if (!trace_routing.empty()) {
    if (!engine.config().has_moe()) return Fail("--trace-routing: " + model + " is not a mixture-of-experts model");
    trace.reset(std::fopen(trace_routing.c_str(), "w"));
    if (!trace) return Fail("--trace-routing " + trace_routing + ": cannot open for writing: " + std::strerror(errno));
    engine.SetRoutingObserver([f = trace.get()](const models::RoutingRecord& r) {
      for (int64_t i = 0; i < r.rows; ++i) {
        nlohmann::ordered_json j = {{"pos", r.pos[i]}, {"layer", r.layer}};
        j["experts"] = std::vector<int32_t>(r.ids + i * r.k, r.ids + (i + 1) * r.k);
        j["weights"] = std::vector<float>(r.weights + i * r.k, r.weights + (i + 1) * r.k);
        std::fprintf(f, "%s\n", j.dump().c_str());
      }
    });
  }

  runtime::GenerateRequest req;
  req.sampling = *sp;
  req.max_tokens = n_predict;
  req.ignore_eos = ignore_eos;
  chat::ReasoningFormat format = chat::ReasoningFormat::kNone;
  std::string rendered;
  if (chat) {
    auto f = rf.Resolve(engine);
    if (!f.ok()) return Fail(f.status().message());
    format = *f;
    req.keep_special_tokens = format == chat::ReasoningFormat::kHarmony;
  }
  if (!forced_output.empty()) {
    auto text = ReadFileToString(forced_output);
    if (!text.ok()) return Fail("--debug-forced-output: " + text.status().message());
    if (!engine.tokenizer()) return Fail("--debug-forced-output needs a model with a tokenizer");
    auto ids = engine.tokenizer()->Encode(*text, /*add_special=*/false, /*parse_special=*/true);
    if (!ids.ok()) return Fail("--debug-forced-output: " + ids.status().message());
    req.forced_output = *ids;
  }
  req.drafter = drafter->get();
  if (ids_given) {
    auto ids = ReadIdListArgument(ids_text);
    if (!ids.ok()) return Fail(ids.status().message());
    req.prompt = *ids;
  } else {
    PromptOptions po;
    po.chat = chat;
    po.system = system;
    po.parse_special = !no_special;
    po.special_in_content = special_in_content && !no_special;
    po.template_vars = *template_vars;
    auto ids = BuildPrompt(engine, prompt_text, po, &rendered);
    if (!ids.ok()) return Fail(ids.status().message());
    req.prompt = *ids;
  }

  RunSequenceOptions rso{session, reuse_prefix, !ids_given, truncate, n_predict, *checkpoint_r};
  RunSequenceState rss;
  auto seq_r = PrepareRunSequence(engine, rso, &req.prompt, &rss);
  if (!seq_r.ok()) return Fail(seq_r.status().message());
  auto seq = std::move(*seq_r);
  // Not on a terminal (logs of long jobs): a line every SPOOL_PROGRESS_INTERVAL_S seconds (default 10).
  const char* interval = std::getenv("SPOOL_PROGRESS_INTERVAL_S");
  // Quadratic ETA: attention makes each prompt token cost more than the one before.
  ProgressLine progress("prefill", "tok", static_cast<int64_t>(req.prompt.size()), stderr,
                        interval && std::atof(interval) > 0 ? std::atof(interval) : 10.0,
                        ProgressLine::Growth::kQuadratic);
  progress.set_enabled(!json && req.prompt.size() >= 1024);
  // Tests only: a pause after each prefill chunk, so that a test can kill a run mid-prefill.
  const char* chunk_delay = std::getenv("SPOOL_TEST_PREFILL_CHUNK_DELAY_MS");
  Status checkpoint_status;
  auto on_progress = [&](int64_t done, int64_t total) {
    progress.Update(done);
    bool saved = false;
    checkpoint_status = MaybeCheckpointRunSession(engine, *seq, &rss, done, total, &saved);
    if (!checkpoint_status.ok()) return false;
    if (saved)
      std::fprintf(stderr, "%scheckpoint: %lld/%lld prompt tokens saved to %s\n", progress.enabled() ? "\n" : "",
                   static_cast<long long>(done), static_cast<long long>(total), rss.session_path.c_str());
    if (chunk_delay) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(chunk_delay)));
    return true;
  };
  bool first_text = true;
  // --chat: the answer goes through the reasoning splitter (dimmed / hidden reasoning).
  chat::SplitterOptions split_opts;
  split_opts.start_in_reasoning = chat::PromptOpensReasoning(format, rendered);
  std::optional<ReasoningPrinter> printer;
  if (chat) printer.emplace(format, split_opts, *rf.hide, IsTerminal(stdout));
  auto on_text = [&](const std::string& chunk) {
    if (json) return true;
    if (first_text) {
      progress.Finish();
      first_text = false;
    }
    if (printer) {
      printer->Push(chunk);
      return true;
    }
    std::fwrite(chunk.data(), 1, chunk.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  auto res = runtime::Generate(engine, *seq, req, on_text, on_progress);
  if (!checkpoint_status.ok()) return Fail("checkpoint: " + checkpoint_status.message());
  if (!res.ok()) return Fail(res.status().message());
  if (printer && !json) printer->Finish();
  if (Status st = SaveRunSession(engine, *seq, rss, res->ids); !st.ok()) return Fail(st.message());
  if (trace) {
    engine.SetRoutingObserver(nullptr);
    if (std::ferror(trace.get()) || std::fclose(trace.release()) != 0)
      return Fail("--trace-routing " + trace_routing + ": write failed: " + std::strerror(errno));
  }

  const auto& es = engine.stats();
  const auto& fs = engine.forward_stats();
  const auto& ss = engine.stream_stats();
  const auto& plan = engine.plan();
  // The kernel's high-water mark of this process (everything: the disk probe ran at
  // open, inside the plan), not a sum of what spool thinks it allocated.
  const uint64_t peak_rss = PeakRssBytes();
  const double prefill_tps = res->prefill_seconds > 0 ? res->prompt_tokens / res->prefill_seconds : 0;
  const int64_t decoded = static_cast<int64_t>(res->ids.size()) - 1;  // the first token came from prefill
  const double decode_tps = decoded > 0 && res->decode_seconds > 0 ? decoded / res->decode_seconds : 0;
  nlohmann::ordered_json st = {
      {"prompt_tokens", res->prompt_tokens},
      {"generated_tokens", res->ids.size()},
      {"time_to_first_token_s", res->prefill_seconds},
      {"prefill_tokens_per_s", prefill_tps},
      {"decode_tokens_per_s", decode_tps},
      {"load_s", engine.stats().load_seconds},
      {"peak_rss_bytes", peak_rss},
      {"resident_weight_bytes", engine.stats().resident_bytes},
      {"finish_reason", res->finish_reason},
      {"prompt_tokens_reused", rss.prompt_tokens_reused},
      {"prompt_tokens_truncated", rss.prompt_tokens_truncated},
      {"checkpoints", rss.checkpoints},
      {"kv_disk_bytes", engine.kv_disk_bytes()},
      {"weight_bytes_read", ss.bytes_read()},
      {"prefill_weight_bytes", es.prefill_weight_bytes},
      {"decode_weight_bytes", es.decode_weight_bytes},
      {"decode_weight_gb_per_s", es.decode_seconds > 0 ? es.decode_weight_bytes / es.decode_seconds / 1e9 : 0.0},
      {"io_wait_s", fs.seconds_weight_wait},
      {"compute_s", fs.seconds_compute},
      {"plan", runtime::PlanToJson(engine.weights(), plan)},
      {"device", engine.device_name()},
  };
  // --device vulkan: the device's counters (device time, host→device bytes and GB/s;
  // gpu::DeviceStatsJson) and where the VRAM plan put the layers.
  if (const gpu::DeviceStats* ds = engine.device_stats()) {
    st["gpu"] = nlohmann::ordered_json::parse(gpu::DeviceStatsJson(*ds));
    const gpu::VramPlan& vp = *engine.vram_plan();
    st["gpu"]["vram_budget"] = vp.budget;
    st["gpu"]["vram_bytes"] = vp.device_bytes();
    st["gpu"]["resident_layers"] = vp.n_resident;
    st["gpu"]["streamed_layers"] = vp.n_streamed;
    st["gpu"]["kv_hot_pages"] = vp.kv_hot_pages;
    st["gpu"]["kv_pages"] = vp.kv_pages;
    // The three weight tiers: the plan's layers and per-pass bytes, and what moved.
    const gpu::WeightTierStats& ts = *engine.tier_stats();
    auto gbps = [](double bytes, double s) { return s > 0 ? bytes / s / 1e9 : 0.0; };
    st["gpu"]["tiers"] = {
        {"vram_layers", vp.n_resident},
        {"host_layers", vp.n_host},
        {"disk_layers", vp.n_disk},
        {"host_bytes", vp.host_bytes},
        {"staging_bytes", vp.staging_bytes},
        {"plan_host_copy_bytes_per_pass", vp.host_copy_bytes_per_pass},
        {"plan_disk_bytes_per_pass", vp.disk_bytes_per_pass},
        {"passes", ts.passes},
        {"load_bytes", ts.load_bytes},
        {"load_seconds", ts.load_seconds},
        {"host_copy_bytes", ts.host_copy_bytes},
        {"host_copy_gbps", gbps(static_cast<double>(ds->tag_copy_bytes[1]), ds->tag_copy_seconds[1])},
        {"disk_read_bytes", ts.disk_read_bytes},
        {"disk_device_bytes", ts.disk_device_bytes},
        {"disk_bounced_bytes", ts.disk_bounced_bytes},
        {"disk_read_seconds", ts.disk_read_seconds},
        {"disk_read_gbps", gbps(static_cast<double>(ts.disk_device_bytes), ts.disk_read_seconds)},
        {"disk_copy_bytes", ts.disk_copy_bytes},
        {"disk_copy_gbps", gbps(static_cast<double>(ds->tag_copy_bytes[2]), ds->tag_copy_seconds[2])},
        {"read_path", ts.read_path},
    };
  }
  // Speculative decoding: drafts verified and accepted, passes over the weights while
  // decoding (every pass emits one token plus the drafts it accepted).
  const runtime::SpecStats& sp_st = res->spec;
  st["speculative"] = {
      {"drafter", *drafter ? (*drafter)->name() : std::string("none")},
      {"drafted_tokens", sp_st.drafted},
      {"accepted_tokens", sp_st.accepted},
      {"acceptance_rate", sp_st.drafted > 0 ? static_cast<double>(sp_st.accepted) / sp_st.drafted : 0.0},
      {"decode_weight_passes", sp_st.passes},
      {"verify_steps", sp_st.verify_steps},
      {"tokens_per_weight_pass", runtime::TokensPerPass(sp_st)},
      {"self_draft_built", engine.self_draft_built()},
  };
  // Mixture of experts: the expert cache's counters (lookups: an expert a row block's
  // router chose; a prefill chunk looks an expert up once for all its rows).
  const uint64_t expert_lookups = ss.expert_hits + ss.expert_misses;
  const uint64_t tokens_run = es.prefill_tokens + es.decode_tokens;
  const double experts_per_token = tokens_run > 0 ? static_cast<double>(expert_lookups) / tokens_run : 0.0;
  if (engine.config().has_moe()) {
    st["expert_cache_hits"] = ss.expert_hits;
    st["expert_cache_misses"] = ss.expert_misses;
    st["expert_bytes_read"] = ss.expert_bytes;
    st["dense_weight_bytes_read"] = ss.streamed_bytes + ss.embedding_bytes;
    st["experts_per_token"] = experts_per_token;
    st["expert_wait_s"] = ss.expert_wait_seconds;
  }
  if (json) {
    nlohmann::ordered_json out = {{"prompt_ids", req.prompt}, {"ids", res->ids}, {"text", res->text}};
    if (chat) {
      const chat::SplitOutput split = chat::SplitReasoning(format, res->text, split_opts);
      out["reasoning_format"] = chat::ReasoningFormatName(format);
      out["reasoning_content"] = split.reasoning;
      out["content"] = split.content;
    }
    out["stats"] = st;
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("\n");
  if (stats) {
    std::fprintf(stderr,
                 "\nprompt %lld tok, generated %zu tok (%s)\n"
                 "time to first token %.3f s, prefill %.1f tok/s, decode %.2f tok/s\n"
                 "load %.2f s, weights resident %s, peak RSS %s\n",
                 static_cast<long long>(res->prompt_tokens), res->ids.size(), res->finish_reason.c_str(),
                 res->prefill_seconds, prefill_tps, decode_tps, engine.stats().load_seconds,
                 FormatBytes(engine.stats().resident_bytes).c_str(), FormatBytes(peak_rss).c_str());
    std::fprintf(stderr,
                 "weights read %s (prefill %s, decode %s = %.2f GB/s while decoding); "
                 "waiting on I/O %.3f s, computing %.3f s\nresidency plan:\n%s",
                 FormatBytes(ss.bytes_read()).c_str(), FormatBytes(es.prefill_weight_bytes).c_str(),
                 FormatBytes(es.decode_weight_bytes).c_str(),
                 es.decode_seconds > 0 ? es.decode_weight_bytes / es.decode_seconds / 1e9 : 0.0, fs.seconds_weight_wait,
                 fs.seconds_compute, runtime::FormatPlan(engine.weights(), plan).c_str());
    if (const gpu::DeviceStats* ds = engine.device_stats()) {
      const double copy_gbps = ds->copy_seconds > 0 ? ds->copy_bytes / ds->copy_seconds / 1e9 : 0.0;
      const double up_gbps = ds->upload_seconds > 0 ? ds->upload_bytes / ds->upload_seconds / 1e9 : 0.0;
      std::fprintf(stderr,
                   "device %s: device time %.3f s, %llu dispatches; host->device: streamed layers %s (%.2f GB/s), "
                   "uploads %s (%.2f GB/s); device->host %s\n%s\n",
                   engine.device_name().c_str(), ds->device_seconds, static_cast<unsigned long long>(ds->dispatches),
                   FormatBytes(ds->copy_bytes).c_str(), copy_gbps, FormatBytes(ds->upload_bytes).c_str(), up_gbps,
                   FormatBytes(ds->download_bytes).c_str(), engine.vram_plan()->ToString().c_str());
      const gpu::WeightTierStats& ts = *engine.tier_stats();
      std::fprintf(stderr,
                   "weight tiers over %llu passes: host RAM -> VRAM %s (%.2f GB/s); disk -> staging %s "
                   "(%.2f GB/s, %s) -> VRAM %s (%.2f GB/s)\n",
                   static_cast<unsigned long long>(ts.passes), FormatBytes(ts.host_copy_bytes).c_str(),
                   ds->tag_copy_seconds[1] > 0 ? ds->tag_copy_bytes[1] / ds->tag_copy_seconds[1] / 1e9 : 0.0,
                   FormatBytes(ts.disk_device_bytes).c_str(),
                   ts.disk_read_seconds > 0 ? ts.disk_device_bytes / ts.disk_read_seconds / 1e9 : 0.0,
                   ts.read_path.c_str(), FormatBytes(ts.disk_copy_bytes).c_str(),
                   ds->tag_copy_seconds[2] > 0 ? ds->tag_copy_bytes[2] / ds->tag_copy_seconds[2] / 1e9 : 0.0);
    }
    if (*drafter)
      std::fprintf(stderr,
                   "speculative (%s): %llu drafted, %llu accepted (%.1f%%), %llu passes over the weights while "
                   "decoding, %.2f tokens per pass\n",
                   (*drafter)->name().c_str(), static_cast<unsigned long long>(sp_st.drafted),
                   static_cast<unsigned long long>(sp_st.accepted),
                   sp_st.drafted > 0 ? 100.0 * sp_st.accepted / sp_st.drafted : 0.0,
                   static_cast<unsigned long long>(sp_st.passes), runtime::TokensPerPass(sp_st));
    if (engine.config().has_moe())
      std::fprintf(stderr,
                   "expert cache: %llu hits, %llu misses (%.1f%% hits), %.2f experts looked up per token; "
                   "read %s for experts, %s for dense parts; waiting on expert reads %.3f s\n",
                   static_cast<unsigned long long>(ss.expert_hits), static_cast<unsigned long long>(ss.expert_misses),
                   expert_lookups > 0 ? 100.0 * ss.expert_hits / expert_lookups : 0.0, experts_per_token,
                   FormatBytes(ss.expert_bytes).c_str(), FormatBytes(ss.streamed_bytes + ss.embedding_bytes).c_str(),
                   ss.expert_wait_seconds);
  }
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("run", "generate text from a prompt", spool::apps::RunRun);
