// `spool pull`: downloads the files a model needs from a hub repo into the Hugging Face
// cache layout (shared with huggingface_hub):
//   <cache>/models--org--name/blobs/<etag>                  content (sha256 for LFS files)
//   <cache>/models--org--name/blobs/<etag>.incomplete       a partial download (resumed with Range)
//   <cache>/models--org--name/snapshots/<commit>/<file>     relative symlink to the blob
//   <cache>/models--org--name/refs/<rev>                    the commit hash (rev not a commit)
// A blob is renamed into place only after its size and digest match the hub's ETag;
// snapshot links and refs are written only after every file of the model is in place,
// so a failed pull never leaves a model that resolves.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/status.h"
#include "hub/hub_api.h"

namespace spool::hub {

struct PullSpec {
  std::string repo;      // "org/name"
  std::string revision;  // "" = main
  std::string quant;     // "" = a safetensors repo; else the GGUF label to pick ("Q4_K_M")
};

struct PullOptions {
  std::string cache_dir;          // the hub cache root to write into
  std::FILE* log = stderr;        // progress and notes
  bool progress = true;
};

struct PullResult {
  std::string snapshot_dir;
  std::string commit;
  std::vector<std::string> files;  // repo paths now in the snapshot
  uint64_t bytes_downloaded = 0;
  std::vector<std::string> unverified;  // files whose ETag names no digest we can check
};

// Which files of a safetensors repo a model needs, given the listing (the weights
// index is resolved separately). NotFound when config.json or the weights are absent.
Result<std::vector<std::string>> SafetensorsFiles(const std::vector<std::string>& listing, bool* sharded);
// The .gguf files of a listing matching `quant` (case-insensitive): one file, or every
// part of a split file ("-00001-of-00003"). Ambiguity and absence are errors naming the
// candidates.
Result<std::vector<std::string>> GgufFiles(const std::vector<std::string>& listing, const std::string& quant);

Result<PullResult> Pull(const HubClient& hub, const PullSpec& spec, const PullOptions& options);

}  // namespace spool::hub
