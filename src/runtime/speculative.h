// Speculative decoding: drafters guess the next tokens cheaply; the target model checks
// them all in one step (one pass over its weights, Engine::StepItem::decode_rows) and
// keeps the longest prefix it would have produced itself (runtime/generate.cc).
//
// Why the output never changes: verification rows take decode numerics, so row i's
// logits are bit-identical to plain decoding's; the sampler is called once per emitted
// token on those logits, in the same order, with the same history, so greedy and seeded
// sampling emit exactly the tokens plain decoding emits. A draft token is kept only when
// the token sampled from the target's row equals it. For a deterministic drafter (prompt
// lookup, a greedy draft model) this is the standard rejection rule with a one-hot draft
// distribution q: accept d with probability min(1, p(d)/q(d)) = p(d), else sample from
// norm(max(0, p - q)) = p without d — the target's distribution, exactly.
// The K/V of rejected drafts are dropped with Engine::Truncate (RAM and disk KV).
//
// Drafters:
//   PromptLookupDrafter  n-gram matches in the sequence so far (prompt + output); no model.
//   ModelDrafter         a small model with the same vocabulary, resident, drafting
//                        greedily; its draft length follows the acceptance rate.
// Thread-safety: none; a drafter serves one sequence at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "runtime/engine.h"
#include "sampling/sampler.h"

namespace spool::runtime {

// Counters of speculative decoding (per request, summed by the server for /metrics).
struct SpecStats {
  uint64_t drafted = 0;   // draft tokens verified by the target
  uint64_t accepted = 0;  // of those, tokens the target accepted
  uint64_t passes = 0;    // target steps while decoding (verifications + plain decode steps)
  uint64_t verify_steps = 0;  // passes that verified at least one draft token
  SpecStats& operator+=(const SpecStats& o) {
    drafted += o.drafted, accepted += o.accepted, passes += o.passes, verify_steps += o.verify_steps;
    return *this;
  }
};

// A draft tree: node i proposes tokens[i] after its parent — parent[i] < i, or -1: right
// after the last sampled token (not yet fed). A chain has parent[i] = i - 1. Siblings
// carry distinct tokens.
struct DraftTree {
  std::vector<int32_t> tokens, parent;
  size_t size() const { return tokens.size(); }
  bool chain() const {
    for (size_t i = 0; i < parent.size(); ++i)
      if (parent[i] != static_cast<int32_t>(i) - 1) return false;
    return true;
  }
  void SetChain(std::span<const int32_t> ids) {
    tokens.assign(ids.begin(), ids.end());
    parent.resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) parent[i] = static_cast<int32_t>(i) - 1;
  }
  // Adds `path` below node `at` (-1: the root), sharing existing nodes; stops at
  // max_nodes. Returns the nodes added.
  int64_t AddPath(int32_t at, std::span<const int32_t> path, int64_t max_nodes);
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual std::string name() const = 0;
  // Proposes up to max_tokens (>= 1) ids to follow `context` (the sequence's tokens and
  // the last sampled one, not yet fed). May propose fewer or none (the caller then
  // decodes plainly). Errors: a draft model's engine errors.
  virtual Status Draft(std::span<const int32_t> context, int64_t max_tokens, std::vector<int32_t>* out) = 0;
  // A draft tree of at most max_nodes nodes and max_depth levels (Generate verifies it
  // in one step). Default: Draft's chain. Drafters built with a tree budget
  // (SpeculativeOptions::tree_nodes) propose several candidates per position.
  virtual Status Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes, DraftTree* out);
  // The target accepted `accepted` of the last draft's `drafted` tokens.
  virtual void Feedback(int64_t drafted, int64_t accepted) {
    (void)drafted;
    (void)accepted;
  }
  // Sampled drafts (ModelDrafter with sample_drafts): Draft draws token i from
  // draft_distributions()[i], and Generate applies the rejection rule with those
  // distributions. false: deterministic drafts, checked by exact match.
  virtual bool sampled() const { return false; }
  virtual const std::vector<sampling::TokenDistribution>& draft_distributions() const { return no_distributions_; }
  // The request's sampling settings (Generate calls it first; sampled drafters only).
  virtual void SetSampling(const sampling::SamplingParams& params) { (void)params; }

 private:
  std::vector<sampling::TokenDistribution> no_distributions_;
};

