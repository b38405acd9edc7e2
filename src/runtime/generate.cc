#include "runtime/generate.h"

#include "base/timer.h"

namespace spool::runtime {

namespace {
// Earliest position in `text` (searching from `from`) where any stop string starts, or npos.
size_t FindStop(const std::string& text, const std::vector<std::string>& stops, size_t from) {
  size_t best = std::string::npos;
  for (auto& s : stops) {
    if (s.empty()) continue;
    size_t p = text.find(s, from);
    if (p < best) best = p;
  }
  return best;
}
// Length of the longest suffix of `text` that is a proper prefix of some stop string:
// those bytes are held back until we know they do not start a stop string.
size_t HeldBack(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}
}  // namespace

Result<GenerateResult> Generate(Engine& engine, Sequence& seq, const GenerateRequest& req, const TextFn& on_text,
                                const ProgressFn& progress) {
  SPOOL_TRY(req.sampling.Validate());
  if (req.prompt.empty()) return InvalidArgument("nothing to generate from: the prompt is empty");
  if (req.max_tokens < 0) return InvalidArgument("max_tokens must be >= 0");
  const tokenizer::Tokenizer* tok = engine.tokenizer();
  GenerateResult res;
  res.prompt_tokens = static_cast<int64_t>(req.prompt.size());

  sampling::Sampler sampler(req.sampling);
  sampler.AcceptMany(seq.tokens());
  sampler.AcceptMany(req.prompt);

  std::vector<float> logits(engine.n_vocab());
  Stopwatch sw;
  SPOOL_TRY(engine.Prefill(seq, req.prompt, logits.data(), false, progress));
  res.prefill_seconds = sw.Seconds();
  sw.Reset();

  std::unique_ptr<tokenizer::StreamingDecoder> decoder;
  if (tok) decoder = std::make_unique<tokenizer::StreamingDecoder>(*tok, /*skip_special=*/!req.keep_special_tokens, /*at_sequence_start=*/false);
  std::string pending;  // decoded text not yet emitted (held for stop-string matching)
  size_t emitted = 0;   // bytes of res.text already passed to on_text
  auto emit = [&](bool final) -> bool {
    size_t stop_at = FindStop(res.text, req.stop, emitted > 0 ? emitted - std::min<size_t>(emitted, 64) : 0);
    bool stopped = stop_at != std::string::npos;
    if (stopped) res.text.resize(stop_at);
    size_t upto = stopped || final ? res.text.size() : res.text.size() - HeldBack(res.text, req.stop);
    if (upto > emitted) {
      bool cont = !on_text || on_text(res.text.substr(emitted, upto - emitted));
      emitted = upto;
      if (!cont) {
        res.finish_reason = "cancelled";
        return false;
      }
    }
    if (stopped) {
      res.finish_reason = "stop";
      return false;
    }
    return true;
  };

  // Speculation: a verification step feeds [next, draft tree...] with decode numerics
  // and leaves one logit row per fed token (row 0: next; row i + 1: tree node i). `cur`
  // is the row whose logits come next. After sampling from row cur, a child of cur
  // whose token equals the sampled one is accepted (its K/V are in the cache and its
  // row's logits are ready); otherwise the rows off the accepted path are dropped —
  // Truncate for a chain, KeepTreePath for a tree (the sampled token stays un-fed, as
  // in plain decoding).
  const int64_t V = engine.n_vocab();
  int64_t cur = 0, n_rows = 1;
  int64_t n0 = 0;  // sequence length before the last verification step
  DraftTree tree;
  bool tree_step = false;
  std::vector<int32_t> context, fed, parent, path;
  models::TreeRows tree_rows;
  auto child_of = [&](int64_t row, int32_t token) -> int64_t {
    for (size_t i = static_cast<size_t>(row); i < tree.size(); ++i)  // node i is row i + 1; children follow parents
      if (tree.parent[i] == row - 1 && tree.tokens[i] == token) return static_cast<int64_t>(i) + 1;
    return -1;
  };
  auto settle = [&]() -> Status {
    if (n_rows <= 1) return Status::Ok();
    const int64_t accepted = static_cast<int64_t>(path.size()) - 1;
    if (tree_step) {
      SPOOL_TRY(engine.KeepTreePath(seq, tree_rows, path));
    } else if (const int64_t keep = n0 + accepted + 1; seq.n_tokens() > keep) {
      SPOOL_TRY(engine.Truncate(seq, keep));
    }
    res.spec.accepted += static_cast<uint64_t>(accepted);
    req.drafter->Feedback(n_rows - 1, accepted);
    n_rows = 1;
    cur = 0;
    return Status::Ok();
  };

  // Sampled drafts (a draft model with sample_drafts; chains only) at temperature > 0 go
  // through the rejection rule (SpeculativeSample); every other draft is checked by
  // exact match.
  if (req.drafter) req.drafter->SetSampling(req.sampling);
  const bool rejection = req.drafter && req.drafter->sampled() && req.sampling.temperature > 0;

  res.finish_reason = "length";
  for (int64_t i = 0; i < req.max_tokens; ++i) {
    const std::span<const float> row_logits(logits.data() + cur * V, static_cast<size_t>(V));
    int32_t next;
    if (!req.forced_output.empty()) {
      if (static_cast<size_t>(i) >= req.forced_output.size()) {
        res.finish_reason = "stop";
        break;
      }
      next = req.forced_output[static_cast<size_t>(i)];
      if (next < 0 || next >= engine.n_vocab()) return InvalidArgument("forced output id " + std::to_string(next) + " is outside the vocabulary");
    } else if (rejection && cur + 1 < n_rows && !tree_step) {
      const auto& q = req.drafter->draft_distributions();
      SPOOL_CHECK(static_cast<int64_t>(q.size()) >= n_rows - 1);
      next = SpeculativeSample(sampler, sampler.Distribution(row_logits), q[static_cast<size_t>(cur)],
                               tree.tokens[static_cast<size_t>(cur)]);
    } else {
      next = sampler.Sample(row_logits);
    }
    sampler.Accept(next);
    res.ids.push_back(next);
    bool is_eos = tok && tok->eos_ids().count(next) > 0;
    if (is_eos && !req.ignore_eos) {
      res.finish_reason = "stop";
      break;
    }
    if (decoder) {
      SPOOL_ASSIGN_OR_RETURN(std::string piece, decoder->PushGenerated(next));
      res.text += piece;
      if (!emit(false)) break;
    }
    if (i + 1 == req.max_tokens) break;  // the last token stays un-fed (see generate.h)
    if (n_rows > 1) {
      if (const int64_t child = child_of(cur, next); child > 0) {
        cur = child;  // accepted
        path.push_back(static_cast<int32_t>(child));
        continue;
      }
    }
    SPOOL_TRY(settle());
    if (seq.n_tokens() + 1 > engine.ctx()) {
      res.finish_reason = "length";
      break;
    }
    // Drafts: at most what is left to emit after next's successor deep (the last
    // emitted token is never fed), and what the context holds.
    tree.tokens.clear();
    tree.parent.clear();
    if (req.drafter) {
      const int64_t depth = req.max_tokens - i - 2, nodes = engine.ctx() - seq.n_tokens() - 1;
      if (depth > 0 && nodes > 0) {
        context.assign(seq.tokens().begin(), seq.tokens().end());
        context.push_back(next);
        SPOOL_TRY(req.drafter->Propose(context, std::min(depth, nodes), nodes, &tree));
        if (static_cast<int64_t>(tree.size()) > nodes) return InternalError("the drafter proposed too many nodes");
      }
    }
    ++res.spec.passes;
    const int64_t k = static_cast<int64_t>(tree.size());
    if (k == 0) {
      Sequence* s = &seq;
      SPOOL_TRY(engine.Decode(std::span<Sequence* const>(&s, 1), std::span<const int32_t>(&next, 1), logits.data()));
      continue;
    }
    fed.assign(1, next);
    fed.insert(fed.end(), tree.tokens.begin(), tree.tokens.end());
    logits.resize(static_cast<size_t>((k + 1) * V));
    n0 = seq.n_tokens();
    Engine::StepItem item{&seq, fed, /*all_logits=*/true, /*decode_rows=*/true};
    tree_step = !tree.chain();
    if (tree_step) {  // row 0 (next) is the root; node i is row i + 1
      parent.assign(1, -1);
      for (const int32_t p : tree.parent) parent.push_back(p + 1);
      item.tree_base = n0;
      item.tree_parent = parent;
      item.tree_rows = &tree_rows;
    }
    SPOOL_TRY(engine.Step(std::span<const Engine::StepItem>(&item, 1), logits.data()));
    n_rows = k + 1;
    cur = 0;
    path.assign(1, 0);
    res.spec.drafted += static_cast<uint64_t>(k);
    ++res.spec.verify_steps;
  }
  SPOOL_TRY(settle());
  if (decoder && res.finish_reason != "cancelled" && res.finish_reason != "stop") {
    res.text += decoder->Flush();
    emit(true);
  } else if (decoder && res.finish_reason == "stop") {
    emit(true);
  }
  res.decode_seconds = sw.Seconds();
  return res;
}

}  // namespace spool::runtime
