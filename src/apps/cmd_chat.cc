// spool chat MODEL: an interactive chat REPL (libedit line editing and history).
//
// Each turn renders the whole conversation with the model's chat template and
// feeds only the tokens that differ from what the sequence already holds (the
// previous turns stay in the KV cache). Ctrl-C stops the current answer and
// returns to the prompt; Ctrl-D or /bye leaves.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <editline/readline.h>
#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "apps/common_flags.h"
#include "apps/model_names.h"
#include "apps/prompt.h"
#include "apps/reasoning_view.h"
#include "base/json_input.h"
#include "base/strings.h"
#include "base/sysinfo.h"
#include "kv/session.h"
#include "runtime/generate.h"

namespace spool::apps {
namespace {

std::atomic<bool> g_interrupted{false};
void OnSigint(int) { g_interrupted.store(true); }

using Json = nlohmann::ordered_json;

struct ChatState {
  Json messages = Json::array();
  std::string system;
  sampling::SamplingParams sampling;
  int64_t max_tokens = 512;

  Json Conversation() const {
    Json all = Json::array();
    if (!system.empty()) all.push_back({{"role", "system"}, {"content", system}});
    for (const auto& m : messages) all.push_back(m);
    return all;
  }
};

const char* kHelp =
    "Commands:\n"
    "  /bye                 leave\n"
    "  /clear               forget the conversation (keeps the system message)\n"
    "  /set temperature X   also top_p, top_k, min_p, seed, repeat_penalty, num_predict\n"
    "  /set system TEXT     set the system message (clears the conversation)\n"
    "  /show                print the settings\n"
    "  /save FILE           save the conversation and settings as JSON\n"
    "  /load FILE           load a saved conversation\n"
    "  \"\"\"                  start/end multi-line input\n"
    "  Ctrl-C stops the current answer; Ctrl-D leaves.\n";

// Applies "/set NAME VALUE"; returns a message for the user.
std::string ApplySet(ChatState& st, const std::string& args) {
  size_t sp = args.find(' ');
  std::string name = args.substr(0, sp);
  std::string value = sp == std::string::npos ? "" : args.substr(sp + 1);
  if (name == "system") {
    st.system = value;
    st.messages = Json::array();
    return "Set system message (conversation cleared).";
  }
  if (value.empty()) return "usage: /set NAME VALUE (see /help)";
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (*end != '\0') return "'" + value + "' is not a number";
  sampling::SamplingParams p = st.sampling;
  if (name == "temperature" || name == "temp") p.temperature = static_cast<float>(v);
  else if (name == "top_p") p.top_p = static_cast<float>(v);
  else if (name == "top_k") p.top_k = static_cast<int32_t>(v);
  else if (name == "min_p") p.min_p = static_cast<float>(v);
  else if (name == "seed") p.seed = static_cast<uint64_t>(v);
  else if (name == "repeat_penalty") p.repeat_penalty = static_cast<float>(v);
  else if (name == "num_predict" || name == "max_tokens") {
    if (v < 1) return "num_predict must be >= 1";
    st.max_tokens = static_cast<int64_t>(v);
    return "Set num_predict to " + std::to_string(st.max_tokens) + ".";
  } else {
    return "unknown parameter '" + name + "' (see /help)";
  }
  if (Status s = p.Validate(); !s.ok()) return s.message();
  st.sampling = p;
  return "Set " + name + " to " + value + ".";
}

Json SaveJson(const ChatState& st) {
  return Json{{"system", st.system},
              {"messages", st.messages},
              {"options",
               {{"temperature", st.sampling.temperature},
                {"top_p", st.sampling.top_p},
                {"top_k", st.sampling.top_k},
                {"min_p", st.sampling.min_p},
                {"repeat_penalty", st.sampling.repeat_penalty},
                {"num_predict", st.max_tokens}}}};
}

// Applies a conversation saved by SaveJson (from /save, or a chat session's settings);
// `path` names it in errors.
Status LoadJsonObject(ChatState& st, const Json& j, const std::string& path) {
  if (!j.is_object()) return InvalidArgument(path + ": not a JSON object");
  if (!j.contains("messages") || !j["messages"].is_array()) return InvalidArgument(path + ": 'messages' must be an array");
  for (const auto& m : j["messages"])
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
      return InvalidArgument(path + ": every message needs string 'role' and 'content'");
  ChatState next = st;
  next.messages = j["messages"];
  if (j.contains("system") && j["system"].is_string()) next.system = j["system"].get<std::string>();
  if (j.contains("options") && j["options"].is_object()) {
    for (auto& [k, v] : j["options"].items()) {
      if (!v.is_number()) continue;
      std::string msg = ApplySet(next, k + " " + v.dump());
      if (msg.rfind("Set ", 0) != 0) return InvalidArgument(path + ": options." + k + ": " + msg);
    }
  }
  st = next;
  return Status::Ok();
}

Status LoadJson(ChatState& st, const std::string& path) {
  SPOOL_ASSIGN_OR_RETURN(Json j, ReadJsonFileBounded(path));
  return LoadJsonObject(st, j, path);
}

// --session NAME: the conversation (settings["chat"], as SaveJson) and its KV cache in
// spool's sessions/ (kv/session.h), saved after every answer, so a later `spool chat
// --session NAME` continues without recomputing what the cache holds.
struct ChatSession {
  std::string path;  // "" = none

