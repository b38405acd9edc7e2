// The recurrent state of one sequence's linear-attention layers (Gated DeltaNet): per
// such layer the conv tail [(K − 1), conv_dim] and the delta-rule state
// [n_v_heads, dk, dv], f32. The sibling of SequenceKv for layers that keep no KV: its
// size is fixed however long the sequence (ModelConfig::linear; tested at 1K and 16K).
//
// Like SequenceKv, a step's writes become visible at Commit: a layer's step reads the
// committed state and writes a pending copy (Begin), and Commit makes every pending copy
// current. A step that fails before Commit leaves the committed state as it was.
// Positions cannot be rewound (a recurrence has no per-token rows to drop): Truncate
// works to the current length, to 0, or to a checkpoint: with checkpoint_every > 0 the
// state keeps copies of itself at the last `max_checkpoints` commits that ended on a
// multiple of checkpoint_every (the engine's prefill chunk, where the scheduler's
// prefix cache cuts reuse), so a shared prefix resumes without recomputation, and at
// the last `max_turn_checkpoints` turn ends (KeepCheckpoint: a chat turn's or a `spool
// run`'s prompt end). The two kinds are bounded separately, so decoding past chunk
// multiples never pushes out a turn end. Sessions store the checkpoints with the state
// (kv/session.h), so a restarted process resumes from them too.
//
// Speculative decoding (keep_recent > 0) needs the state rewound past rejected drafts:
// the state then also keeps its value after each of the last keep_recent tokens — one
// per row of a multi-row decode step (the mixer writes each row's state through
// RowStates: a verification step), one per single-token commit (a draft model's decode
// steps), the final one of a prefill chunk — and Truncate goes back to any of them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/status.h"

namespace spool::kv {

struct RecurrentLayout {
  std::vector<bool> linear;        // [n_layer]: which layers keep a state
  int64_t conv_elems = 0;          // per layer: (K − 1) · conv_dim
  int64_t delta_elems = 0;         // per layer: n_v_heads · dk · dv
  int64_t checkpoint_every = 0;    // tokens between kept checkpoints (0: none)
  int max_checkpoints = 2;         // chunk-boundary checkpoints kept (the most recent ones)
  int max_turn_checkpoints = 2;    // turn-end checkpoints kept (KeepCheckpoint; the most recent ones)
  // States after each of the last keep_recent tokens (speculative decoding: max draft + 1,
  // the rows of a verification step); 0: none.
  int64_t keep_recent = 0;
  uint64_t bytes() const;          // of one state (all linear layers), f32
  int max_kept() const { return checkpoint_every > 0 ? max_checkpoints + max_turn_checkpoints : 0; }
  // RAM one sequence's state may hold: the state, its pending copy, the checkpoints, and
  // (keep_recent) the recent states plus a step's row states.
  uint64_t max_bytes() const { return bytes() * static_cast<uint64_t>(2 + max_kept() + 2 * keep_recent); }
};

class RecurrentState {
 public:
  explicit RecurrentState(const RecurrentLayout& layout);

  const RecurrentLayout& layout() const { return layout_; }
  int64_t n_tokens() const { return n_tokens_; }

  // Layer l's pending state for this step, initialised from the committed one: conv
  // [conv_elems], delta [delta_elems]. l must be a linear layer.
  struct LayerView {
    float* conv;
    float* delta;
  };
  LayerView Begin(int64_t l);
  // The committed state of layer l (read-only; sessions save it).
  const float* conv(int64_t l) const;
  const float* delta(int64_t l) const;
  // Sets layer l's committed state (restoring a session). Sizes as layout().
  void Set(int64_t l, const float* conv, const float* delta);
  // Makes every layer's pending state current; the sequence is n tokens longer.
  void Commit(int64_t n);
  // keep_recent > 0 and a step of m (> 1, <= keep_recent) decode-numerics rows: where
  // layer l's state after each row goes — row t at RowStates(l, m) + t · row_stride(),
  // conv [conv_elems] then delta [delta_elems]. Commit(m) then keeps each row's state as
  // a recent state. nullptr otherwise (the mixer then writes no row states). The mixer
  // calls it for every linear layer of every step (m = 0 for rows it does not run as a
  // recurrence), so a step that failed half way leaves no stale rows behind.
  float* RowStates(int64_t l, int64_t m);
  int64_t row_stride() const { return static_cast<int64_t>(slot_count_) * per_layer_; }
  // n == n_tokens(): drops pending writes; n == 0: zeros; n at a kept checkpoint or
  // recent state: that state (later ones dropped). Otherwise InvalidArgument, state
  // unchanged.
  Status Truncate(int64_t n);
  bool CanTruncate(int64_t n) const;
  // The largest m <= n with CanTruncate(m).
  int64_t RewindPoint(int64_t n) const;
  int64_t n_checkpoints() const { return static_cast<int64_t>(checkpoints_.size()); }
  // Keeps a turn-end checkpoint of the committed state at n_tokens() (a chat turn's
  // prompt end, where the next turn's prompt diverges at the earliest), within
  // max_turn_checkpoints (the oldest turn end goes; a chunk checkpoint already there
  // becomes a turn end). False, nothing kept, when the layout keeps none
  // (checkpoint_every or max_turn_checkpoints 0) or when n_tokens() is 0.
  bool KeepCheckpoint();
  // Sets the token count without touching the state (session restore).
  void SetTokens(int64_t n) { n_tokens_ = n; }

  // A copy of the committed state at n_tokens() (prefix reuse, failed-prefill rollback).
  struct Snapshot {
    int64_t n_tokens = 0;
    std::vector<float> data;  // every linear layer's conv then delta, in layer order
    bool turn = false;        // as a checkpoint: a turn end (else a chunk boundary)
  };
  Snapshot Save() const;
  void Restore(const Snapshot& s);
  // The kept checkpoints, ascending n_tokens (sessions save them).
  const std::vector<Snapshot>& checkpoints() const { return checkpoints_; }
  // Replaces the checkpoints (session restore). They must ascend strictly, lie in
  // (0, n_tokens()] and have this layout's size; beyond the layout's bounds the latest
  // of each kind are kept. InvalidArgument otherwise, nothing changed.
  Status SetCheckpoints(std::vector<Snapshot> cps);
  uint64_t bytes() const { return layout_.bytes(); }

 private:
  RecurrentLayout layout_;
  int64_t n_tokens_ = 0;
  int64_t per_layer_ = 0;
  std::vector<int64_t> slot_;        // [n_layer]: index of the layer's state, −1 if none
  std::vector<float> cur_, next_;    // [n_slots · per_layer_]
  std::vector<bool> written_;        // [n_slots]: next_ holds this step's state
  std::vector<Snapshot> checkpoints_;  // ascending n_tokens; per kind at most the layout's bound
  std::vector<Snapshot> recent_;       // ascending n_tokens, at most keep_recent (speculative rollback)
  size_t slot_count_ = 0;
  std::vector<float> rows_;            // [m, n_slots · per_layer_]: this step's row states
  int64_t rows_m_ = 0;                 // rows of this step RowStates was asked for (0: none)
  std::vector<bool> rows_written_;     // [n_slots]
  void PushRecent(int64_t n, const float* state);
  void DropRecentAfter(int64_t n);
  // Drops the oldest checkpoint of the kind (turn or not) while more than `keep` are kept.
  void Bound(bool turn, int keep);
};

}  // namespace spool::kv
