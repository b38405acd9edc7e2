// spool batch MODEL --in jobs.jsonl --out results.jsonl: offline OpenAI Batch jobs.
// The file side (parsing, shards, resume, records) is apps/batch_job.h; this file runs
// the jobs on one Engine through the step scheduler: up to --batch sequences are
// decoded together, and a finished one makes room for the next job at once.
#include <climits>
#include <cstdlib>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/batch_job.h"
#include "apps/command.h"
#include "apps/common_flags.h"
#include "apps/model_names.h"
#include "base/strings.h"
#include "base/timer.h"
#include "chat/chat_prompt.h"
#include "chat/chat_template.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "server/api_response.h"
#include "server/server.h"

namespace spool::apps {
namespace {

using batch::BatchLine;
using batch::Json;
using batch::LineError;

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string Clock(double seconds) {
  if (seconds < 0 || seconds > 360000) return "--:--";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// done/total, tokens/s and ETA: a live line on a terminal, a plain line every
// `interval` seconds otherwise.
class BatchProgress {
 public:
  BatchProgress(int64_t total, double interval, bool quiet)
      : total_(total), interval_(interval), quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1), start_(Now()) {}
  void Update(int64_t done, int64_t tokens, bool force = false) {
    if (quiet_) return;
    const double now = Now();
    if (!force && now - last_ < (tty_ ? 0.25 : interval_)) return;
    last_ = now;
    const double dt = std::max(now - start_, 1e-9);
    const double eta = done > 0 ? dt / static_cast<double>(done) * static_cast<double>(total_ - done) : -1;
    char buf[256];
    std::snprintf(buf, sizeof buf, "batch  %lld/%lld jobs (%.0f%%)  %.1f tok/s  elapsed %s  ETA %s",
                  static_cast<long long>(done), static_cast<long long>(total_),
                  total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0,
                  static_cast<double>(tokens) / dt, Clock(dt).c_str(), Clock(eta).c_str());
    if (tty_) std::fprintf(stderr, "\r%s\033[K", buf);
    else std::fprintf(stderr, "%s\n", buf);
    drawn_ = true;
  }
  void Finish() {
    if (!quiet_ && tty_ && drawn_) std::fputc('\n', stderr);
  }

 private:
  int64_t total_;
  double interval_;
  bool quiet_, tty_;
  double start_, last_ = 0;
  bool drawn_ = false;
};

// Everything needed to turn a parsed request into prompt ids for this model.
struct PromptBuilder {
  const runtime::Engine* engine;
  std::optional<chat::ChatTemplate> chat_template;
  std::string chat_template_error;
  chat::SpecialTokens special;
  bool special_in_content = false;  // --special-in-content
  chat::ReasoningFormat reasoning_format = chat::ReasoningFormat::kNone;  // decided once (never kAuto)

