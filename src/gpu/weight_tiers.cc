#include "gpu/weight_tiers.h"

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace spool::gpu {
namespace {
constexpr uint64_t kPage = models::kGroupPage;
uint64_t AlignDown(uint64_t x) { return x / kPage * kPage; }
uint64_t AlignUp(uint64_t x) { return (x + kPage - 1) / kPage * kPage; }
}  // namespace

const char* WeightTierName(WeightTier t) {
  switch (t) {
    case WeightTier::kVram: return "vram";
    case WeightTier::kHost: return "host";
    case WeightTier::kDisk: return "disk";
  }
  return "?";
}

Result<std::unique_ptr<WeightFileReader>> WeightFileReader::Open(const models::ModelWeights& w,
                                                                 const storage::ReaderOptions& options) {
  std::unique_ptr<WeightFileReader> r(new WeightFileReader());
  SPOOL_ASSIGN_OR_RETURN(r->reader_, storage::Reader::Open(w.source().files, options));
  r->read_path_ = "O_DIRECT straight into the staging buffers";
  if (!options.direct) {
    r->read_path_ = "buffered reads (O_DIRECT not asked for)";
  } else {
    for (size_t i = 0; i < r->reader_->num_files(); ++i)
      if (!r->reader_->file(i).is_direct()) {
        r->read_path_ = "buffered reads + DONTNEED: the filesystem refused O_DIRECT for " + r->reader_->file(i).path();
        SPOOL_LOG_INFO("GPU weights: %s", r->read_path_.c_str());
        break;
      }
  }
  return r;
}

uint64_t WeightFileReader::PayloadBytes(std::span<const models::MatrixRef* const> mats) {
  uint64_t b = 0;
  for (const models::MatrixRef* m : mats) b += m->info->nbytes;
  return b;
}

uint64_t WeightFileReader::ReadBytes(std::span<const models::MatrixRef* const> mats) const {
  uint64_t b = 0;
  for (const models::MatrixRef* m : mats) {
    const auto& info = *m->info;
    const uint64_t end = std::min(AlignUp(info.offset + info.nbytes), reader_->file(info.file_index).size());
    b += end - AlignDown(info.offset);
  }
  return b;
}

void WeightFileReader::Requests(std::span<const models::MatrixRef* const> mats, uint8_t* base,
                                std::vector<storage::ReadRequest>* out) const {
  out->clear();
  for (const models::MatrixRef* m : mats) {
    const auto& info = *m->info;
    const uint64_t a = AlignDown(info.offset);
    // The superset may end past EOF when the tensor is the file's last: clamp (the
    // reader bounces that last unaligned piece).
    const uint64_t end = std::min(AlignUp(info.offset + info.nbytes), reader_->file(info.file_index).size());
    out->push_back(storage::ReadRequest{info.file_index, a, end - a, base + (m->group_offset - (info.offset - a))});
  }
}

Status WeightFileReader::Read(std::span<const models::MatrixRef* const> mats, uint8_t* base, uint64_t base_bytes,
                              const std::string& what) {
  for (const models::MatrixRef* m : mats)
    SPOOL_CHECK_MSG(m->group_offset + m->info->nbytes <= base_bytes, "matrix outside its group's buffer");
  if (!bounce_) {
    Requests(mats, base, &reqs_);
    Status s = reader_->ReadAll(reqs_);
    if (s.ok()) return s;
    // The same read into our own memory: if it succeeds, the destination memory was the
    // problem (O_DIRECT into a device mapping can be refused): bounce from now on.
    bounce_buf_.Reset(base_bytes);
    Requests(mats, bounce_buf_.data(), &reqs_);
    if (Status b = reader_->ReadAll(reqs_); !b.ok()) return Status(s.code(), what + ": " + s.message());
    bounce_ = true;
    read_path_ = "reads through a host bounce buffer: reading into the device's host-visible memory failed (" +
                 s.message() + ")";
    SPOOL_LOG_WARN("GPU weights: %s", read_path_.c_str());
  } else {
    if (bounce_buf_.size() < base_bytes) bounce_buf_.Reset(base_bytes);
    Requests(mats, bounce_buf_.data(), &reqs_);
    if (Status s = reader_->ReadAll(reqs_); !s.ok()) return Status(s.code(), what + ": " + s.message());
  }
  for (const models::MatrixRef* m : mats)
    std::memcpy(base + m->group_offset, bounce_buf_.data() + m->group_offset, m->info->nbytes);
  return Status::Ok();
}

}  // namespace spool::gpu
