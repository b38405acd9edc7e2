#include "kv/recurrent_state.h"

#include <algorithm>

#include "base/check.h"

namespace spool::kv {

uint64_t RecurrentLayout::bytes() const {
  const uint64_t n = static_cast<uint64_t>(std::count(linear.begin(), linear.end(), true));
  return n * static_cast<uint64_t>(conv_elems + delta_elems) * sizeof(float);
}

RecurrentState::RecurrentState(const RecurrentLayout& layout) : layout_(layout) {
  per_layer_ = layout_.conv_elems + layout_.delta_elems;
  int64_t slots = 0;
  for (bool b : layout_.linear) slot_.push_back(b ? slots++ : -1);
  cur_.assign(static_cast<size_t>(slots * per_layer_), 0.0f);
  next_.assign(cur_.size(), 0.0f);
  written_.assign(static_cast<size_t>(slots), false);
  slot_count_ = static_cast<size_t>(slots);
  rows_written_.assign(slot_count_, false);
}

float* RecurrentState::RowStates(int64_t l, int64_t m) {
  SPOOL_CHECK(l >= 0 && l < static_cast<int64_t>(slot_.size()) && slot_[l] >= 0);
  if (layout_.keep_recent <= 0 || m <= 1 || m > layout_.keep_recent) {
    rows_m_ = 0;  // this step records no rows (whatever a failed step before it did)
    return nullptr;
  }
  if (rows_m_ != m) {
    rows_m_ = m;
    rows_.resize(static_cast<size_t>(m * row_stride()));
    std::fill(rows_written_.begin(), rows_written_.end(), false);
  }
  rows_written_[static_cast<size_t>(slot_[l])] = true;
  return rows_.data() + slot_[l] * per_layer_;
}

void RecurrentState::PushRecent(int64_t n, const float* state) {
  if (layout_.keep_recent <= 0) return;
  Snapshot s;
  if (static_cast<int64_t>(recent_.size()) >= layout_.keep_recent) {  // reuse the oldest one's buffer
    s = std::move(recent_.front());
    recent_.erase(recent_.begin());
  }
  s.n_tokens = n;
  s.data.assign(state, state + cur_.size());
  recent_.push_back(std::move(s));
}

void RecurrentState::DropRecentAfter(int64_t n) {
  while (!recent_.empty() && recent_.back().n_tokens > n) recent_.pop_back();
}

RecurrentState::LayerView RecurrentState::Begin(int64_t l) {
  SPOOL_CHECK(l >= 0 && l < static_cast<int64_t>(slot_.size()) && slot_[l] >= 0);
  const int64_t s = slot_[l];
  float* dst = next_.data() + s * per_layer_;
  std::copy(cur_.begin() + s * per_layer_, cur_.begin() + (s + 1) * per_layer_, dst);
  written_[s] = true;
  return LayerView{dst, dst + layout_.conv_elems};
}

const float* RecurrentState::conv(int64_t l) const {
  SPOOL_CHECK(l >= 0 && l < static_cast<int64_t>(slot_.size()) && slot_[l] >= 0);
  return cur_.data() + slot_[l] * per_layer_;
}

const float* RecurrentState::delta(int64_t l) const { return conv(l) + layout_.conv_elems; }

void RecurrentState::Set(int64_t l, const float* conv, const float* delta) {
  SPOOL_CHECK(l >= 0 && l < static_cast<int64_t>(slot_.size()) && slot_[l] >= 0);
  float* dst = cur_.data() + slot_[l] * per_layer_;
  std::copy(conv, conv + layout_.conv_elems, dst);
  std::copy(delta, delta + layout_.delta_elems, dst + layout_.conv_elems);
}

void RecurrentState::Commit(int64_t n) {
  for (size_t s = 0; s < written_.size(); ++s) {
    if (!written_[s]) continue;
    std::copy(next_.begin() + s * per_layer_, next_.begin() + (s + 1) * per_layer_, cur_.begin() + s * per_layer_);
    written_[s] = false;
  }
  const int64_t n0 = n_tokens_;
  n_tokens_ += n;
  if (layout_.keep_recent > 0 && n > 0) {
    const bool rows = rows_m_ == n && std::all_of(rows_written_.begin(), rows_written_.end(), [](bool b) { return b; });
    if (rows)
      for (int64_t t = 0; t < n; ++t) PushRecent(n0 + t + 1, rows_.data() + t * row_stride());
    else
      PushRecent(n_tokens_, cur_.data());
  }
  rows_m_ = 0;
  if (layout_.checkpoint_every > 0 && n > 0 && n_tokens_ % layout_.checkpoint_every == 0 && layout_.max_checkpoints > 0) {
    if (!checkpoints_.empty() && checkpoints_.back().n_tokens == n_tokens_) return;  // a turn end there already
    checkpoints_.push_back(Save());
    Bound(false, layout_.max_checkpoints);
  }
}

void RecurrentState::Bound(bool turn, int keep) {
  int have = 0;
  for (const Snapshot& c : checkpoints_) have += c.turn == turn;
  for (auto it = checkpoints_.begin(); have > keep && it != checkpoints_.end();) {
    if (it->turn == turn) {
      it = checkpoints_.erase(it);
      --have;
    } else {
      ++it;
    }
  }
}

bool RecurrentState::KeepCheckpoint() {
  if (layout_.checkpoint_every <= 0 || layout_.max_turn_checkpoints <= 0 || n_tokens_ == 0) return false;
  if (!checkpoints_.empty() && checkpoints_.back().n_tokens == n_tokens_) {
    checkpoints_.back().turn = true;  // Commit kept it already, as a chunk boundary
  } else {
    checkpoints_.push_back(Save());
    checkpoints_.back().turn = true;
  }
  Bound(true, layout_.max_turn_checkpoints);
  return true;
}

Status RecurrentState::SetCheckpoints(std::vector<Snapshot> cps) {
  for (size_t i = 0; i < cps.size(); ++i) {
    const Snapshot& c = cps[i];
    if (c.data.size() != cur_.size())
      return InvalidArgument("recurrent-state checkpoint " + std::to_string(i) + " has " + std::to_string(c.data.size()) +
                             " values, the state has " + std::to_string(cur_.size()));
    if (c.n_tokens <= 0 || c.n_tokens > n_tokens_ || (i > 0 && c.n_tokens <= cps[i - 1].n_tokens))
      return InvalidArgument("recurrent-state checkpoint " + std::to_string(i) + " at " + std::to_string(c.n_tokens) +
                             " tokens is not in ascending order within (0, " + std::to_string(n_tokens_) + "]");
  }
  checkpoints_ = std::move(cps);
  if (layout_.checkpoint_every <= 0) checkpoints_.clear();
  Bound(false, layout_.max_checkpoints);
  Bound(true, layout_.max_turn_checkpoints);
  return Status::Ok();
}

int64_t RecurrentState::RewindPoint(int64_t n) const {
  if (n >= n_tokens_) return n;
  int64_t best = 0;
  for (const auto* list : {&checkpoints_, &recent_})
    for (const Snapshot& c : *list)
      if (c.n_tokens <= n) best = std::max(best, c.n_tokens);
  return best;
}

bool RecurrentState::CanTruncate(int64_t n) const {
  if (n == n_tokens_ || n == 0) return true;
  for (const auto* list : {&checkpoints_, &recent_})
    for (const Snapshot& c : *list)
      if (c.n_tokens == n) return true;
  return false;
}

Status RecurrentState::Truncate(int64_t n) {
  std::fill(written_.begin(), written_.end(), false);
  rows_m_ = 0;
  if (n == n_tokens_) return Status::Ok();
  if (n == 0) {
    std::fill(cur_.begin(), cur_.end(), 0.0f);
    n_tokens_ = 0;
    checkpoints_.clear();
    recent_.clear();
    return Status::Ok();
  }
  for (size_t i = 0; i < checkpoints_.size(); ++i)
    if (checkpoints_[i].n_tokens == n) {
      cur_ = checkpoints_[i].data;
      n_tokens_ = n;
      checkpoints_.resize(i + 1);
      DropRecentAfter(n);
      return Status::Ok();
    }
  for (const Snapshot& r : recent_)
    if (r.n_tokens == n) {
      std::copy(r.data.begin(), r.data.end(), cur_.begin());
      n_tokens_ = n;
      while (!checkpoints_.empty() && checkpoints_.back().n_tokens > n) checkpoints_.pop_back();
      DropRecentAfter(n);
      return Status::Ok();
    }
  return InvalidArgument("a linear-attention (recurrent) state cannot be rewound from " + std::to_string(n_tokens_) +
                         " to " + std::to_string(n) + " tokens (only to its length, 0 or a kept checkpoint)");
}

RecurrentState::Snapshot RecurrentState::Save() const { return Snapshot{n_tokens_, cur_, false}; }

void RecurrentState::Restore(const Snapshot& s) {
  SPOOL_CHECK(s.data.size() == cur_.size());
  cur_ = s.data;
  n_tokens_ = s.n_tokens;
  while (!checkpoints_.empty() && checkpoints_.back().n_tokens > n_tokens_) checkpoints_.pop_back();
  DropRecentAfter(n_tokens_);
  std::fill(written_.begin(), written_.end(), false);
  rows_m_ = 0;
}

}  // namespace spool::kv
