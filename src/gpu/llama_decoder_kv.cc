// LlamaDecoder's KV cache: the per-sequence DeviceKv, the KV window (hot pages in a VRAM
// ring, older pages in a host kv::SequenceKv), the attention over both, and the
// session download/upload. See llama_decoder.h ("KV beyond VRAM").
#include <algorithm>
#include <cstring>
#include <string>

#include "gpu/llama_decoder.h"

namespace spool::gpu {
namespace {

// ReadKv / WriteKv's arguments: rows [0, n) of `layer` must lie in a cache of n_layer × ctx.
Status CheckKvRows(int64_t n_layer, int64_t ctx, int64_t layer, int64_t n) {
  if (layer < 0 || layer >= n_layer || n < 0 || n > ctx)
    return InvalidArgument("GPU decoder: KV rows [0, " + std::to_string(n) + ") of layer " + std::to_string(layer) +
                           " are outside the cache (" + std::to_string(n_layer) + " layers, context " +
                           std::to_string(ctx) + ")");
  return Status::Ok();
}

}  // namespace

uint64_t LlamaDecoder::KvRowBytes() const {
  return static_cast<uint64_t>(w_.config().kv_dim()) * (opts_.kv_dtype == DType::kF32 ? 4 : 2);
}

int64_t LlamaDecoder::KvHotRows() const {
  return plan_.kv_windowed() ? plan_.kv_hot_pages * opts_.page_tokens : opts_.ctx;
}

Result<std::unique_ptr<DeviceKv>> LlamaDecoder::NewKv(kv::SequenceKv* cold) {
  const models::ModelConfig& c = w_.config();
  auto kv = std::make_unique<DeviceKv>();
  for (auto [b, what] : {std::pair{&kv->k, "K cache"}, std::pair{&kv->v, "V cache"}}) {
    auto r = dev_.Allocate(plan_.kv_seq_bytes / 2, MemoryKind::kDevice, what);
    if (!r.ok()) return r.status().WithContext("GPU decoder");
    *b = std::move(r.value());
  }
  if (!plan_.kv_windowed()) return kv;
  kv->slot_page.assign(static_cast<size_t>(plan_.kv_hot_pages), -1);
  if (cold == nullptr) {
    kv::KvLayout layout{c.n_layer, c.n_head_kv, c.head_dim, opts_.page_tokens, opts_.kv_dtype, {}};
    kv->own_cold = std::make_unique<kv::InRamKv>(layout);
    cold = kv->own_cold.get();
  }
  const kv::KvLayout& L = cold->layout();
  if (L.n_layer != c.n_layer || L.row_elems() != c.kv_dim() || L.page_tokens != opts_.page_tokens ||
      L.dtype != opts_.kv_dtype)
    return InvalidArgument("GPU decoder: the host KV cache has " + std::to_string(L.n_layer) + " layers × " +
                           std::to_string(L.row_elems()) + " " + std::string(DTypeName(L.dtype)) + " in pages of " +
                           std::to_string(L.page_tokens) + "; expected " + std::to_string(c.n_layer) + " × " +
                           std::to_string(c.kv_dim()) + " " + std::string(DTypeName(opts_.kv_dtype)) +
                           " in pages of " + std::to_string(opts_.page_tokens));
  if (cold->n_tokens() != 0)
    return InvalidArgument("GPU decoder: the host KV cache of a new sequence holds " +
                           std::to_string(cold->n_tokens()) + " tokens (expected an empty one)");
  kv->cold = cold;
  return kv;
}

Status LlamaDecoder::Truncate(DeviceKv& kv, int64_t n) {
  if (n < 0 || n > kv.n_tokens)
    return InvalidArgument("GPU decoder: cannot truncate a KV cache of " + std::to_string(kv.n_tokens) +
                           " tokens to " + std::to_string(n));
  if (kv.cold != nullptr && kv.cold->n_tokens() > n) SPOOL_TRY(kv.cold->Truncate(n));
  kv.n_tokens = n;
  return Status::Ok();
}

Status LlamaDecoder::SpillKv(DeviceKv& kv, int64_t to) {
  const int64_t from = kv.cold->n_tokens();
  if (to <= from) return Status::Ok();
  const int64_t P = opts_.page_tokens, H = plan_.kv_hot_pages, n_layer = w_.config().n_layer;
  const uint64_t row = KvRowBytes();
  const uint64_t layer_bytes = static_cast<uint64_t>(KvHotRows()) * row;
  std::vector<uint8_t> k(static_cast<size_t>(to - from) * row), v(k.size());
  SPOOL_TRY(dev_.Sync());  // the ring's rows are written by recorded or in-flight passes
  for (int64_t l = 0; l < n_layer; ++l) {
    for (int64_t pos = from; pos < to;) {
      const int64_t page = pos / P, slot = page % H;
      if (kv.slot_page[static_cast<size_t>(slot)] != page)
        return InternalError("GPU decoder: KV page " + std::to_string(page) +
                             " is neither in VRAM nor in the host cache (spilling rows up to " + std::to_string(to) +
                             ")");
      const int64_t cnt = std::min(to, (page + 1) * P) - pos;
      const uint64_t off = static_cast<uint64_t>(l) * layer_bytes + static_cast<uint64_t>(slot * P + pos % P) * row;
      const size_t dst = static_cast<size_t>(pos - from) * row;
      SPOOL_TRY(dev_.Download(kv.k, off, k.data() + dst, static_cast<uint64_t>(cnt) * row));
      SPOOL_TRY(dev_.Download(kv.v, off, v.data() + dst, static_cast<uint64_t>(cnt) * row));
      pos += cnt;
    }
    SPOOL_TRY(kv.cold->WriteRaw(l, from, to - from, k.data(), v.data()));
  }
  return kv.cold->Commit(to - from);  // Commit takes the count of new tokens
}

Status LlamaDecoder::PrepareKvWindow(DeviceKv& kv, int64_t n) {
  if (!plan_.kv_windowed()) return Status::Ok();
  const int64_t P = opts_.page_tokens, H = plan_.kv_hot_pages, pos0 = kv.n_tokens;
  const int64_t first = pos0 / P, last = (pos0 + n - 1) / P;
  SPOOL_CHECK(last - first < H);  // the plan's window holds every page of a chunk
  // Pages whose slots this pass reuses: earlier pages go to the host cache first.
  int64_t spill_to = 0;
  for (int64_t q = first; q <= last; ++q) {
    const int64_t r = kv.slot_page[static_cast<size_t>(q % H)];
    if (r >= 0 && r < q && r * P < pos0) spill_to = std::max(spill_to, std::min((r + 1) * P, pos0));
  }
  SPOOL_TRY(SpillKv(kv, spill_to));
  // A page this pass continues that is only in the host cache (after a truncation into
  // an evicted page) comes back into its slot.
  const uint64_t row = KvRowBytes();
  const uint64_t layer_bytes = static_cast<uint64_t>(KvHotRows()) * row;
  for (int64_t q = first; q <= last; ++q) {
    int64_t& slot_page = kv.slot_page[static_cast<size_t>(q % H)];
    if (slot_page == q) continue;
    slot_page = -1;
    if (q * P < pos0) {
      if (kv.cold->n_tokens() < pos0)
        return InternalError("GPU decoder: KV rows [" + std::to_string(q * P) + ", " + std::to_string(pos0) +
                             ") are neither in VRAM nor in the host cache");
      SPOOL_TRY(dev_.Sync());
      for (int64_t l = 0; l < w_.config().n_layer; ++l) {
        Status st = Status::Ok();
        SPOOL_TRY(kv.cold->ForEachPage(l, pos0, [&](const KvPageView& pv) {
          if (!st.ok() || pv.first_pos != q * P) return;
          const uint64_t off = static_cast<uint64_t>(l) * layer_bytes + static_cast<uint64_t>((q % H) * P) * row;
          const uint64_t bytes = static_cast<uint64_t>(pos0 - q * P) * row;
          st = dev_.Upload(kv.k, off, pv.k, bytes);
          if (st.ok()) st = dev_.Upload(kv.v, off, pv.v, bytes);
        }));
        SPOOL_TRY(st);
      }
    }
    slot_page = q;
  }
  return Status::Ok();
}

Status LlamaDecoder::Attend(DeviceKv& kv, int layer, int64_t row0, int64_t n, std::span<const int64_t> positions,
                            const GpuAttentionShape& shape) {
  const int64_t QD = w_.config().q_dim();
  if (row0 > 0) {
    // A later sequence of a batched pass: its queries to row 0 of a scratch buffer, the
    // attention there, its output back to its rows of att_ (exact copies).
    const Buffer& qs = QScratch();
    const Buffer& os = OutScratch();
    SPOOL_TRY(k_.CopyWords(q_, static_cast<uint64_t>(row0 * QD), qs, 0, n * QD));
    SPOOL_TRY(AttendRows(kv, layer, row0, n, positions, shape, qs, os));
    return k_.CopyWords(os, 0, att_, static_cast<uint64_t>(row0 * QD), n * QD);
  }
  return AttendRows(kv, layer, 0, n, positions, shape, q_, att_);
}

Status LlamaDecoder::AttendRows(DeviceKv& kv, int layer, int64_t row0, int64_t n, std::span<const int64_t> positions,
                                const GpuAttentionShape& shape, const Buffer& q, const Buffer& out) {
  const int64_t KD = w_.config().kv_dim(), P = opts_.page_tokens, pos0 = kv.n_tokens, end = pos0 + n;
  const int64_t rows = KvHotRows();
  const bool windowed = plan_.kv_windowed();
  const int64_t H = windowed ? plan_.kv_hot_pages : plan_.kv_pages;
  const uint64_t layer_elem = static_cast<uint64_t>(layer) * static_cast<uint64_t>(rows * KD);
  auto slot_row = [&](int64_t pos) { return ((pos / P) % H) * P + pos % P; };  // identity without a window
  // The chunk's K/V rows: one store, or two where the ring wraps.
  for (int64_t i = 0; i < n;) {
    const int64_t r = slot_row(pos0 + i), cnt = std::min(n - i, rows - r);
    const uint64_t dst = layer_elem + static_cast<uint64_t>(r * KD), src = static_cast<uint64_t>((row0 + i) * KD);
    SPOOL_TRY(k_.KvStore(kn_, cnt * KD, opts_.kv_dtype, kv.k, dst, src));
    SPOOL_TRY(k_.KvStore(vn_, cnt * KD, opts_.kv_dtype, kv.v, dst, src));
    i += cnt;
  }
  // Pages as the CPU's KV cache holds them, folded in its order, so the result is its
  // own. Pages wholly before every query's sliding window are skipped (the kernel would).
  const int64_t lo = shape.window > 0 ? std::max<int64_t>(0, positions[0] - shape.window + 1) : 0;
  const int64_t first = lo / P, last = (end - 1) / P;
  auto hot = [&](int64_t q) { return !windowed || kv.slot_page[static_cast<size_t>(q % H)] == q; };
  auto page_tokens = [&](int64_t q) { return std::min(P, end - q * P); };
  bool all_hot = true;
  for (int64_t q = first; q <= last && all_hot; ++q) all_hot = hot(q);
  if (all_hot) {  // one dispatch (always, without a window)
    pages_.clear();
    for (int64_t q = first; q <= last; ++q) {
      const uint64_t e = layer_elem + static_cast<uint64_t>(slot_row(q * P) * KD);
      pages_.push_back(GpuKvPage{e, e, page_tokens(q), q * P});
    }
    return k_.Attention(shape, q, positions, opts_.kv_dtype, kv.k, kv.v, pages_, out);
  }
  // Hot and cold pages: runs of hot pages read in place, cold pages staged from the host
  // cache in groups, double-buffered (cold_stage_[b] → cold_[b] on the transfer queue;
  // the gathering and copy of group g+1 overlap group g's attention, which is flushed);
  // one dispatch per run or group, the online softmax's state carried between them. A
  // run is dispatched when the next one starts (so the last one writes att_).
  enum class Run { kNone, kHot, kCold };
  Run pending = Run::kNone;
  pages_.clear();  // pages_ holds the pages of the run being gathered
  int n_dispatched = 0;
  int64_t n_cold = 0;  // pages in the pending cold group
  const uint64_t row = KvRowBytes();
  int b = 0;  // the cold buffer pair of the group being gathered
  const uint64_t v_elem = cold_group_bytes_ / (opts_.kv_dtype == DType::kF32 ? 4 : 2);  // V's first element
  auto dispatch = [&](bool final_run) -> Status {
    const bool cold = pending == Run::kCold;
    if (cold) {
      // Submit what is recorded (it computes while we copy), so that the attention below
      // starts a new frame, whose transfer→compute barrier follows the copy. cold_[b] is
      // free once the attention that last read it has finished (two groups ago); copy
      // the gathered group in and wait for it: meanwhile the device computes the
      // previous group's attention.
      SPOOL_TRY(dev_.Flush().status());
      SPOOL_TRY(dev_.WaitSubmission(cold_use_[b]));
      const uint64_t bytes = static_cast<uint64_t>(n_cold * P) * row;
      const CopyRegion regions[2] = {{0, 0, bytes}, {cold_group_bytes_, cold_group_bytes_, bytes}};
      auto id = dev_.CopyAsync(cold_stage_[b], cold_[b], regions, 3);
      if (!id.ok()) return id.status();
      cold_copy_[b] = id.value();
      SPOOL_TRY(dev_.WaitCopy(cold_copy_[b]));
    }
    const GpuAttentionState st{&att_state_, n_dispatched > 0, !final_run};
    SPOOL_TRY(k_.Attention(shape, q, positions, opts_.kv_dtype, cold ? cold_[b] : kv.k, cold ? cold_[b] : kv.v,
                           pages_, out, st));
    if (cold) {
      auto sub = dev_.Flush();  // the next group is gathered while this one computes
      if (!sub.ok()) return sub.status();
      cold_use_[b] = dev_.last_submission();
      b = 1 - b;
    }
    ++n_dispatched;
    pages_.clear();
    n_cold = 0;
    pending = Run::kNone;
    return Status::Ok();
  };
  auto add_hot = [&](int64_t q) -> Status {
    if (pending == Run::kCold) SPOOL_TRY(dispatch(false));
    pending = Run::kHot;
    const uint64_t e = layer_elem + static_cast<uint64_t>(slot_row(q * P) * KD);
    pages_.push_back(GpuKvPage{e, e, page_tokens(q), q * P});
    return Status::Ok();
  };
  int64_t next = first;  // pages before it are in pages_ or dispatched
  auto hot_until = [&](int64_t upto) -> Status {
    for (; next < upto; ++next) {
      if (!hot(next))
        return InternalError("GPU decoder: KV page " + std::to_string(next) + " of layer " + std::to_string(layer) +
                             " is neither in VRAM nor in the host cache (" + std::to_string(kv.cold->n_tokens()) +
                             " rows)");
      SPOOL_TRY(add_hot(next));
    }
    return Status::Ok();
  };
  int64_t cold_end = 0;
  for (int64_t q = first; q <= last; ++q)
    if (!hot(q)) cold_end = std::min(end, (q + 1) * P);
  Status st = Status::Ok();
  if (cold_end > 0) {
    if (cold_end > kv.cold->n_tokens())
      return InternalError("GPU decoder: KV rows up to " + std::to_string(cold_end) + " of layer " +
                           std::to_string(layer) + " are not in VRAM and the host cache holds " +
                           std::to_string(kv.cold->n_tokens()));
    SPOOL_TRY(kv.cold->ForEachPage(layer, cold_end, [&](const KvPageView& pv) {
      const int64_t q = pv.first_pos / P;
      if (!st.ok() || q < first || q > last || hot(q)) return;
      st = hot_until(q);
      if (!st.ok()) return;
      if (pending == Run::kHot || (pending == Run::kCold && n_cold == cold_group_pages_)) {
        st = dispatch(false);
        if (!st.ok()) return;
      }
      const int64_t nt = page_tokens(q);
      if (pv.n_tokens < nt) {
        st = InternalError("GPU decoder: the host KV cache's page " + std::to_string(q) + " has " +
                           std::to_string(pv.n_tokens) + " rows, attention needs " + std::to_string(nt));
        return;
      }
      // cold_stage_[b]'s last copy was waited for when it was dispatched: free.
      const uint64_t off = static_cast<uint64_t>(n_cold * P) * row, bytes = static_cast<uint64_t>(nt) * row;
      auto* stage = static_cast<uint8_t*>(cold_stage_[b].data());
      std::memcpy(stage + off, pv.k, bytes);
      std::memcpy(stage + cold_group_bytes_ + off, pv.v, bytes);
      const uint64_t e = static_cast<uint64_t>(n_cold * P * KD);
      pages_.push_back(GpuKvPage{e, e + v_elem, nt, q * P});
      ++n_cold;
      pending = Run::kCold;
      next = q + 1;
    }));
  }
  SPOOL_TRY(st);
  SPOOL_TRY(hot_until(last + 1));
  return dispatch(true);
}

Status LlamaDecoder::ReadKv(const DeviceKv& kv, int64_t layer, int64_t n, void* k, void* v) {
  SPOOL_TRY(CheckKvRows(w_.config().n_layer, opts_.ctx, layer, n));
  const uint64_t row = KvRowBytes();
  const uint64_t off = static_cast<uint64_t>(layer) * static_cast<uint64_t>(KvHotRows()) * row;
  if (n == 0) return Status::Ok();
  SPOOL_TRY(dev_.Sync());
  if (!plan_.kv_windowed()) {
    SPOOL_TRY(dev_.Download(kv.k, off, k, static_cast<uint64_t>(n) * row));
    return dev_.Download(kv.v, off, v, static_cast<uint64_t>(n) * row);
  }
  // Hot pages from VRAM, the others from the host cache.
  const int64_t P = opts_.page_tokens, H = plan_.kv_hot_pages;
  auto* kb = static_cast<uint8_t*>(k);
  auto* vb = static_cast<uint8_t*>(v);
  int64_t have = 0;  // rows [0, have) of the host cache copied
  const int64_t from_cold = std::min(n, kv.cold->n_tokens());
  if (from_cold > 0)
    SPOOL_TRY(kv.cold->ForEachPage(layer, from_cold, [&](const KvPageView& pv) {
      const int64_t cnt = std::min(pv.n_tokens, from_cold - pv.first_pos);
      if (cnt <= 0) return;
      std::memcpy(kb + static_cast<uint64_t>(pv.first_pos) * row, pv.k, static_cast<uint64_t>(cnt) * row);
      std::memcpy(vb + static_cast<uint64_t>(pv.first_pos) * row, pv.v, static_cast<uint64_t>(cnt) * row);
      have = std::max(have, pv.first_pos + cnt);
    }));
  for (int64_t q = 0; q * P < n; ++q) {
    const int64_t cnt = std::min(n, (q + 1) * P) - q * P;
    if (kv.slot_page[static_cast<size_t>(q % H)] != q) {
      if (q * P + cnt > have)
        return InternalError("GPU decoder: KV page " + std::to_string(q) +
                             " is neither in VRAM nor in the host cache (reading the cache)");
      continue;
    }
    const uint64_t src = off + static_cast<uint64_t>((q % H) * P) * row, dst = static_cast<uint64_t>(q * P) * row;
    SPOOL_TRY(dev_.Download(kv.k, src, kb + dst, static_cast<uint64_t>(cnt) * row));
    SPOOL_TRY(dev_.Download(kv.v, src, vb + dst, static_cast<uint64_t>(cnt) * row));
  }
  return Status::Ok();
}

Status LlamaDecoder::WriteKv(DeviceKv& kv, int64_t layer, int64_t n, const void* k, const void* v) {
  SPOOL_TRY(CheckKvRows(w_.config().n_layer, opts_.ctx, layer, n));
  const uint64_t row = KvRowBytes();
  const uint64_t off = static_cast<uint64_t>(layer) * static_cast<uint64_t>(KvHotRows()) * row;
  if (n == 0) return Status::Ok();
  SPOOL_TRY(dev_.Sync());
  if (!plan_.kv_windowed()) {
    SPOOL_TRY(dev_.Upload(kv.k, off, k, static_cast<uint64_t>(n) * row));
    return dev_.Upload(kv.v, off, v, static_cast<uint64_t>(n) * row);
  }
  // Every row to the host cache (committed with the last layer), the last pages to VRAM.
  if (kv.n_tokens != 0) return InvalidArgument("GPU decoder: WriteKv fills a new KV cache only");
  SPOOL_TRY(kv.cold->WriteRaw(layer, 0, n, k, v));
  if (layer == w_.config().n_layer - 1) SPOOL_TRY(kv.cold->Commit(n));
  const int64_t P = opts_.page_tokens, H = plan_.kv_hot_pages;
  const int64_t last = (n - 1) / P;
  for (int64_t q = std::max<int64_t>(0, last - H + 1); q <= last; ++q) {
    const int64_t cnt = std::min(n, (q + 1) * P) - q * P;
    const uint64_t dst = off + static_cast<uint64_t>((q % H) * P) * row, src = static_cast<uint64_t>(q * P) * row;
    SPOOL_TRY(dev_.Upload(kv.k, dst, static_cast<const uint8_t*>(k) + src, static_cast<uint64_t>(cnt) * row));
    SPOOL_TRY(dev_.Upload(kv.v, dst, static_cast<const uint8_t*>(v) + src, static_cast<uint64_t>(cnt) * row));
    kv.slot_page[static_cast<size_t>(q % H)] = q;
  }
  return Status::Ok();
}

}  // namespace spool::gpu