  // Prompt ids of `spec`, checked against the vocabulary and context; fills
  // spec->max_tokens (and `default_max_tokens` caps it) when the body left it open.
  // `rendered` (chat): the rendered template text.
  std::optional<LineError> Build(server::GenerationSpec* spec, int64_t default_max_tokens, std::vector<int32_t>* out,
                                 std::string* rendered = nullptr) const {
    const tokenizer::Tokenizer* tok = engine->tokenizer();
    auto fail = [](std::string m) { return LineError{"invalid_request", std::move(m)}; };
    if (!tok && !spec->has_prompt_ids) return fail("the model has no tokenizer: give the prompt as token ids");
    if (spec->chat) {
      if (!chat_template) return fail("the model has no usable chat template (" + chat_template_error + "); use a completion 'prompt'");
      chat::ChatTemplateInputs in;
      in.messages = spec->messages;
      in.tools = spec->tools;
      in.add_generation_prompt = true;
      in.bos_token = special.bos_token;
      in.eos_token = special.eos_token;
      in.extra_vars = spec->template_vars;
      chat::ChatPromptOptions po;
      po.special_in_content = special_in_content;
      auto ids = chat::EncodeChatPrompt(*chat_template, *tok, in, po, rendered);
      if (!ids.ok()) return fail("the chat template could not render these messages: " + ids.status().message());
      *out = std::move(ids).value();
    } else if (spec->has_prompt_ids) {
      for (size_t i = 0; i < spec->prompt_ids.size(); ++i)
        if (spec->prompt_ids[i] >= engine->n_vocab())
          return fail("invalid token id " + std::to_string(spec->prompt_ids[i]) + " at prompt[" + std::to_string(i) +
                      "]: the vocabulary has " + std::to_string(engine->n_vocab()) + " tokens");
      *out = spec->prompt_ids;
    } else {
      auto ids = tok->Encode(spec->prompt_text, /*add_special=*/true, /*parse_special=*/true);
      if (!ids.ok()) return fail(ids.status().message());
      *out = std::move(ids).value();
    }
    if (out->empty()) return fail("the prompt is empty (it encodes to no tokens)");
    if (auto e = server::CheckLogitBias(spec->sampling, engine->n_vocab(), /*ollama=*/false)) return fail(e->message);
    const int64_t n = static_cast<int64_t>(out->size()), ctx = engine->ctx();
    if (spec->max_tokens < 0 && default_max_tokens > 0) spec->max_tokens = std::min(default_max_tokens, ctx - n);
    if (n >= ctx || (spec->max_tokens > 0 && n + spec->max_tokens > ctx))
      return LineError{"context_length_exceeded", "the prompt has " + std::to_string(n) + " tokens and asks for " +
                                                      std::to_string(std::max<int64_t>(spec->max_tokens, 0)) +
                                                      " more; the context holds " + std::to_string(ctx)};
    if (spec->max_tokens < 0) spec->max_tokens = ctx - n;
    return std::nullopt;
  }
};

struct InFlight {
  const BatchLine* line;
  server::GenerationSpec spec;
  std::shared_ptr<runtime::RequestHandle> handle;
  chat::ReasoningFormat format = chat::ReasoningFormat::kNone;  // chat answers: how to split them
  bool opens_reasoning = false;                                  // the prompt opened <think>
};

int RunBatch(int argc, char** argv) {
  ArgParser p("spool batch", "MODEL");
  EngineFlags ef = AddEngineFlags(p);
  std::string& in_path = p.String("--in", "", "input JSONL (OpenAI Batch format)");
  std::string& out_path = p.String("--out", "", "output JSONL; appended to, finished custom_ids are skipped");
  int64_t& batch_size = p.Int("--batch", 8, "sequences decoded together in one step");
  std::string& shard_text = p.String("--shard", "0/1", "run only input lines with index % N == i (i/N)");
  int64_t& default_max = p.Int("--max-tokens", 0, "max_tokens for bodies that give none (0: up to the context)");
  std::string& alias = p.String("--alias", "", "model id written into responses (default: the body's model, else MODEL)");
  double& interval = p.Float("--progress-interval", 10.0, "seconds between plain progress lines when stderr is not a terminal");
  bool& fsync_each = p.Flag("--fsync", "fdatasync after each record (survives power loss, not only kill)");
  bool& quiet = p.Flag("-q,--quiet", "no progress lines (the summary is still printed)");
  bool& special_in_content = p.Flag("--special-in-content", "special-token text in chat message content becomes control "
                                                            "tokens (as transformers); default: plain text");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1 || in_path.empty() || out_path.empty()) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  if (batch_size < 1 || batch_size > 256) return Fail("--batch must be in [1, 256], got " + std::to_string(batch_size));
  if (default_max < 0) return Fail("--max-tokens must be >= 0");
  if (!(interval > 0)) return Fail("--progress-interval must be > 0");
  auto shard = batch::ParseShard(shard_text);
  if (!shard.ok()) return Fail(shard.status().message());
  auto opts = ef.ToOptions(Workload{Workload::Kind::kBatch, batch_size, 0});
  if (!opts.ok()) return Fail(opts.status().message());
  auto spec_default = ef.Speculative();
  if (!spec_default.ok()) return Fail(spec_default.status().message());
  {
    char a[PATH_MAX], b[PATH_MAX];
    if (::realpath(in_path.c_str(), a) && ::realpath(out_path.c_str(), b) && std::string(a) == b)
      return Fail("--in and --out name the same file");
  }

  // 1. The input: every line parsed (duplicates are judged over the whole file), then
  //    this shard's share, minus what the output already holds.
  auto input = ReadFileToString(in_path);
  if (!input.ok()) return Fail(input.status().message());
  const std::vector<BatchLine> all = batch::ParseBatchInput(*input);
  input->clear();
  auto resume = batch::RecoverOutput(out_path);
  if (!resume.ok()) return Fail(resume.status().message());
  if (resume->truncated_bytes > 0)
    std::fprintf(stderr, "spool batch: %s ended in a torn record (%llu bytes); truncated it\n", out_path.c_str(),
                 static_cast<unsigned long long>(resume->truncated_bytes));
  std::vector<const BatchLine*> todo;
  int64_t in_shard = 0, skipped = 0;
  for (const BatchLine& l : all) {
    if (!shard->Contains(l.line - 1)) continue;
    ++in_shard;
    if (resume->Done(l)) ++skipped;
    else todo.push_back(&l);
  }
  auto writer = batch::OutputWriter::Open(out_path, fsync_each);
  if (!writer.ok()) return Fail(writer.status().message());