// Prompt lookup: the longest n-gram (ngram_max down to ngram_min tokens) ending the
// context that occurred before; proposes the tokens that followed its latest earlier
// occurrence. O(context × ngram_max) per call.
// Tree (tree_nodes > 0): the continuations of several earlier occurrences (the longest
// n-gram's, latest first, then shorter n-grams'), merged into a trie of at most
// tree_nodes nodes, each up to max_draft deep. O(context × ngram_max) per call.
class PromptLookupDrafter final : public Drafter {
 public:
  PromptLookupDrafter(int ngram_max, int ngram_min, int64_t max_draft, int64_t tree_nodes = 0)
      : ngram_max_(ngram_max), ngram_min_(ngram_min), max_draft_(max_draft), tree_nodes_(tree_nodes) {}
  std::string name() const override { return "lookup"; }
  Status Draft(std::span<const int32_t> context, int64_t max_tokens, std::vector<int32_t>* out) override;
  Status Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes, DraftTree* out) override;

 private:
  int ngram_max_, ngram_min_;
  int64_t max_draft_, tree_nodes_;
};

// A draft model (EngineOptions::draft_model, opened by the target engine, resident):
// keeps its own sequence in step with the context (truncating what the target
// rejected, prefilling what it accepted) and drafts greedily, or (sample_drafts) by
// sampling at the request's settings without penalties, seeded from the request's seed.
// Draft length: starts at min(4, max_draft); grows by 2 after a fully accepted draft,
// else becomes accepted + 1.
// Tree (tree_nodes > 0, greedy drafts only): level by level, one draft-model tree step
// per level (models/tree_attention.h) — each level keeps the W = ceil(nodes / levels)
// candidates (nodes: tree_nodes or what the context leaves; levels: max_draft or the
// tokens left to emit) of highest draft probability (product along the path) among
// the top-W children of the previous level's nodes, until tree_nodes nodes or
// max_draft levels; the draft model's tree rows are dropped afterwards.
class ModelDrafter final : public Drafter {
 public:
  ModelDrafter(Engine& draft, int64_t max_draft, bool sample_drafts = false, int64_t tree_nodes = 0);
  std::string name() const override { return "model"; }
  Status Draft(std::span<const int32_t> context, int64_t max_tokens, std::vector<int32_t>* out) override;
  Status Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes, DraftTree* out) override;
  void Feedback(int64_t drafted, int64_t accepted) override;
  bool sampled() const override { return sample_drafts_; }
  const std::vector<sampling::TokenDistribution>& draft_distributions() const override { return q_; }
  void SetSampling(const sampling::SamplingParams& params) override;
  int64_t draft_length() const { return k_; }

 private:
  // Brings the draft sequence to `context` (keeping the common prefix) and leaves the
  // logits after its last token in logits_.
  Status CatchUp(std::span<const int32_t> context);

  Engine& e_;
  std::unique_ptr<Sequence> seq_;
  int64_t max_draft_, k_, tree_nodes_;
  bool sample_drafts_;
  std::unique_ptr<sampling::Sampler> sampler_;  // sample_drafts_ after SetSampling
  std::vector<sampling::TokenDistribution> q_;
  std::vector<float> logits_;
};

// The rejection rule of speculative sampling for one draft token d drawn from q, given
// the target's distribution p: accept with probability min(1, p(d)/q(d)) (one draw of
// `target`'s RNG); else draw from norm(max(0, p − q)) (a second draw). Returns the token
// to emit: d when accepted, never d otherwise. Its distribution is exactly p.
int32_t SpeculativeSample(sampling::Sampler& target, const sampling::TokenDistribution& p,
                          const sampling::TokenDistribution& q, int32_t d);

// What a command or a request asks for. lookup and draft_model exclude each other.
struct SpeculativeOptions {
  bool lookup = false;
  bool draft_model = false;  // the engine's draft model (EngineOptions::draft_model)
  int64_t max_draft = 8;     // draft tokens per verification at most
  int ngram_max = 3, ngram_min = 1;
  // Draft model only: sample the drafts and apply the rejection rule (the output keeps
  // the target's distribution but is no longer the plain run's ids for a seed; higher
  // acceptance at high temperature). Used by Generate (run, chat); the scheduler
  // checks drafts by exact match, which is exact for any drafter.
  bool sample_drafts = false;
  // Draft trees (--draft-tree N): at most N nodes per verification, several candidates
  // per position (max_draft bounds the depth); 0: a chain of max_draft tokens.
  int64_t tree_nodes = 0;
  bool enabled() const { return lookup || draft_model; }
  // Rows of a verification step at most (planning).
  int64_t max_step_rows() const { return std::max(max_draft, tree_nodes) + 1; }
};

// nullptr when o selects no drafter. Errors (InvalidArgument): bad numbers, both
// drafters, draft_model on an engine opened without one.
Result<std::unique_ptr<Drafter>> MakeDrafter(Engine& engine, const SpeculativeOptions& o);

// Tokens emitted per target pass while decoding (1 without speculation; 0: no pass).
inline double TokensPerPass(const SpecStats& s) {
  return s.passes > 0 ? static_cast<double>(s.passes + s.accepted) / static_cast<double>(s.passes) : 0.0;
}

}  // namespace spool::runtime
