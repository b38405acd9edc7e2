#include "runtime/streaming_weights.h"

#include <sys/mman.h>

#include <algorithm>

#include "base/timer.h"
#include "storage/file.h"
#include "tensor/dequant.h"

namespace spool::runtime {

namespace {

// Backs [p, p + n) with pages now: MADV_POPULATE_WRITE (Linux 5.14+), else one write
// per 4 KiB page.
void PrefaultPages(uint8_t* p, size_t n) {
  if (n == 0) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095};
  const size_t len = reinterpret_cast<uintptr_t>(p) + n - a;
#ifdef MADV_POPULATE_WRITE
  if (madvise(reinterpret_cast<void*>(a), len, MADV_POPULATE_WRITE) == 0) return;
#endif
  for (size_t i = 0; i < n; i += 4096) p[i] = 0;
}

// Allocates a weight buffer backed by transparent huge pages where the kernel gives them
// (THP mode "madvise" or "always"): 2 MiB-aligned, MADV_HUGEPAGE before the first touch.
// Decode reads every weight byte once per token; with 4 KiB pages the hardware
// prefetchers stop at every page boundary and the TLB misses on every page, and the
// float GEMV's DRAM rate drops by about a third (bench/engine/bench_gemv_bw --huge 0,1,
// docs/benchmarks.md). llama.cpp's mmap of the GGUF gets huge page-cache folios.
void ResetHuge(AlignedBuffer& buf, size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  if (bytes < kHuge) return buf.Reset(bytes);
  buf.Reset(bytes, kHuge);
  (void)madvise(buf.data(), (bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);  // advisory: 4 KiB pages if refused
}

}  // namespace

namespace {
constexpr uint64_t kPage = models::kGroupPage;
uint64_t AlignDown(uint64_t x) { return x / kPage * kPage; }
uint64_t AlignUp(uint64_t x) { return (x + kPage - 1) / kPage * kPage; }
}  // namespace

Result<std::unique_ptr<StreamingWeights>> StreamingWeights::Open(const models::ModelWeights& w, const ResidencyPlan& plan,
                                                                 const StreamingOptions& options) {
  const int n_groups = w.n_groups();
  if (static_cast<int>(plan.resident.size()) != n_groups)
    return InvalidArgument("residency plan has " + std::to_string(plan.resident.size()) + " groups, the model " +
                           std::to_string(n_groups));
  std::unique_ptr<StreamingWeights> s(new StreamingWeights(w, plan, options.expert_eviction));
  SPOOL_ASSIGN_OR_RETURN(s->reader_, storage::Reader::Open(w.source().files, options.reader));
  s->stream_index_.assign(n_groups, -1);
  // --device vulkan: the device reads every group itself (its three tiers); this provider
  // holds none and streams none, only the embedding table or rows.
  const bool device = plan.device_tiers();
  for (int g = 0; g < n_groups; ++g) {
    if (plan.resident[g] || device) continue;
    s->stream_index_[g] = static_cast<int>(s->streamed_.size());
    s->streamed_.push_back(g);
  }
  // Resident groups: one batch of page-aligned reads for all of them.
  Stopwatch sw;
  s->resident_.resize(n_groups);
  std::vector<storage::ReadRequest> reqs, one;
  for (int g = 0; g < n_groups; ++g) {
    if (!plan.resident[g] || device) continue;
    ResetHuge(s->resident_[g], w.group(g).bytes);
    s->GroupRequests(g, s->resident_[g].data(), &one);
    reqs.insert(reqs.end(), one.begin(), one.end());
    s->stats_.resident_bytes += w.group(g).bytes;
  }
  const auto& embd = w.token_embd();
  if (w.config().tied_embeddings && !device) {
    if (plan.resident[w.head_group()]) s->embd_data_ = s->resident_[w.head_group()].data() + w.output().group_offset;
  } else if (plan.embedding_resident) {
    const auto& info = *embd.info;
    const uint64_t a = AlignDown(info.offset);
    const uint64_t end = std::min(AlignUp(info.offset + info.nbytes), s->reader_->file(info.file_index).size());
    ResetHuge(s->embd_table_, end - a);
    reqs.push_back(storage::ReadRequest{info.file_index, a, end - a, s->embd_table_.data()});
    s->embd_data_ = s->embd_table_.data() + (info.offset - a);
    s->stats_.resident_bytes += end - a;
  }
  // The expert cache; when it holds every expert, they are read now with the groups.
  const models::ModelConfig& c = w.config();
  if (c.has_moe()) {
    const int64_t E = c.moe.n_expert;
    if (plan.expert_cache_slots < c.moe.n_expert_used)
      return InvalidArgument("residency plan: an expert cache of " + std::to_string(plan.expert_cache_slots) +
                             " slots cannot hold one token's " + std::to_string(c.moe.n_expert_used) + " routed experts");
    if (plan.expert_slot_bytes < w.max_expert_bytes())
      return InvalidArgument("residency plan: expert slot of " + std::to_string(plan.expert_slot_bytes) +
                             " bytes cannot hold an expert of " + std::to_string(w.max_expert_bytes()) + " bytes");
    const int64_t n_slots = std::min<int64_t>(plan.expert_cache_slots, w.n_moe_layers() * E);
    s->expert_slots_.resize(static_cast<size_t>(n_slots));
    ResetHuge(s->expert_arena_, static_cast<uint64_t>(n_slots) * plan.expert_slot_bytes);
    // Fault the whole cache in now (huge pages where the kernel gives them): its first
    // fills would otherwise fault and zero pages inside decode steps.
    PrefaultPages(s->expert_arena_.data(), s->expert_arena_.size());
    s->expert_slot_of_.assign(static_cast<size_t>(c.n_layer * E), -1);
    s->expert_uses_.assign(static_cast<size_t>(c.n_layer * E), 0);
    s->wave_.reserve(static_cast<size_t>(n_slots));
    if (plan.experts_resident()) {
      int32_t slot = 0;
      for (int64_t l = 0; l < c.n_layer; ++l) {
        if (c.layers[l].ffn != models::FfnKind::kMoe) continue;
        for (int64_t e = 0; e < E; ++e, ++slot) {
          s->ExpertRequests(l, e, s->ExpertSlotData(slot), &one);
          reqs.insert(reqs.end(), one.begin(), one.end());
          s->expert_slots_[slot].key = l * E + e;
          s->expert_slot_of_[l * E + e] = slot;
        }
      }
      s->stats_.resident_bytes += s->expert_arena_.size();
    }
  }
  if (!reqs.empty()) SPOOL_TRY(s->reader_->ReadAll(reqs));
  s->stats_.load_seconds = sw.Seconds();
  // The ring, allocated once.
  s->slots_.resize(device ? 0 : static_cast<size_t>(plan.ring_slots));  // device: the ring is its staging
  s->requests_.resize(s->slots_.size());
  for (size_t i = 0; i < s->slots_.size(); ++i) {
    ResetHuge(s->slots_[i].buf, plan.ring_slot_bytes);
    s->requests_[i].reserve(8);
  }
  if (!s->streamed_.empty() && s->slots_.empty())
    return InvalidArgument("residency plan streams " + std::to_string(s->streamed_.size()) + " groups but has no ring");
  for (int g : s->streamed_)
    if (w.group(g).bytes > plan.ring_slot_bytes)
      return InvalidArgument("residency plan: ring slot of " + std::to_string(plan.ring_slot_bytes) +
                             " bytes cannot hold " + w.group(g).name + " (" + std::to_string(w.group(g).bytes) + " bytes)");
  s->Fill();  // the first step's reads start now
  return s;
}

StreamingWeights::~StreamingWeights() {
  Drain();
  for (ExpertSlot& x : expert_slots_)
    if (x.in_flight) (void)reader_->Wait(x.ticket);
}

void StreamingWeights::GroupRequests(int g, uint8_t* base, std::vector<storage::ReadRequest>* out) const {
  out->clear();
  for (const models::MatrixRef* m : w_.group(g).matrices) {
    const auto& info = *m->info;
    const uint64_t a = AlignDown(info.offset);
    // The superset may end past EOF when the tensor is the file's last: clamp (the
    // reader bounces that last unaligned piece).
    const uint64_t end = std::min(AlignUp(info.offset + info.nbytes), reader_->file(info.file_index).size());
    out->push_back(storage::ReadRequest{info.file_index, a, end - a, base + (m->group_offset - (info.offset - a))});
  }
}

void StreamingWeights::ExpertRequests(int64_t l, int64_t e, uint8_t* base,
                                      std::vector<storage::ReadRequest>* out) const {
  out->clear();
  for (const models::FileExtent& x : w_.expert(l, e).extents) {
    const uint64_t a = AlignDown(x.offset);
    const uint64_t end = std::min(AlignUp(x.offset + x.nbytes), reader_->file(x.file_index).size());
    out->push_back(storage::ReadRequest{x.file_index, a, end - a, base + (x.buf_offset - (x.offset - a))});
  }
}

Status StreamingWeights::PrepareExperts(int layer, std::span<const int32_t> ids) {
  const int64_t E = w_.config().moe.n_expert;
  SPOOL_CHECK_MSG(wave_.empty(), "PrepareExperts before the previous wave's ReleaseExperts");
  SPOOL_CHECK(static_cast<int64_t>(ids.size()) <= ExpertCapacity());
  for (const int32_t e : ids) {
    SPOOL_CHECK(e >= 0 && e < E);
    const int64_t key = layer * E + e;
    int32_t s = expert_slot_of_[key];
    ++expert_uses_[key];
    const uint64_t lookups = stats_.expert_hits + stats_.expert_misses + 1;
    if (lookups % (8 * expert_slots_.size()) == 0)
      for (uint32_t& u : expert_uses_) u /= 2;  // aging: popularity fades
    // Eviction order: (uses, last use) with kFrequency, last use with kLru; empty slots
    // (last_use 0, key -1) first.
    auto before = [&](const ExpertSlot& a, const ExpertSlot& b) {
      if (eviction_ == ExpertEviction::kFrequency && a.key >= 0 && b.key >= 0 &&
          expert_uses_[a.key] != expert_uses_[b.key])
        return expert_uses_[a.key] < expert_uses_[b.key];
      return a.last_use < b.last_use;
    };
    if (s >= 0) {
      ++stats_.expert_hits;
    } else {
      // The first unpinned slot in eviction order. One exists: fewer than
      // ExpertCapacity() slots are pinned.
      for (int32_t i = 0; i < static_cast<int32_t>(expert_slots_.size()); ++i) {
        const ExpertSlot& x = expert_slots_[i];
        if (!x.pinned && (s < 0 || before(x, expert_slots_[s]))) s = i;
      }
      SPOOL_CHECK(s >= 0);
      ExpertSlot& x = expert_slots_[s];
      SPOOL_CHECK(!x.in_flight);
      if (x.key >= 0) expert_slot_of_[x.key] = -1;
      x.key = -1;
      ExpertRequests(layer, e, ExpertSlotData(s), &expert_reqs_);
      x.read_bytes = 0;
      for (const auto& r : expert_reqs_) x.read_bytes += r.length;
      auto t = reader_->Submit(expert_reqs_);
      if (!t.ok())
        return Status(t.status().code(), "reading expert " + std::to_string(e) + " of layer " + std::to_string(layer) +
                                             ": " + t.status().message());
      x.ticket = *t;
      x.in_flight = true;
      x.status = Status::Ok();
      x.key = key;
      expert_slot_of_[key] = s;
      ++stats_.expert_misses;
    }
    ExpertSlot& x = expert_slots_[s];
    x.pinned = true;
    x.last_use = ++expert_clock_;
    wave_.push_back(s);
  }
  return Status::Ok();
}

void StreamingWeights::FinishExpertRead(int32_t s) {
  ExpertSlot& x = expert_slots_[s];
  if (!x.in_flight) return;
  Stopwatch sw;
  x.status = reader_->Wait(x.ticket);
  x.in_flight = false;
  stats_.expert_wait_seconds += sw.Seconds();
  if (x.status.ok()) {
    stats_.expert_bytes += x.read_bytes;
  } else if (x.key >= 0) {
    expert_slot_of_[x.key] = -1;  // not cached: the next use reads it again
    x.key = -1;
    x.last_use = 0;
  }
}

Result<const uint8_t*> StreamingWeights::Expert(int layer, int32_t e) {
  const int64_t E = w_.config().moe.n_expert;
  SPOOL_CHECK(e >= 0 && e < E);
  const int32_t s = expert_slot_of_[layer * E + e];
  SPOOL_CHECK_MSG(s >= 0 && expert_slots_[s].pinned, "Expert() of an expert its wave did not name (or asked twice after a failed read)");
  FinishExpertRead(s);
  const Status& st = expert_slots_[s].status;
  if (!st.ok())
    return Status(st.code(), "reading expert " + std::to_string(e) + " of layer " + std::to_string(layer) + ": " +
                                 st.message());
  return static_cast<const uint8_t*>(ExpertSlotData(s));
}

bool StreamingWeights::ExpertReady(int layer, int32_t e) const {
  const int64_t E = w_.config().moe.n_expert;
  SPOOL_CHECK(e >= 0 && e < E);
  const int32_t s = expert_slot_of_[layer * E + e];
  SPOOL_CHECK_MSG(s >= 0 && expert_slots_[s].pinned, "ExpertReady() of an expert its wave did not name");
  return !expert_slots_[s].in_flight;
}

void StreamingWeights::ReleaseExperts(int) {
  for (int32_t s : wave_) {
    FinishExpertRead(s);
    expert_slots_[s].pinned = false;
    expert_slots_[s].status = Status::Ok();
  }
  wave_.clear();
}

void StreamingWeights::Fill() {
  const uint64_t m = streamed_.size(), d = slots_.size();
  while (m > 0 && next_submit_ - next_acquire_ < d) {
    const uint64_t pos = next_submit_++;
    Slot& s = slots_[pos % d];
    auto& reqs = requests_[pos % d];
    s.group = streamed_[pos % m];
    GroupRequests(s.group, s.buf.data(), &reqs);
    auto t = reader_->Submit(reqs);
    if (t.ok()) {
      s.ticket = *t;
      s.in_flight = true;
      s.status = Status::Ok();
    } else {
      s.in_flight = false;
      s.status = t.status();
    }
  }
}

void StreamingWeights::Drain() {
  for (Slot& s : slots_) {
    if (!s.in_flight) continue;
    Status st = reader_->Wait(s.ticket);
    if (st.ok()) stats_.streamed_bytes += GroupReadBytes(w_, s.group);
    s.in_flight = false;
    s.status = Status::Ok();
  }
}

void StreamingWeights::Restart(int64_t at) {
  Drain();
  next_submit_ = next_acquire_ = static_cast<uint64_t>(at);
  acquired_ = false;
  for (Slot& s : slots_) s.status = Status::Ok();
  Fill();
}

void StreamingWeights::BeginStep() {
  if (streamed_.empty()) return;
  // A step that stopped early (an error) leaves the cycle mid-way: start over.
  if (acquired_ || next_acquire_ % streamed_.size() != 0) Restart(0);
  else Fill();
}

Result<const uint8_t*> StreamingWeights::Acquire(int g) {
  SPOOL_CHECK(g >= 0 && g < w_.n_groups());
  if (resident_[g].data() != nullptr) return static_cast<const uint8_t*>(resident_[g].data());
  const uint64_t m = streamed_.size(), d = slots_.size();
  const int idx = stream_index_[g];
  SPOOL_CHECK_MSG(idx >= 0 && !acquired_, "streamed weight group acquired twice without Release");
  // Out of the cyclic order (a caller that skips groups): restart the cycle at g.
  if (next_acquire_ % m != static_cast<uint64_t>(idx)) Restart(idx);
  Fill();
  Slot& s = slots_[next_acquire_ % d];
  SPOOL_CHECK(s.group == g);
  if (s.in_flight) {
    Stopwatch sw;
    s.status = reader_->Wait(s.ticket);
    s.in_flight = false;
    stats_.wait_seconds += sw.Seconds();
    if (s.status.ok()) {
      stats_.streamed_bytes += GroupReadBytes(w_, g);
      ++stats_.groups_streamed;
    }
  }
  if (!s.status.ok()) {
    Status err(s.status.code(), "streaming weight group '" + w_.group(g).name + "': " + s.status.message());
    // Leave the cycle mid-way: the next BeginStep restarts it (and re-reads this group).
    acquired_ = true;
    return err;
  }
  acquired_ = true;
  return static_cast<const uint8_t*>(s.buf.data());
}

void StreamingWeights::Release(int g) {
  if (resident_[g].data() != nullptr) return;
  SPOOL_CHECK_MSG(acquired_ && streamed_[next_acquire_ % streamed_.size()] == g,
                  "Release of a streamed weight group that is not the one acquired");
  acquired_ = false;
  ++next_acquire_;
  Fill();
}

Status StreamingWeights::EmbeddingRows(const int32_t* ids, int64_t n, float* out) {
  const auto& e = w_.token_embd();
  const uint64_t row_bytes = e.row_bytes();
  if (embd_data_ != nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      SPOOL_CHECK(ids[i] >= 0 && ids[i] < e.n_out);
      DequantizeRow(e.dtype, embd_data_ + static_cast<uint64_t>(ids[i]) * row_bytes, out + i * e.n_in, e.n_in);
    }
    return Status::Ok();
  }
  // Rows from the file, one page-aligned superset at a time into the scratch buffer.
  const auto& info = *e.info;
  const storage::File& f = reader_->file(info.file_index);
  const uint64_t span = AlignUp(row_bytes) + kPage;
  if (row_scratch_.size() < span) row_scratch_.Reset(span);
  for (int64_t i = 0; i < n; ++i) {
    SPOOL_CHECK(ids[i] >= 0 && ids[i] < e.n_out);
    const uint64_t o = info.offset + static_cast<uint64_t>(ids[i]) * row_bytes;
    const uint64_t a = AlignDown(o);
    const uint64_t len = AlignUp(o + row_bytes) - a;  // may pass EOF: a short read there is fine
    const int64_t got = f.PreadFull(row_scratch_.data(), a, len);
    if (got < 0)
      return IoError(f.path() + ": reading the embedding row of token " + std::to_string(ids[i]) + " at offset " +
                     std::to_string(o) + ": " + storage::ErrnoText(static_cast<int>(-got)));
    if (static_cast<uint64_t>(got) < o + row_bytes - a)
      return IoError(f.path() + ": file truncated while reading the embedding row of token " + std::to_string(ids[i]) +
                     " (offset " + std::to_string(o) + ", file now ends at " + std::to_string(a + got) + ")");
    f.DropCache(a, len);
    stats_.embedding_bytes += static_cast<uint64_t>(got);
    DequantizeRow(e.dtype, row_scratch_.data() + (o - a), out + i * e.n_in, e.n_in);
  }
  return Status::Ok();
}

}  // namespace spool::runtime
