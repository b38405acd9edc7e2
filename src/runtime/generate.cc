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

  res.finish_reason = "length";
  for (int64_t i = 0; i < req.max_tokens; ++i) {
    int32_t next;
    if (!req.forced_output.empty()) {
      if (static_cast<size_t>(i) >= req.forced_output.size()) {
        res.finish_reason = "stop";
        break;
      }
      next = req.forced_output[static_cast<size_t>(i)];
      if (next < 0 || next >= engine.n_vocab()) return InvalidArgument("forced output id " + std::to_string(next) + " is outside the vocabulary");
    } else {
      next = sampler.Sample(logits);
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
    if (seq.n_tokens() + 1 > engine.ctx()) {
      res.finish_reason = "length";
      break;
    }
    Sequence* s = &seq;
    SPOOL_TRY(engine.Decode(std::span<Sequence* const>(&s, 1), std::span<const int32_t>(&next, 1), logits.data()));
  }
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
