#include "runtime/speculative.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace spool::runtime {

int64_t DraftTree::AddPath(int32_t at, std::span<const int32_t> path, int64_t max_nodes) {
  int64_t added = 0;
  for (const int32_t t : path) {
    int32_t child = -1;
    for (size_t i = static_cast<size_t>(at + 1); i < tokens.size(); ++i)  // children come after their parent
      if (parent[i] == at && tokens[i] == t) {
        child = static_cast<int32_t>(i);
        break;
      }
    if (child < 0) {
      if (static_cast<int64_t>(tokens.size()) >= max_nodes) break;
      tokens.push_back(t);
      parent.push_back(at);
      child = static_cast<int32_t>(tokens.size() - 1);
      ++added;
    }
    at = child;
  }
  return added;
}

Status Drafter::Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes, DraftTree* out) {
  std::vector<int32_t> ids;
  SPOOL_TRY(Draft(context, std::min(max_depth, max_nodes), &ids));
  const size_t k = static_cast<size_t>(std::max<int64_t>(std::min(max_depth, max_nodes), 0));
  if (ids.size() > k) ids.resize(k);
  out->SetChain(ids);
  return Status::Ok();
}

Status PromptLookupDrafter::Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes,
                                    DraftTree* out) {
  if (tree_nodes_ <= 0) return Drafter::Propose(context, max_depth, max_nodes, out);
  out->tokens.clear();
  out->parent.clear();
  const int64_t n = static_cast<int64_t>(context.size());
  const int64_t depth = std::min(max_depth, max_draft_), budget = std::min(max_nodes, tree_nodes_);
  if (depth <= 0 || budget <= 0) return Status::Ok();
  // Longest n-grams first, latest occurrences first: the chain drafter's proposal is
  // the tree's first path.
  for (int64_t g = std::min<int64_t>(ngram_max_, n - 1); g >= ngram_min_ && g >= 1; --g) {
    const int32_t* tail = context.data() + n - g;
    for (int64_t s = n - g - 1; s >= 0; --s) {
      if (!std::equal(tail, tail + g, context.data() + s)) continue;
      const int64_t from = s + g, to = std::min(n, from + depth);
      out->AddPath(-1, context.subspan(static_cast<size_t>(from), static_cast<size_t>(to - from)), budget);
      if (static_cast<int64_t>(out->size()) >= budget) return Status::Ok();
    }
  }
  return Status::Ok();
}