  const double t_start = Now();
  int64_t done = 0, failed = 0, gen_tokens = 0, prompt_tokens = 0;
  auto write = [&](const Json& rec) -> bool {
    Status st = writer->Append(rec);
    if (!st.ok()) {
      std::fprintf(stderr, "spool batch: %s\n", st.message().c_str());
      return false;
    }
    return true;
  };
  // Lines that cannot run are answered first: they need no model.
  std::vector<const BatchLine*> runnable;
  for (const BatchLine* l : todo) {
    if (!l->error) {
      runnable.push_back(l);
      continue;
    }
    if (!write(batch::ErrorRecord(*l, *l->error))) return 1;
    ++done;
    ++failed;
  }

  runtime::SchedulerStats sched_stats;
  double t_ready = Now();
  if (!runnable.empty()) {
    auto resolved = ResolveModelName(p.positional()[0]);
    if (!resolved.ok()) return Fail(resolved.status().message());
    auto engine = runtime::Engine::Open(resolved->path, *opts);
    if (!engine.ok()) return Fail(engine.status().message());
    PromptBuilder pb{engine->get(), std::nullopt, "", {}, special_in_content};
    if (auto source = chat::LoadChatTemplate((*engine)->source().root); source.ok()) {
      auto parsed = chat::ChatTemplate::Parse(*source);
      if (parsed.ok()) pb.chat_template = std::move(parsed).value();
      else pb.chat_template_error = parsed.status().message();
    } else {
      pb.chat_template_error = source.status().message();
    }
    if (auto sp = chat::LoadSpecialTokens((*engine)->source().root); sp.ok()) pb.special = *sp;
    {
      auto source = chat::LoadChatTemplate((*engine)->source().root);
      pb.reasoning_format = chat::DetectReasoningFormat(source.ok() ? *source : std::string(), (*engine)->tokenizer());
    }
    const std::string model_id = !alias.empty() ? alias : (resolved->is_path ? server::DefaultModelId(resolved->path) : p.positional()[0]);
    char fp[32];
    std::snprintf(fp, sizeof fp, "fp_%010llx",
                  static_cast<unsigned long long>(std::hash<std::string>{}((*engine)->source().root) & 0xffffffffffull));

    runtime::SchedulerOptions so;
    so.max_active = static_cast<int>(batch_size);
    so.prefix_cache_entries = 0;  // jobs are independent; every prompt is prefilled the same way
    runtime::Scheduler scheduler(**engine, so);
    t_ready = Now();
    BatchProgress progress(static_cast<int64_t>(todo.size()), interval, quiet);

    // 2. Keep the scheduler fed: --batch decoding plus as many queued (already
    //    tokenized) so that a finished sequence is replaced in the same step.
    const size_t window = static_cast<size_t>(2 * batch_size);
    std::deque<InFlight> flight;
    size_t next = 0;
    while (next < runnable.size() || !flight.empty()) {
      // New jobs go to the scheduler together, so that they are admitted (and their
      // prompts prefilled) in one step rather than one per step.
      std::vector<runtime::ScheduledRequest> fresh;
      const size_t fresh_from = flight.size();
      while (next < runnable.size() && flight.size() < window) {
        const BatchLine* l = runnable[next++];
        InFlight f{l, l->spec, nullptr};
        runtime::ScheduledRequest sr;
        std::string rendered;
        if (auto e = pb.Build(&f.spec, default_max, &sr.prompt, &rendered)) {
          if (!write(batch::ErrorRecord(*l, *e))) return 1;
          ++done;
          ++failed;
          continue;
        }
        sr.sampling = f.spec.sampling;
        sr.max_tokens = f.spec.max_tokens;
        sr.ignore_eos = f.spec.ignore_eos;
        sr.stop = f.spec.stop;
        sr.reuse_prefix = false;
        // Chat answers are split as the server splits them (chat/reasoning.h).
        f.format = pb.reasoning_format;
        if (auto rf = chat::ParseReasoningFormat(f.spec.reasoning_format); rf.ok() && *rf != chat::ReasoningFormat::kAuto)
          f.format = *rf;
        f.opens_reasoning = chat::PromptOpensReasoning(f.format, rendered);
        sr.keep_special_tokens = f.spec.chat && f.format == chat::ReasoningFormat::kHarmony;
        // A job's "speculative" field over the flags (as spool serve's requests).
        if (auto e = server::ResolveSpeculative(f.spec.speculative, *spec_default, (*engine)->draft_engine() != nullptr,
                                                false, &sr.speculative)) {
          if (!write(batch::ErrorRecord(*l, LineError{"invalid_request", e->message}))) return 1;
          ++done;
          ++failed;
          continue;
        }
        fresh.push_back(std::move(sr));
        flight.push_back(std::move(f));
      }
      if (!fresh.empty()) {
        auto handles = scheduler.SubmitMany(std::move(fresh));
        for (size_t i = 0; i < handles.size(); ++i) flight[fresh_from + i].handle = std::move(handles[i]);
      }
      bool any = false;
      for (auto it = flight.begin(); it != flight.end();) {
        runtime::RequestHandle::Event ev;
        bool finished = false;
        while (it->handle->Next(&ev, 0)) {
          if (ev.kind == runtime::RequestHandle::Event::Kind::kText) continue;
          finished = true;
          if (ev.kind == runtime::RequestHandle::Event::Kind::kDone) {
            const bool chat = it->spec.chat;
            const std::string rid = batch::RequestId(*it->line);
            server::ResponseMeta meta{(chat ? "chatcmpl-" : "cmpl-") + rid.substr(10), static_cast<int64_t>(std::time(nullptr)),
                                      it->spec.model.empty() || !alias.empty() ? model_id : it->spec.model, fp};
            std::optional<server::AssistantParts> parts;
            if (chat) {
              chat::SplitterOptions so;
              so.start_in_reasoning = it->opens_reasoning;
              so.parse_tool_calls = it->spec.tools.is_array() && !it->spec.tools.empty();
              so.id_prefix = "call_" + rid.substr(10) + "_";  // deterministic: a resumed job writes the same ids
              parts = server::ToParts(chat::SplitReasoning(it->format, ev.completion.text, so));
            }
            if (!write(batch::SuccessRecord(*it->line, server::OpenAIResponse(meta, chat, ev.completion, parts ? &*parts : nullptr))))
              return 1;
            gen_tokens += static_cast<int64_t>(ev.completion.ids.size());
            prompt_tokens += ev.completion.prompt_tokens;
          } else {
            if (!write(batch::ErrorRecord(*it->line, LineError{"generation_failed", ev.error.message()}))) return 1;
            ++failed;
          }
          ++done;
          break;
        }
        if (finished) {
          it = flight.erase(it);
          any = true;
        } else {
          ++it;
        }
      }
      progress.Update(done, gen_tokens);
      if (!any && !flight.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    progress.Update(done, gen_tokens, /*force=*/true);
    progress.Finish();
    sched_stats = scheduler.stats();
  }

  // 3. Summary.
  const double t_end = Now();
  const double run_s = std::max(t_end - t_ready, 1e-9);
  std::fprintf(stderr,
               "spool batch: shard %lld/%lld: %lld lines, %lld already done, %lld written now (%lld errors) in %.1f s "
               "(model load %.1f s)\n",
               static_cast<long long>(shard->index), static_cast<long long>(shard->count), static_cast<long long>(in_shard),
               static_cast<long long>(skipped), static_cast<long long>(done), static_cast<long long>(failed), t_end - t_start,
               t_ready - t_start);
  if (gen_tokens > 0 || prompt_tokens > 0) {
    const double mean_batch = sched_stats.decode_steps > 0 ? static_cast<double>(sched_stats.decode_batch_tokens) /
                                                                 static_cast<double>(sched_stats.decode_steps)
                                                           : 0.0;
    std::fprintf(stderr,
                 "spool batch: %lld prompt tokens (prefill-only steps %.1f s), %lld generated tokens (decode %.1f s): "
                 "%.2f generated tok/s overall, %.2f tok/s while decoding; %lld decode steps, mean batch %.2f\n",
                 static_cast<long long>(prompt_tokens), sched_stats.prefill_step_seconds, static_cast<long long>(gen_tokens),
                 sched_stats.decode_seconds, static_cast<double>(gen_tokens) / run_s,
                 // Tokens the decode steps emitted: one per decoding sequence plus accepted drafts.
                 sched_stats.decode_seconds > 0
                     ? static_cast<double>(sched_stats.decode_batch_tokens + sched_stats.spec_accepted) /
                           sched_stats.decode_seconds
                     : 0.0,
                 static_cast<long long>(sched_stats.decode_steps), mean_batch);
    if (sched_stats.spec_drafted > 0)
      std::fprintf(stderr,
                   "spool batch: speculative: %lld draft tokens verified, %lld accepted (%.1f%%); %.2f tokens per decode "
                   "step (pass over the weights)\n",
                   static_cast<long long>(sched_stats.spec_drafted), static_cast<long long>(sched_stats.spec_accepted),
                   100.0 * static_cast<double>(sched_stats.spec_accepted) / static_cast<double>(sched_stats.spec_drafted),
                   sched_stats.decode_steps > 0 ? static_cast<double>(sched_stats.decode_batch_tokens + sched_stats.spec_accepted) /
                                                      static_cast<double>(sched_stats.decode_steps)
                                                : 0.0);
  }
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("batch", "run OpenAI Batch JSONL jobs (resumable, shardable)", spool::apps::RunBatch);
