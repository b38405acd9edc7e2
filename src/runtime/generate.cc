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
  if (req.drafter && seq.recurrent())
    return InvalidArgument("speculative decoding is not supported for models with linear-attention layers: their "
                           "recurrent state cannot be rewound past rejected drafts");
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

  // Speculation: a verification step feeds [next, drafts...] with decode numerics and
  // leaves one logit row per fed token; rows [row, n_rows) are still to be used. After
  // sampling from row r, the draft token fed after it (draft[r]) is accepted when it
  // equals the sampled token, and row r + 1 is next; otherwise the K/V of the drafts
  // after it are dropped (the sampled token stays un-fed, as in plain decoding).
  const int64_t V = engine.n_vocab();
  int64_t row = 0, n_rows = 1;
  int64_t n0 = 0;  // sequence length before the last verification step
  std::vector<int32_t> draft, context, fed;
  auto settle = [&]() -> Status {
    if (n_rows <= 1) return Status::Ok();
    const int64_t keep = n0 + row + 1;
    if (seq.n_tokens() > keep) SPOOL_TRY(engine.Truncate(seq, keep));
    res.spec.accepted += static_cast<uint64_t>(row);
    req.drafter->Feedback(n_rows - 1, row);
    n_rows = 1;
    row = 0;
    return Status::Ok();
  };

  // Sampled drafts (a draft model with sample_drafts) at temperature > 0 go through the
  // rejection rule (SpeculativeSample); every other draft is checked by exact match.
  if (req.drafter) req.drafter->SetSampling(req.sampling);
  const bool rejection = req.drafter && req.drafter->sampled() && req.sampling.temperature > 0;

  res.finish_reason = "length";
  for (int64_t i = 0; i < req.max_tokens; ++i) {
    const std::span<const float> row_logits(logits.data() + row * V, static_cast<size_t>(V));
    int32_t next;
    if (!req.forced_output.empty()) {
      if (static_cast<size_t>(i) >= req.forced_output.size()) {
        res.finish_reason = "stop";
        break;
      }
      next = req.forced_output[static_cast<size_t>(i)];
      if (next < 0 || next >= engine.n_vocab()) return InvalidArgument("forced output id " + std::to_string(next) + " is outside the vocabulary");
    } else if (rejection && row + 1 < n_rows) {
      const auto& q = req.drafter->draft_distributions();
      SPOOL_CHECK(static_cast<int64_t>(q.size()) >= n_rows - 1);
      next = SpeculativeSample(sampler, sampler.Distribution(row_logits), q[static_cast<size_t>(row)],
                               draft[static_cast<size_t>(row)]);
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
    if (row + 1 < n_rows && next == draft[static_cast<size_t>(row)]) {
      ++row;  // accepted: its K/V are in the cache and the next row's logits are ready
      continue;
    }
    SPOOL_TRY(settle());
    if (seq.n_tokens() + 1 > engine.ctx()) {
      res.finish_reason = "length";
      break;
    }
    // Drafts: at most what is left to emit after next's successor (the last emitted
    // token is never fed), and what the context holds.
    int64_t k = 0;
    if (req.drafter) {
      k = std::min(req.max_tokens - i - 2, engine.ctx() - seq.n_tokens() - 1);
      if (k > 0) {
        context.assign(seq.tokens().begin(), seq.tokens().end());
        context.push_back(next);
        draft.clear();
        SPOOL_TRY(req.drafter->Draft(context, k, &draft));
        if (static_cast<int64_t>(draft.size()) > k) draft.resize(static_cast<size_t>(k));
        k = static_cast<int64_t>(draft.size());
      }
    }
    ++res.spec.passes;
    if (k == 0) {
      Sequence* s = &seq;
      SPOOL_TRY(engine.Decode(std::span<Sequence* const>(&s, 1), std::span<const int32_t>(&next, 1), logits.data()));
      continue;
    }
    fed.assign(1, next);
    fed.insert(fed.end(), draft.begin(), draft.end());
    logits.resize(static_cast<size_t>((k + 1) * V));
    n0 = seq.n_tokens();
    Engine::StepItem item{&seq, fed, /*all_logits=*/true, /*decode_rows=*/true};
    SPOOL_TRY(engine.Step(std::span<const Engine::StepItem>(&item, 1), logits.data()));
    n_rows = k + 1;
    row = 0;
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