Status PromptLookupDrafter::Draft(std::span<const int32_t> context, int64_t max_tokens, std::vector<int32_t>* out) {
  out->clear();
  const int64_t n = static_cast<int64_t>(context.size());
  const int64_t want = std::min(max_tokens, max_draft_);
  if (want <= 0) return Status::Ok();
  for (int64_t g = std::min<int64_t>(ngram_max_, n - 1); g >= ngram_min_ && g >= 1; --g) {
    const int32_t* tail = context.data() + n - g;
    // Latest earlier occurrence: start s with s + g < n (so at least one token follows).
    for (int64_t s = n - g - 1; s >= 0; --s) {
      if (!std::equal(tail, tail + g, context.data() + s)) continue;
      const int64_t from = s + g, to = std::min(n, from + want);
      out->assign(context.begin() + from, context.begin() + to);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

ModelDrafter::ModelDrafter(Engine& draft, int64_t max_draft, bool sample_drafts, int64_t tree_nodes)
    : e_(draft), seq_(draft.NewSequence()), max_draft_(std::max<int64_t>(max_draft, 1)),
      k_(std::min<int64_t>(4, max_draft_)), tree_nodes_(tree_nodes), sample_drafts_(sample_drafts) {}

void ModelDrafter::SetSampling(const sampling::SamplingParams& params) {
  if (!sample_drafts_) return;
  sampling::SamplingParams p = params;
  p.repeat_penalty = 1.0f;
  p.presence_penalty = p.frequency_penalty = 0.0f;
  p.seed = params.seed ^ 0x9E3779B97F4A7C15ull;  // its own stream, reproducible from the request's seed
  sampler_ = std::make_unique<sampling::Sampler>(p);
}

int32_t SpeculativeSample(sampling::Sampler& target, const sampling::TokenDistribution& p,
                          const sampling::TokenDistribution& q, int32_t d) {
  const double pd = p.Prob(d), qd = q.Prob(d);
  SPOOL_CHECK(qd > 0);
  if (target.Uniform() * qd < pd) return d;
  // Residual over p's candidates (where p > q); q's other tokens have p = 0 there.
  sampling::TokenDistribution r;
  double sum = 0;
  for (size_t i = 0; i < p.ids.size(); ++i) {
    const double x = p.probs[i] - q.Prob(p.ids[i]);
    if (x > 0 && p.ids[i] != d) {
      r.ids.push_back(p.ids[i]);
      r.probs.push_back(x);
      sum += x;
    }
  }
  if (r.ids.empty() || !(sum > 0)) return target.Draw(p);  // p == q up to rounding: cannot happen after a rejection
  for (double& x : r.probs) x /= sum;
  return target.Draw(r);
}

Status ModelDrafter::Draft(std::span<const int32_t> context, int64_t max_tokens, std::vector<int32_t>* out) {
  out->clear();
  q_.clear();
  if (context.empty()) return Status::Ok();
  int64_t k = std::min(k_, max_tokens);
  // The draft sequence holds context + k - 1 tokens at the end (the last draft is not fed).
  k = std::min<int64_t>(k, e_.ctx() - static_cast<int64_t>(context.size()) + 1);
  if (k <= 0) return Status::Ok();
  SPOOL_TRY(CatchUp(context));
  for (int64_t i = 0; i < k; ++i) {
    int32_t d;
    if (sample_drafts_ && sampler_) {
      q_.push_back(sampler_->Distribution(logits_));
      d = sampler_->Draw(q_.back());
    } else {
      d = static_cast<int32_t>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    }
    out->push_back(d);
    if (i + 1 == k) break;
    Sequence* s = seq_.get();
    SPOOL_TRY(e_.Decode(std::span<Sequence* const>(&s, 1), std::span<const int32_t>(&d, 1), logits_.data()));
  }
  return Status::Ok();
}

Status ModelDrafter::CatchUp(std::span<const int32_t> context) {
  // Keep the common prefix with what the draft model has seen; re-feed at least the
  // last context token so that its logits come out.
  const auto& have = seq_->tokens();
  const size_t common = std::min<size_t>(
      static_cast<size_t>(std::mismatch(have.begin(), have.end(), context.begin(), context.end()).first - have.begin()),
      context.size() - 1);
  if (static_cast<int64_t>(common) < seq_->n_tokens()) SPOOL_TRY(e_.Truncate(*seq_, static_cast<int64_t>(common)));
  // A short catch-up (the last verification's accepted tokens) takes decode numerics, so
  // that a model drafting for a copy of itself agrees with it; a prompt is prefilled.
  const std::span<const int32_t> feed = context.subspan(common);
  const int64_t V = e_.n_vocab();
  logits_.resize(static_cast<size_t>(V));
  if (static_cast<int64_t>(feed.size()) <= max_draft_ + 1) {
    const Engine::StepItem item{seq_.get(), feed, /*all_logits=*/false, /*decode_rows=*/true};
    SPOOL_TRY(e_.Step(std::span<const Engine::StepItem>(&item, 1), logits_.data()));
  } else {
    SPOOL_TRY(e_.Prefill(*seq_, feed, logits_.data()));
  }
  return Status::Ok();
}

namespace {
// The w tokens of highest probability under softmax(logits), with their log-probability.
void TopCandidates(std::span<const float> logits, int64_t w, std::vector<std::pair<int32_t, double>>* out) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  const double log_z = mx + std::log(sum);
  std::vector<int32_t> idx(logits.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  const size_t take = std::min(idx.size(), static_cast<size_t>(w));
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(take), idx.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
           (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
  });
  out->clear();
  for (size_t i = 0; i < take; ++i) out->emplace_back(idx[i], logits[static_cast<size_t>(idx[i])] - log_z);
}
}  // namespace

Status ModelDrafter::Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes, DraftTree* out) {
  if (tree_nodes_ <= 0 || sample_drafts_) return Drafter::Propose(context, max_depth, max_nodes, out);
  out->tokens.clear();
  out->parent.clear();
  q_.clear();
  if (context.empty()) return Status::Ok();
  const int64_t base = static_cast<int64_t>(context.size());
  const int64_t depth = std::min(max_depth, max_draft_);
  // The draft sequence holds context + the tree's nodes but the last level's.
  const int64_t budget = std::min({max_nodes, tree_nodes_, e_.ctx() - base + 1});
  if (depth <= 0 || budget <= 0) return Status::Ok();
  // Levels of equal width: the budget over the levels allowed (fewer nodes left in the
  // context, or fewer tokens left to emit, give a narrower or shallower tree).
  const int64_t width = std::max<int64_t>(1, (budget + depth - 1) / depth);
  SPOOL_TRY(CatchUp(context));
  const int64_t V = e_.n_vocab();
  // Frontier: the last level's nodes (-1: the root) with their path log-probability
  // and logits row.
  struct Node {
    int32_t id;
    double logp;
  };
  std::vector<Node> frontier{{-1, 0.0}};
  std::vector<float> level_logits(logits_);  // [frontier, V]
  std::vector<std::pair<int32_t, double>> top;
  struct Cand {
    int32_t parent, token;
    double logp;
  };
  std::vector<Cand> cands;
  Status st;
  for (int64_t level = 0; level < depth && static_cast<int64_t>(out->size()) < budget; ++level) {
    cands.clear();
    for (size_t f = 0; f < frontier.size(); ++f) {
      TopCandidates(std::span<const float>(level_logits.data() + f * V, static_cast<size_t>(V)), width, &top);
      for (const auto& [tok, lp] : top) cands.push_back(Cand{frontier[f].id, tok, frontier[f].logp + lp});
    }
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.logp > b.logp; });
    const size_t take = std::min<size_t>({cands.size(), static_cast<size_t>(width),
                                          static_cast<size_t>(budget - static_cast<int64_t>(out->size()))});
    frontier.clear();
    const size_t first = out->size();
    for (size_t c = 0; c < take; ++c) {
      out->tokens.push_back(cands[c].token);
      out->parent.push_back(cands[c].parent);
      frontier.push_back(Node{static_cast<int32_t>(out->size() - 1), cands[c].logp});
    }
    if (level + 1 == depth || static_cast<int64_t>(out->size()) >= budget) break;
    // The new level's logits: one tree step of the draft model (its earlier levels are in its cache).
    const std::span<const int32_t> fed(out->tokens.data() + first, take);
    level_logits.resize(take * static_cast<size_t>(V));
    Engine::StepItem item{seq_.get(), fed, /*all_logits=*/true, /*decode_rows=*/true};
    item.tree_base = base;
    item.tree_parent = out->parent;
    st = e_.Step(std::span<const Engine::StepItem>(&item, 1), level_logits.data());
    if (!st.ok()) break;
  }
  // Drop the tree's rows from the draft sequence: it holds the context again.
  if (seq_->n_tokens() > base) SPOOL_TRY(e_.Truncate(*seq_, base));
  return st;
}