  // Loads an existing session into st and returns its sequence; a new name gives a fresh one.
  Result<std::unique_ptr<runtime::Sequence>> Open(runtime::Engine& engine, const std::string& name, ChatState& st) {
    if (name.empty()) return engine.NewSequence();
    SPOOL_TRY(kv::ValidateSessionName(name));
    path = kv::SessionPath(kv::DefaultSessionsDir(), name);
    struct stat sb{};
    if (::stat(path.c_str(), &sb) != 0) return engine.NewSequence();
    SPOOL_ASSIGN_OR_RETURN(kv::SessionInfo info, kv::ReadSessionInfo(path));
    if (!info.settings.contains("chat"))
      return InvalidArgument(path + ": not a chat session (it was saved by spool run; continue it there)");
    SPOOL_TRY(LoadJsonObject(st, info.settings["chat"], path));
    std::vector<int32_t> pending;
    SPOOL_ASSIGN_OR_RETURN(auto seq, engine.LoadSession(path, &pending));
    std::printf("Resumed session %s: %zu messages, %lld tokens cached.\n", name.c_str(), st.messages.size(),
                static_cast<long long>(seq->n_tokens()));
    return seq;
  }

  void Save(runtime::Engine& engine, runtime::Sequence& seq, const ChatState& st) const {
    if (path.empty()) return;
    Status s = engine.SaveSession(path, seq, {}, Json{{"chat", SaveJson(st)}});
    if (!s.ok()) std::printf("warning: the session was not saved: %s\n", s.message().c_str());
  }
};

// Reads one user message: a line, or a """-delimited block. Returns false on EOF.
bool ReadMessage(std::string* out) {
  out->clear();
  for (;;) {
    g_interrupted = false;
    char* line = readline(">>> ");
    if (!line) {
      if (g_interrupted.exchange(false)) {
        std::printf("\n");
        continue;  // Ctrl-C at the prompt: a fresh line
      }
      return false;
    }
    std::string text = line;
    std::free(line);
    if (text.empty()) continue;
    add_history(text.c_str());
    if (text.rfind("\"\"\"", 0) != 0) {
      *out = text;
      return true;
    }
    std::string block = text.substr(3);
    size_t close = block.find("\"\"\"");
    if (close != std::string::npos) {
      *out = block.substr(0, close);
      return true;
    }
    for (;;) {
      char* more = readline("... ");
      if (!more) return false;
      std::string m = more;
      std::free(more);
      size_t end = m.find("\"\"\"");
      if (end != std::string::npos) {
        if (!block.empty()) block += "\n";
        block += m.substr(0, end);
        *out = block;
        return true;
      }
      if (!block.empty()) block += "\n";
      block += m;
    }
  }
}

int RunChat(int argc, char** argv) {
  ArgParser p("spool chat", "MODEL");
  EngineFlags ef = AddEngineFlags(p);
  SamplingFlags sf = AddSamplingFlags(p);
  int64_t& n_predict = p.Int("-n,--max-tokens", 512, "tokens per answer at most");
  std::string& system = p.String("--system", "", "system message");
  std::string& load = p.String("--load", "", "start from a conversation saved with /save");
  bool& special_in_content = p.Flag("--special-in-content", "special-token text typed in messages becomes control "
                                                            "tokens (as transformers); default: plain text");
  std::string& session = p.String("--session", "", "keep the conversation and its KV cache in spool's sessions/ under NAME, "
                                                   "saved after every answer; an existing NAME is resumed");
  bool& stats = p.Flag("--stats", "after each answer, print how many prompt tokens were reused from the cache and "
                                  "how many computed");
  ReasoningFlags rf = AddReasoningFlags(p);
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  auto template_vars = rf.TemplateVars();
  if (!template_vars.ok()) return Fail(template_vars.status().message());
  auto resolved = ResolveModelName(p.positional()[0]);
  if (!resolved.ok()) return Fail(resolved.status().message());
  auto opts = ef.ToOptions(Workload{Workload::Kind::kChat});
  if (!opts.ok()) return Fail(opts.status().message());
  auto sp = sf.ToParams();
  if (!sp.ok()) return Fail(sp.status().message());
  if (n_predict < 1) return Fail("--max-tokens must be >= 1");
  auto spec = ef.Speculative();
  if (!spec.ok()) return Fail(spec.status().message());
  auto engine_r = runtime::Engine::Open(resolved->path, *opts);
  if (!engine_r.ok()) return Fail(engine_r.status().message());
  runtime::Engine& engine = **engine_r;
  // One drafter for the whole conversation (a draft model keeps its own sequence in step).
  auto drafter = runtime::MakeDrafter(engine, *spec);
  if (!drafter.ok()) return Fail(drafter.status().message());
  const tokenizer::Tokenizer* tok = engine.tokenizer();
  if (!tok) return Fail(resolved->path + ": the model has no tokenizer");
  {
    Json probe = Json::array({Json{{"role", "user"}, {"content", "hi"}}});
    auto r = RenderConversation(engine, probe, nullptr, true);
    if (!r.ok()) return Fail(resolved->path + ": no usable chat template: " + r.status().message());
  }
  auto format = rf.Resolve(engine);
  if (!format.ok()) return Fail(format.status().message());

  ChatState st;
  st.sampling = *sp;
  st.system = system;
  st.max_tokens = n_predict;
  if (!load.empty())
    if (Status s = LoadJson(st, load); !s.ok()) return Fail(s.message());

  const std::string history = SpoolHome() + "/history";
  rl_catch_signals = 0;
  read_history(history.c_str());
  stifle_history(1000);
  struct sigaction sa{};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns at once
  sigaction(SIGINT, &sa, nullptr);

  std::printf("spool chat: %s (ctx %lld). /help for commands, /bye to leave.\n", p.positional()[0].c_str(),
              static_cast<long long>(engine.ctx()));
  ChatSession chat_session;
  auto seq_r = chat_session.Open(engine, session, st);
  if (!seq_r.ok()) return Fail(seq_r.status().message());
  std::unique_ptr<runtime::Sequence> seq = std::move(seq_r).value();
  std::string input;
  while (ReadMessage(&input)) {
    if (input[0] == '/') {
      std::string cmd = input.substr(0, input.find(' '));
      std::string rest = input.size() > cmd.size() ? input.substr(cmd.size() + 1) : "";
      if (cmd == "/bye" || cmd == "/exit") break;
      if (cmd == "/help" || cmd == "/?") std::fputs(kHelp, stdout);
      else if (cmd == "/clear") {
        st.messages = Json::array();
        std::printf("Cleared the conversation.\n");
      } else if (cmd == "/set") std::printf("%s\n", ApplySet(st, rest).c_str());
      else if (cmd == "/show") std::printf("%s\n", SaveJson(st)["options"].dump().c_str());
      else if (cmd == "/save") {
        std::ofstream f(rest);
        if (rest.empty() || !(f << SaveJson(st).dump(2) << "\n")) std::printf("cannot write '%s'\n", rest.c_str());
        else std::printf("Saved the conversation to %s.\n", rest.c_str());
      } else if (cmd == "/load") {
        Status s = LoadJson(st, rest);
        if (s.ok()) std::printf("Loaded %zu messages from %s.\n", st.messages.size(), rest.c_str());
        else std::printf("%s\n", s.message().c_str());
      } else {
        std::printf("unknown command %s (see /help)\n", cmd.c_str());
      }
      continue;
    }
    st.messages.push_back({{"role", "user"}, {"content", input}});
    std::string rendered;
    auto ids = EncodeConversation(engine, st.Conversation(), nullptr, true, special_in_content, *template_vars, &rendered);
    if (!ids.ok()) {
      std::printf("error: %s\n", ids.status().message().c_str());
      st.messages.erase(st.messages.size() - 1);
      continue;
    }
    // Keep the longest common prefix of what the sequence holds (at least one token is fed).
    const auto& held = seq->tokens();
    int64_t common = 0;
    const int64_t limit = std::min<int64_t>(static_cast<int64_t>(held.size()), static_cast<int64_t>(ids->size()) - 1);
    while (common < limit && held[common] == (*ids)[common]) ++common;
    // Linear-attention models resume at the nearest kept state checkpoint at or before it.
    common = engine.RewindPoint(*seq, common);
    if (Status s = engine.Truncate(*seq, common); !s.ok()) return Fail(s.message());
    const int64_t reused = common;
    // Linear-attention models keep their recurrent state only at checkpoints: feed all
    // but the prompt's last token and keep one there, so that the next turn (whose
    // rendering repeats this prompt) resumes from it instead of recomputing this turn.
    if (seq->recurrent() && static_cast<int64_t>(ids->size()) - common > 1) {
      std::vector<float> discard(static_cast<size_t>(engine.n_vocab()));
      const std::span<const int32_t> head(ids->data() + common, ids->size() - 1 - static_cast<size_t>(common));
      if (Status s = engine.Prefill(*seq, head, discard.data()); !s.ok()) {
        std::printf("error: %s\n", s.message().c_str());
        st.messages.erase(st.messages.size() - 1);
        continue;
      }
      engine.KeepCheckpoint(*seq);
      common = static_cast<int64_t>(ids->size()) - 1;
    }
    runtime::GenerateRequest req;
    req.prompt.assign(ids->begin() + common, ids->end());
    req.sampling = st.sampling;
    req.drafter = drafter->get();
    req.max_tokens = std::min<int64_t>(st.max_tokens, engine.ctx() - static_cast<int64_t>(ids->size()));
    req.keep_special_tokens = *format == chat::ReasoningFormat::kHarmony;
    if (req.max_tokens < 1) {
      std::printf("The conversation fills the context (%lld tokens); /clear to start over.\n", static_cast<long long>(engine.ctx()));
      st.messages.erase(st.messages.size() - 1);
      continue;
    }
    sigaction(SIGINT, &sa, nullptr);  // libedit may have replaced the handler while reading
    chat::SplitterOptions split_opts;
    split_opts.start_in_reasoning = chat::PromptOpensReasoning(*format, rendered);
    ReasoningPrinter printer(*format, split_opts, *rf.hide, IsTerminal(stdout));
    auto on_text = [&printer](const std::string& chunk) {
      printer.Push(chunk);
      return !g_interrupted.load();
    };
    auto progress = [](int64_t, int64_t) { return !g_interrupted.load(); };
    auto res = runtime::Generate(engine, *seq, req, on_text, progress);
    if (!res.ok()) {
      printer.Finish();  // ends dimmed text
      if (res.status().code() == ErrorCode::kCancelled) {
        std::printf("\n");
        st.messages.erase(st.messages.size() - 1);
        continue;
      }
      std::printf("\nerror: %s\n", res.status().message().c_str());
      st.messages.erase(st.messages.size() - 1);
      continue;
    }
    printer.Finish();
    if (res->finish_reason == "cancelled") std::printf("^C");
    std::printf("\n\n");
    if (stats)
      std::printf("[prompt: %zu tokens, %lld reused from the cache, %lld computed; %zu generated]\n\n", ids->size(),
                  static_cast<long long>(reused), static_cast<long long>(static_cast<int64_t>(ids->size()) - reused),
                  res->ids.size());
    // The answer without its reasoning, which templates take from a field of its own:
    // gpt-oss's from `thinking`, Qwen3's (and most) from `reasoning_content`.
    Json answer{{"role", "assistant"}, {"content", printer.splitter().content()}};
    if (!printer.splitter().reasoning().empty())
      answer[*format == chat::ReasoningFormat::kHarmony ? "thinking" : "reasoning_content"] = printer.splitter().reasoning();
    st.messages.push_back(std::move(answer));
    chat_session.Save(engine, *seq, st);
  }
  std::string dir = SpoolHome();
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) write_history(history.c_str());
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("chat", "chat with a model in the terminal", spool::apps::RunChat);
