// spool sessions [list | show NAME | rm NAME]: the saved sessions of `spool run
// --session NAME` (kv/session.h), kept under $SPOOL_HOME/sessions (~/.spool/sessions).
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "apps/common_flags.h"
#include "base/strings.h"
#include "kv/session.h"

namespace spool::apps {
namespace {

std::string TimeText(int64_t unix) {
  std::time_t t = static_cast<std::time_t>(unix);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

nlohmann::ordered_json InfoJson(const std::string& name, const kv::SessionInfo& s) {
  nlohmann::ordered_json j = {{"name", name},
          {"model", s.model},
          {"fingerprint", s.fingerprint},
          {"tokens", s.tokens.size()},
          {"pending", s.pending},
          {"kv_type", s.kv_dtype == DType::kF32 ? "f32" : "bf16"},
          {"n_layer", s.n_layer},
          {"n_head_kv", s.n_head_kv},
          {"head_dim", s.head_dim},
          {"bytes", s.file_bytes},
          {"created_unix", s.created_unix},
          {"settings", s.settings}};
  if (s.state_bytes > 0) {  // linear-attention models: the recurrent state and its checkpoints
    j["state_bytes"] = s.state_bytes;
    nlohmann::ordered_json cps = nlohmann::ordered_json::array();
    for (const auto& c : s.checkpoints) cps.push_back({{"n_tokens", c.n_tokens}, {"turn", c.turn}});
    j["checkpoints"] = std::move(cps);
  }
  return j;
}

int RunSessions(int argc, char** argv) {
  ArgParser p("spool sessions", "[list | show NAME | rm NAME]");
  bool& json = p.Flag("--json", "print JSON");
  bool& ids = p.Flag("--ids", "show: also print the saved token ids");
  std::string& dir_flag = p.String("--dir", "", "sessions folder (default $SPOOL_HOME/sessions, else ~/.spool/sessions)");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  const auto& pos = p.positional();
  const std::string action = pos.empty() ? "list" : pos[0];
  const std::string dir = dir_flag.empty() ? kv::DefaultSessionsDir() : dir_flag;

  if (action == "list") {
    if (pos.size() > 1) return Fail("sessions list takes no arguments");
    auto list = kv::ListSessions(dir);
    if (!list.ok()) return Fail(list.status().message());
    if (json) {
      auto out = nlohmann::ordered_json::array();
      for (auto& e : *list) {
        if (e.info.ok()) out.push_back(InfoJson(e.name, *e.info));
        else out.push_back({{"name", e.name}, {"error", e.info.status().message()}});
      }
      std::printf("%s\n", out.dump(1).c_str());
      return 0;
    }
    if (list->empty()) {
      std::printf("no sessions in %s\n", dir.c_str());
      return 0;
    }
    std::printf("%-24s %9s %10s  %-19s  %s\n", "NAME", "TOKENS", "SIZE", "SAVED", "MODEL");
    for (auto& e : *list) {
      if (!e.info.ok()) {
        std::printf("%-24s  unusable: %s\n", e.name.c_str(), e.info.status().message().c_str());
        continue;
      }
      const auto& s = *e.info;
      std::printf("%-24s %9zu %10s  %-19s  %s\n", e.name.c_str(), s.tokens.size() + s.pending.size(),
                  FormatBytes(s.file_bytes).c_str(), TimeText(s.created_unix).c_str(), s.model.c_str());
    }
    return 0;
  }
  if (action != "show" && action != "rm") return Fail("unknown action '" + action + "': use list, show NAME or rm NAME");
  if (pos.size() != 2) return Fail("sessions " + action + " needs exactly one NAME");
  const std::string& name = pos[1];
  if (Status st = kv::ValidateSessionName(name); !st.ok()) return Fail(st.message());
  const std::string path = kv::SessionPath(dir, name);

  if (action == "rm") {
    if (std::remove(path.c_str()) != 0) return Fail(path + ": no such session");
    if (!json) std::printf("removed %s\n", name.c_str());
    return 0;
  }
  auto info = kv::ReadSessionInfo(path);
  if (!info.ok()) return Fail(info.status().message());
  Status verified = kv::VerifySession(path, *info);  // every record's checksum
  auto j = InfoJson(name, *info);
  j["path"] = path;
  j["checksums"] = verified.ok() ? "ok" : verified.message();
  if (ids) j["token_ids"] = info->tokens;
  if (json) {
    std::printf("%s\n", j.dump(1).c_str());
  } else {
    const auto& s = *info;
    std::printf("name        %s\npath        %s\nmodel       %s\nfingerprint %s\n", name.c_str(), path.c_str(),
                s.model.c_str(), s.fingerprint.c_str());
    std::printf("tokens      %zu cached + %zu pending\nkv          %s, %lld layers x %lld heads x %lld dims\n",
                s.tokens.size(), s.pending.size(), s.kv_dtype == DType::kF32 ? "f32" : "bf16",
                static_cast<long long>(s.n_layer), static_cast<long long>(s.n_head_kv), static_cast<long long>(s.head_dim));
    if (s.state_bytes > 0) {
      std::printf("state       %s recurrent state + %zu checkpoints at", FormatBytes(s.state_bytes).c_str(),
                  s.checkpoints.size());
      for (const auto& c : s.checkpoints) std::printf(" %lld%s", static_cast<long long>(c.n_tokens), c.turn ? " (turn)" : "");
      std::printf("\n");
    }
    std::printf("size        %s\nsaved       %s\nsettings    %s\nchecksums   %s\n", FormatBytes(s.file_bytes).c_str(),
                TimeText(s.created_unix).c_str(), s.settings.dump().c_str(), verified.ok() ? "ok" : verified.message().c_str());
    if (ids) {
      std::printf("token ids  ");
      for (auto t : s.tokens) std::printf(" %d", t);
      std::printf("\n");
    }
  }
  return verified.ok() ? 0 : 1;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("sessions", "list, show or remove saved sessions (spool run --session NAME)", spool::apps::RunSessions);
