// Resolves a Hugging Face hub id ("org/name" or "org/name@revision") to a snapshot
// folder of the local hub cache (huggingface_hub's layout):
//   <cache>/models--org--name/refs/<ref>          (file holding a commit hash)
//   <cache>/models--org--name/snapshots/<commit>/ (the model folder)
// Nothing is downloaded.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace spool::formats {

struct HfId {
  std::string repo;      // "org/name"
  std::string revision;  // "" means "main"
};

// Parses "org/name[@revision]". InvalidArgument if it does not look like a hub id.
Result<HfId> ParseHfId(const std::string& text);

// The cache folders searched, in order: $HF_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, $HOME/.cache/huggingface/hub (unset ones skipped).
std::vector<std::string> HfCacheDirs();

// Returns the snapshot folder. The revision is looked up as refs/<rev> first, then
// as a snapshot folder name (a commit hash). With no revision and no refs/main, a
// cache holding exactly one snapshot uses it. NotFound lists every place looked at.
Result<std::string> ResolveHfCacheId(const std::string& id);

}  // namespace spool::formats
