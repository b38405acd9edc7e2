// Engine's session methods (declared in runtime/engine.h): the glue between a Sequence
// and the session files of kv/session.h, plus the model fingerprint they carry.
#include <cstring>
#include <ctime>
#include <sstream>

#include "kv/session.h"
#include "runtime/engine.h"

namespace spool::runtime {

Result<std::string> Engine::ModelFingerprint() {
  if (!fingerprint_.empty()) return fingerprint_;
  const auto& c = config();
  const auto& src = source();
  // Config and tensor index: what the KV cache's meaning depends on.
  std::ostringstream d;
  d << c.arch << ' ' << c.n_layer << ' ' << c.n_embd << ' ' << c.n_ff << ' ' << c.n_head << ' ' << c.n_head_kv << ' '
    << c.head_dim << ' ' << c.n_vocab << ' ' << c.rope_theta << ' ' << c.rope_dim << ' ' << c.rms_eps << '\n';
  for (const auto& t : src.tensors) {
    d << t.name << ' ' << static_cast<int>(t.dtype) << ' ' << t.file_index << ' ' << t.offset << ' ' << t.nbytes;
    for (auto s : t.shape) d << ' ' << s;
    d << '\n';
  }
  SPOOL_ASSIGN_OR_RETURN(fingerprint_, kv::ModelFingerprint(src.files, d.str()));
  return fingerprint_;
}

uint64_t Engine::kv_disk_bytes() const { return kv_quota_ ? kv_quota_->used() : 0; }

Status Engine::SaveSession(const std::string& path, Sequence& seq, std::span<const int32_t> pending,
                           const nlohmann::ordered_json& settings) {
  SPOOL_ASSIGN_OR_RETURN(std::string fp, ModelFingerprint());
  const auto& L = seq.kv_->layout();
  kv::SessionInfo info;
  info.model = source().display_name;
  info.fingerprint = fp;
  info.kv_dtype = L.dtype;
  info.n_layer = L.n_layer;
  info.n_head_kv = L.n_head_kv;
  info.head_dim = L.head_dim;
  info.record_tokens = L.page_tokens;
  info.tokens = seq.tokens_;
  info.pending.assign(pending.begin(), pending.end());
  info.settings = settings;
  info.created_unix = static_cast<int64_t>(std::time(nullptr));
  // Linear-attention layers: their recurrent state rides in the session's state block,
  // followed by its checkpoints (chunk boundaries and turn ends, bounded by the
  // RecurrentLayout), so that a restarted process can still rewind to them.
  kv::RecurrentState::Snapshot snap;
  std::vector<std::span<const uint8_t>> blocks;
  if (seq.state_) {
    snap = seq.state_->Save();
    info.state_bytes = snap.data.size() * sizeof(float);
    for (const auto& c : seq.state_->checkpoints()) {
      if (static_cast<int64_t>(blocks.size()) == kv::kMaxSessionCheckpoints) break;
      info.checkpoints.push_back(kv::SessionCheckpoint{c.n_tokens, c.turn});
      blocks.emplace_back(reinterpret_cast<const uint8_t*>(c.data.data()), info.state_bytes);
    }
  }
  const std::span<const uint8_t> state(reinterpret_cast<const uint8_t*>(snap.data.data()), info.state_bytes);
  if (gpu_) {
    // The KV cache is in VRAM: download it into a CPU cache of the same layout (the same
    // bytes: both hold the cache dtype), so the file is the CPU's and loads on either.
    kv::InRamKv host(L);
    if (seq.dkv_) SPOOL_TRY(gpu_->DownloadKv(*seq.dkv_, seq.n_tokens(), host));
    return kv::SaveSession(path, info, host, state, blocks);
  }
  return kv::SaveSession(path, info, *seq.kv_, state, blocks);
}

Result<std::unique_ptr<Sequence>> Engine::LoadSession(const std::string& path, std::vector<int32_t>* pending,
                                                      nlohmann::ordered_json* settings) {
  SPOOL_ASSIGN_OR_RETURN(kv::SessionInfo info, kv::ReadSessionInfo(path));
  SPOOL_ASSIGN_OR_RETURN(std::string fp, ModelFingerprint());
  if (info.fingerprint != fp)
    return InvalidFile(path + ": the session was saved with another model ('" + info.model + "', fingerprint " +
                       info.fingerprint + "); this model '" + source().display_name + "' has fingerprint " + fp);
  const int64_t n = static_cast<int64_t>(info.tokens.size());
  if (n + static_cast<int64_t>(info.pending.size()) > ctx_)
    return InvalidArgument(path + ": the session holds " + std::to_string(n + info.pending.size()) +
                           " tokens but the context is " + std::to_string(ctx_) + " (raise --ctx)");
  for (auto* ids : {&info.tokens, &info.pending}) SPOOL_TRY(CheckTokens(*ids).WithContext(path));
  auto seq = NewSequence();
  const uint64_t want_state = seq->state_ ? seq->state_->bytes() : 0;
  if (info.state_bytes != want_state)
    return InvalidFile(path + ": the session's recurrent-state block is " + std::to_string(info.state_bytes) +
                       " bytes, this model's linear-attention state is " + std::to_string(want_state) + " bytes");
  std::vector<uint8_t> state;
  std::vector<std::vector<uint8_t>> blocks;
  SPOOL_TRY(kv::LoadSessionKv(path, info, *seq->kv_, seq->state_ ? &state : nullptr, seq->state_ ? &blocks : nullptr));
  if (seq->state_) {
    auto to_snapshot = [](const std::vector<uint8_t>& bytes, int64_t at, bool turn) {
      kv::RecurrentState::Snapshot snap;
      snap.n_tokens = at;
      snap.turn = turn;
      snap.data.resize(bytes.size() / sizeof(float));
      std::memcpy(snap.data.data(), bytes.data(), bytes.size());
      return snap;
    };
    seq->state_->Restore(to_snapshot(state, n, false));
    std::vector<kv::RecurrentState::Snapshot> cps;
    for (size_t i = 0; i < blocks.size(); ++i)
      cps.push_back(to_snapshot(blocks[i], info.checkpoints[i].n_tokens, info.checkpoints[i].turn));
    // ReadSessionInfo checked the order and range; the sizes follow from state_bytes.
    SPOOL_TRY(seq->state_->SetCheckpoints(std::move(cps)).WithContext(path));
  }
  if (gpu_) {
    // Into VRAM (beyond the VRAM KV window: into a new CPU cache of the sequence's
    // kind); the CPU cache it was read into is dropped.
    std::unique_ptr<kv::SequenceKv> loaded = std::move(seq->kv_);
    seq->kv_ = std::move(NewSequence()->kv_);
    SPOOL_ASSIGN_OR_RETURN(seq->dkv_, gpu_->NewKv(seq->kv_.get()));
    SPOOL_TRY(gpu_->UploadKv(*loaded, *seq->dkv_));
  }
  seq->tokens_ = std::move(info.tokens);
  *pending = std::move(info.pending);
  if (settings) *settings = std::move(info.settings);
  return seq;
}

}  // namespace spool::runtime
