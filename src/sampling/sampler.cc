#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

namespace spool::sampling {

Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature)) return InvalidArgument("temperature must be a finite number");
  if (top_p < 0 || top_p > 1 || std::isnan(top_p)) return InvalidArgument("top_p must be in [0, 1], got " + std::to_string(top_p));
  if (min_p < 0 || min_p > 1 || std::isnan(min_p)) return InvalidArgument("min_p must be in [0, 1], got " + std::to_string(min_p));
  if (!(repeat_penalty > 0) || !std::isfinite(repeat_penalty))
    return InvalidArgument("repeat_penalty must be > 0, got " + std::to_string(repeat_penalty));
  if (!std::isfinite(presence_penalty) || !std::isfinite(frequency_penalty))
    return InvalidArgument("presence/frequency penalties must be finite numbers");
  if (penalty_last_n < -1) return InvalidArgument("penalty_last_n must be >= -1");
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0) return InvalidArgument("logit_bias: token id must be >= 0, got " + std::to_string(id));
    if (!(bias >= -kMaxLogitBias && bias <= kMaxLogitBias))
      return InvalidArgument("logit_bias: bias for token " + std::to_string(id) + " must be in [-100, 100], got " +
                             std::to_string(bias));
  }
  return Status::Ok();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::Accept(int32_t token) { history_.push_back(token); }
void Sampler::AcceptMany(std::span<const int32_t> tokens) { history_.insert(history_.end(), tokens.begin(), tokens.end()); }

int32_t ArgMax(std::span<const float> values) {
  SPOOL_CHECK(!values.empty());
  int32_t best = 0;
  for (size_t i = 1; i < values.size(); ++i)
    if (values[i] > values[best]) best = static_cast<int32_t>(i);
  return best;
}

void Sampler::ApplyLogitBias(std::vector<float>& logits) const {
  for (const auto& [id, bias] : params_.logit_bias)
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[static_cast<size_t>(id)] += bias;
}

bool Sampler::PenaltiesApply() const {
  const bool any = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
  return any && !history_.empty() && params_.penalty_last_n != 0;
}

void Sampler::ApplyPenalties(std::vector<float>& logits) const {
  if (!PenaltiesApply()) return;
  size_t n = params_.penalty_last_n < 0 ? history_.size()
                                        : std::min<size_t>(history_.size(), static_cast<size_t>(params_.penalty_last_n));
  std::unordered_map<int32_t, int> counts;
  for (size_t i = history_.size() - n; i < history_.size(); ++i) counts[history_[i]]++;
  for (auto [tok, count] : counts) {
    if (tok < 0 || static_cast<size_t>(tok) >= logits.size()) continue;
    float& l = logits[tok];
    if (params_.repeat_penalty != 1.0f) l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
  }
}

double TokenDistribution::Prob(int32_t id) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == id) return probs[i];
  return 0.0;
}

int32_t Sampler::Sample(std::span<const float> logits_in) {
  if (params_.temperature <= 0) return Distribution(logits_in).ids[0];
  return Draw(Distribution(logits_in));
}

TokenDistribution Sampler::Distribution(std::span<const float> logits_in) const {
  SPOOL_CHECK(!logits_in.empty());
  // Greedy with no bias and no penalty to apply: the arg max of the logits as they are,
  // without a copy of the vocabulary per token (128K floats, half a MiB, for Llama 3).
  if (params_.temperature <= 0 && params_.logit_bias.empty() && !PenaltiesApply())
    return TokenDistribution{{ArgMax(logits_in)}, {1.0}};
  std::vector<float> logits(logits_in.begin(), logits_in.end());
  ApplyLogitBias(logits);
  ApplyPenalties(logits);
  if (params_.temperature <= 0) return TokenDistribution{{ArgMax(logits)}, {1.0}};

  // Candidates sorted by logit descending (stable: ties keep the lower id first).
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  size_t k = ids.size();
  if (params_.top_k > 0) k = std::min<size_t>(k, static_cast<size_t>(params_.top_k));
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), by_logit);
  ids.resize(k);

  // Softmax over the candidates at temperature 1 for top-p / min-p (llama.cpp order).
  auto probs_of = [&](float temp) {
    std::vector<double> p(ids.size());
    double maxl = logits[ids[0]];
    double sum = 0;
    for (size_t i = 0; i < ids.size(); ++i) sum += p[i] = std::exp((logits[ids[i]] - maxl) / temp);
    for (auto& x : p) x /= sum;
    return p;
  };
  if (params_.top_p < 1.0f) {
    auto p = probs_of(1.0f);
    double cum = 0;
    size_t keep = ids.size();
    for (size_t i = 0; i < ids.size(); ++i) {
      cum += p[i];
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    ids.resize(keep);
  }
  if (params_.min_p > 0.0f) {
    auto p = probs_of(1.0f);
    size_t keep = 1;
    while (keep < ids.size() && p[keep] >= params_.min_p * p[0]) ++keep;
    ids.resize(keep);
  }
  TokenDistribution d;
  d.probs = probs_of(params_.temperature);
  d.ids = std::move(ids);
  return d;
}

int32_t Sampler::Draw(const TokenDistribution& d) {
  SPOOL_CHECK(!d.ids.empty() && d.ids.size() == d.probs.size());
  // Uniform double in [0, 1) from 53 random bits: identical on every platform.
  const double u = Uniform();
  double cum = 0;
  for (size_t i = 0; i < d.ids.size(); ++i) {
    cum += d.probs[i];
    if (u < cum) return d.ids[i];
  }
  return d.ids.back();
}

}  // namespace spool::sampling