void ModelDrafter::Feedback(int64_t drafted, int64_t accepted) {
  if (drafted <= 0) return;
  if (accepted >= drafted) k_ = std::min(max_draft_, k_ + 2);
  else k_ = std::clamp<int64_t>(accepted + 1, 1, max_draft_);
}

Result<std::unique_ptr<Drafter>> MakeDrafter(Engine& engine, const SpeculativeOptions& o) {
  if (!o.enabled()) return std::unique_ptr<Drafter>();
  // Linear-attention models roll their recurrent state back past rejected drafts
  // through the states kept per verified row (kv::RecurrentLayout::keep_recent); a tree
  // node's state would depend on its path, which no step computes.
  const Engine* draft_engine = o.draft_model ? engine.draft_engine() : nullptr;
  for (const Engine* e : {static_cast<const Engine*>(&engine), draft_engine}) {
    if (e == nullptr || !e->config().has_linear()) continue;
    if (o.tree_nodes > 0)
      return InvalidArgument(std::string("draft trees (--draft-tree) are not supported for models with linear-attention "
                                         "layers (") + (e == &engine ? "target " : "draft ") + e->config().arch +
                             "): use a chain (leave out --draft-tree)");
    if (RecurrentKeepRecent(e->options()) < o.max_step_rows())
      return InvalidArgument("speculative decoding on a model with linear-attention layers (" + e->config().arch +
                             ") needs the engine opened with max_draft >= " + std::to_string(o.max_step_rows() - 1) +
                             " (it keeps a recurrent state per verified row)");
  }
  if (o.sample_drafts && !o.draft_model) return InvalidArgument("sampled drafts need a draft model (--draft MODEL)");
  if (o.lookup && o.draft_model) return InvalidArgument("choose one drafter: prompt lookup or a draft model, not both");
  if (o.tree_nodes < 0 || o.tree_nodes > 64)
    return InvalidArgument("draft tree size must be in [0, 64] nodes, got " + std::to_string(o.tree_nodes));
  if (o.tree_nodes > 0 && o.sample_drafts)
    return InvalidArgument("sampled drafts (--draft-sample) are checked as a chain: leave out --draft-tree");
  if (o.max_draft < 1 || o.max_draft > 64)
    return InvalidArgument("draft length must be in [1, 64], got " + std::to_string(o.max_draft));
  if (o.lookup) {
    if (o.ngram_min < 1 || o.ngram_max < o.ngram_min || o.ngram_max > 16)
      return InvalidArgument("lookup n-gram sizes must satisfy 1 <= min <= max <= 16, got min " +
                             std::to_string(o.ngram_min) + ", max " + std::to_string(o.ngram_max));
    return std::unique_ptr<Drafter>(new PromptLookupDrafter(o.ngram_max, o.ngram_min, o.max_draft, o.tree_nodes));
  }
  Engine* draft = engine.draft_engine();
  if (draft == nullptr) return InvalidArgument("speculation with a draft model needs the model opened with --draft MODEL");
  return std::unique_ptr<Drafter>(new ModelDrafter(*draft, o.max_draft, o.sample_drafts, o.tree_nodes));
}

}  // namespace spool::runtime
