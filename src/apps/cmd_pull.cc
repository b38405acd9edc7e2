// spool pull NAME: downloads a model from the Hugging Face hub into the local HF cache
// (see hub/pull.h for the layout and guarantees). NAME is org/name[@rev] (safetensors),
// org/name[@rev]:QUANT (one GGUF file) or a built-in alias.
#include <cstdio>
#include <string>

#include "apps/args.h"
#include "apps/command.h"
#include "apps/common_flags.h"
#include "apps/model_names.h"
#include "formats/hf_cache.h"
#include "hub/pull.h"

namespace spool::apps {
namespace {

int RunPull(int argc, char** argv) {
  ArgParser p("spool pull", "NAME   (org/name[@rev], org/name[@rev]:QUANT, or an alias from `spool list`)");
  bool& quiet = p.Flag("-q,--quiet", "no progress line");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1) {
    std::fputs(p.Usage().c_str(), stderr);
    return 2;
  }
  const std::string name = p.positional()[0];
  std::string expanded = name;
  for (const auto& e : ModelRegistry())
    if (e.alias == name) expanded = e.repo;
  hub::PullSpec spec;
  std::string id = expanded;
  std::string repo, quant;
  if (SplitQuantName(expanded, &repo, &quant)) {
    id = repo;
    spec.quant = quant;
  }
  auto parsed = formats::ParseHfId(id);
  if (!parsed.ok()) return Fail(name + ": " + parsed.status().message() + " (or an alias: see docs/usage.md)");
  spec.repo = parsed->repo;
  spec.revision = parsed->revision;
  hub::PullOptions options;
  std::vector<std::string> caches = formats::HfCacheDirs();
  if (!caches.empty()) options.cache_dir = caches.front();
  options.progress = !quiet;
  hub::HubClient client(hub::HubConfig::FromEnv());
  auto r = hub::Pull(client, spec, options);
  if (!r.ok()) return Fail("pull " + name + ": " + r.status().message());
  std::printf("pulled %s@%s: %zu files, %llu bytes downloaded\n%s\n", spec.repo.c_str(), r->commit.c_str(),
              r->files.size(), static_cast<unsigned long long>(r->bytes_downloaded), r->snapshot_dir.c_str());
  for (const auto& f : r->unverified) std::printf("unverified (ETag is not a digest): %s\n", f.c_str());
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("pull", "download a model from the Hugging Face hub into the local cache", spool::apps::RunPull);
