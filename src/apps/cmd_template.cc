// `spool template render`: prints exactly what a chat template renders (no trailing
// newline added), for people debugging a template.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/args.h"
#include "apps/command.h"
#include "base/json_input.h"
#include "base/strings.h"
#include "chat/chat_template.h"

namespace spool::apps {
namespace {

Result<nlohmann::ordered_json> ReadJson(const std::string& path, const char* what) {
  auto j = ReadJsonFileBounded(path);
  if (!j.ok()) return InvalidArgument(std::string(what) + " file " + j.status().message());
  return j;
}

int RunTemplate(int argc, char** argv) {
  const char* kUsage =
      "usage: spool template render (--model MODEL | --template FILE) --messages FILE.json\n"
      "         [--tools FILE.json] [--add-generation-prompt] [--var KEY=JSON]...\n"
      "         [--bos TEXT] [--eos TEXT] [--now UNIX_SECONDS]\n";
  if (argc < 1 || std::string(argv[0]) != "render") {
    std::fputs(kUsage, stderr);
    return 2;
  }
  ArgParser p("spool template render", "");
  auto& model = p.String("--model", "", "GGUF file or HF folder whose chat template to use");
  auto& template_file = p.String("--template", "", "Jinja template file");
  auto& messages_file = p.String("--messages", "", "JSON file: a list of messages, or {\"messages\": [...], \"tools\": [...]}");
  auto& tools_file = p.String("--tools", "", "JSON file: a list of tool definitions");
  auto& add_gen = p.Flag("--add-generation-prompt", "end with the assistant turn header");
  auto& vars = p.List("--var", "extra template variable KEY=JSON (e.g. enable_thinking=false)");
  auto& bos = p.String("--bos", "", "bos_token (default: the model's, else empty)");
  auto& eos = p.String("--eos", "", "eos_token (default: the model's, else empty)");
  auto& now = p.Int("--now", -1, "time seen by strftime_now, unix seconds in UTC (default: local clock)");
  if (auto st = p.Parse(argc - 1, argv + 1); !st.ok()) {
    std::fprintf(stderr, "spool: %s\n%s", st.message().c_str(), p.Usage().c_str());
    return 2;
  }
  if (p.help_requested()) {
    std::fputs(kUsage, stdout);
    std::fputs(p.Usage().c_str(), stdout);
    return 0;
  }
  if (model.empty() == template_file.empty() || messages_file.empty()) {
    std::fprintf(stderr, "spool template render: give exactly one of --model or --template, and --messages\n%s", kUsage);
    return 2;
  }

  std::string source;
  chat::ChatTemplateInputs in;
  if (!model.empty()) {
    auto t = chat::LoadChatTemplate(model);
    if (!t.ok()) return Fail(t.status().message());
    source = std::move(t).value();
    auto tokens = chat::LoadSpecialTokens(model);
    if (!tokens.ok()) return Fail(tokens.status().message());
    in.bos_token = tokens->bos_token;
    in.eos_token = tokens->eos_token;
  } else {
    auto t = ReadFileToString(template_file);
    if (!t.ok()) return Fail(t.status().message());
    source = std::move(t).value();
  }
  if (p.Given("--bos")) in.bos_token = bos;
  if (p.Given("--eos")) in.eos_token = eos;

  auto msgs = ReadJson(messages_file, "--messages");
  if (!msgs.ok()) return Fail(msgs.status().message());
  if (msgs->is_array()) {
    in.messages = *msgs;
  } else if (msgs->is_object() && msgs->contains("messages") && (*msgs)["messages"].is_array()) {
    in.messages = (*msgs)["messages"];
    if (msgs->contains("tools")) in.tools = (*msgs)["tools"];
  } else {
    return Fail("--messages file " + messages_file + ": expected a list of messages or {\"messages\": [...]}");
  }
  if (!tools_file.empty()) {
    auto tools = ReadJson(tools_file, "--tools");
    if (!tools.ok()) return Fail(tools.status().message());
    if (!tools->is_array() && !tools->is_null()) return Fail("--tools file " + tools_file + ": expected a list of tools");
    in.tools = *tools;
  }
  for (const auto& kv : vars) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return Fail("--var expects KEY=JSON, got '" + kv + "'");
    auto value = ParseJsonBounded(kv.substr(eq + 1), "--var " + kv.substr(0, eq));
    if (!value.ok()) return Fail(value.status().message() + ": " + kv.substr(eq + 1, 200));
    in.extra_vars[kv.substr(0, eq)] = *value;
  }
  in.add_generation_prompt = add_gen;
  in.now_unix_seconds = now;

  auto out = chat::RenderChatTemplate(source, in);
  if (!out.ok()) return Fail(out.status().message());
  std::fwrite(out->data(), 1, out->size(), stdout);
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("template", "render a chat template: template render --template F --messages M.json", spool::apps::RunTemplate);
