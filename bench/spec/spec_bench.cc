// Speculative decoding benchmark helper (bench-only; not part of the spool binary).
//
//   spec_bench rank TARGET DRAFT PROMPT N
//     Greedy-decodes N tokens of TARGET (ids via its tokenizer), then feeds the same
//     tokens to the draft model (DRAFT: a path, "self" = Q8_0 copy, "self:q4_0") one
//     decode step at a time and prints, as JSON, how often the target's next token is
//     not among the draft's top-W tokens (W = 1, 2, 4, 8): the miss rates a replay
//     drafter uses to stand in for that draft model on a model with random weights.
//
//   spec_bench replay MODEL BUDGET N REPS CONFIGS [PROMPT_IDS]
//     MODEL with --mem-budget BUDGET (e.g. 4G), N greedy tokens after a 16-token prompt,
//     REPS repetitions. Each repetition runs plain decoding, then every config of
//     CONFIGS ("W:D:MISS,..." — W candidates per level, D levels, MISS the probability
//     that the target's token is not among a level's W candidates) with a *replay
//     drafter*: it knows the plain run's ids and proposes, at each level under the
//     last correct node, the true token among W candidates with probability 1 - MISS
//     (levels independent; after a miss the level's first candidate, wrong, carries on).
//     It measures what verification costs at a given acceptance, not a drafter: the
//     drafting itself costs nothing here (a self-draft's own time is not included).
//     Checks that every run emits the plain ids; prints one JSON line per run.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>

#include "base/strings.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"

using namespace spool;
using namespace spool::runtime;

namespace {

[[noreturn]] void Die(const std::string& m) {
  std::fprintf(stderr, "spec_bench: %s\n", m.c_str());
  std::exit(1);
}

template <typename T>
T Check(Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.status().message());
  return std::move(*r);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.message());
}

GenerateResult Run(Engine& e, const std::vector<int32_t>& prompt, int64_t n, Drafter* d) {
  auto seq = e.NewSequence();
  GenerateRequest req;
  req.prompt = prompt;
  req.sampling.temperature = 0;
  req.max_tokens = n;
  req.ignore_eos = true;
  req.drafter = d;
  return Check(Generate(e, *seq, req), "generate");
}

// Bench-only: replays the plain run's ids (see the header comment).
class ReplayDrafter final : public Drafter {
 public:
  ReplayDrafter(std::vector<int32_t> truth, int64_t prompt_len, int64_t width, int64_t depth, double miss,
                int64_t n_vocab, uint64_t seed)
      : truth_(std::move(truth)), prompt_len_(prompt_len), width_(width), depth_(depth), miss_(miss),
        n_vocab_(n_vocab), rng_(seed) {}
  std::string name() const override { return "replay"; }
  Status Draft(std::span<const int32_t> context, int64_t max_tokens, std::vector<int32_t>* out) override {
    DraftTree t;
    SPOOL_TRY(Propose(context, max_tokens, max_tokens, &t));
    *out = t.tokens;
    return Status::Ok();
  }
  Status Propose(std::span<const int32_t> context, int64_t max_depth, int64_t max_nodes, DraftTree* out) override {
    out->tokens.clear();
    out->parent.clear();
    // context = prompt + ids[0..j]; the next true token is ids[j + 1].
    const int64_t j = static_cast<int64_t>(context.size()) - prompt_len_ - 1;
    int32_t at = -1;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t l = 0; l < std::min(depth_, max_depth); ++l) {
      const int64_t idx = j + 1 + l;
      if (idx >= static_cast<int64_t>(truth_.size())) break;
      const int32_t t = truth_[static_cast<size_t>(idx)];
      const bool hit = u(rng_) >= miss_;
      int32_t next_at = -1;
      for (int64_t c = 0; c < width_ && static_cast<int64_t>(out->size()) < max_nodes; ++c) {
        const int32_t tok = hit && c == 0 ? t : static_cast<int32_t>((t + 1 + c) % n_vocab_);
        out->tokens.push_back(tok);
        out->parent.push_back(at);
        if (c == 0) next_at = static_cast<int32_t>(out->size() - 1);
      }
      if (next_at < 0) break;
      at = next_at;
    }
    return Status::Ok();
  }

 private:
  std::vector<int32_t> truth_;
  int64_t prompt_len_, width_, depth_;
  double miss_;
  int64_t n_vocab_;
  std::mt19937_64 rng_;
};

int Rank(int argc, char** argv) {
  if (argc != 6) Die("usage: spec_bench rank TARGET DRAFT PROMPT N");
  EngineOptions o;
  o.draft_model = argv[3];
  o.max_draft = 8;
  o.kv_window = 0;
  auto e = Check(Engine::Open(argv[2], o), "open");
  Engine* d = e->draft_engine();
  if (e->tokenizer() == nullptr) Die("the target has no tokenizer");
  const auto prompt = Check(e->tokenizer()->Encode(argv[4], true, false), "tokenize");
  const int64_t n = std::atoll(argv[5]);
  const GenerateResult plain = Run(*e, prompt, n, nullptr);
  // Feed prompt + ids to the draft model; rank of the target's next token at each position.
  auto seq = d->NewSequence();
  const int64_t V = d->n_vocab();
  std::vector<float> logits(static_cast<size_t>(V));
  Check(d->Prefill(*seq, prompt, logits.data()), "draft prefill");
  const int widths[] = {1, 2, 4, 8};
  int64_t misses[4] = {0, 0, 0, 0}, positions = 0;
  for (size_t i = 0; i < plain.ids.size(); ++i) {
    const int32_t t = plain.ids[i];
    int64_t rank = 0;  // tokens the draft scores above t (ties: lower id first, as TopCandidates)
    for (int64_t v = 0; v < V; ++v)
      if (logits[v] > logits[t] || (logits[v] == logits[t] && v < t)) ++rank;
    for (int w = 0; w < 4; ++w) misses[w] += rank >= widths[w];
    ++positions;
    if (i + 1 == plain.ids.size()) break;
    Sequence* s = seq.get();
    Check(d->Decode(std::span<Sequence* const>(&s, 1), std::span<const int32_t>(&t, 1), logits.data()), "draft decode");
  }
  std::printf("{\"target\": \"%s\", \"draft\": \"%s\", \"positions\": %lld", argv[2], argv[3],
              static_cast<long long>(positions));
  for (int w = 0; w < 4; ++w)
    std::printf(", \"miss_top%d\": %.4f", widths[w], static_cast<double>(misses[w]) / static_cast<double>(positions));
  std::printf("}\n");
  return 0;
}

int Replay(int argc, char** argv) {
  if (argc < 7) Die("usage: spec_bench replay MODEL BUDGET N REPS W:D:MISS,... [PROMPT_IDS]");
  EngineOptions o;
  o.mem_budget = Check(ParseSize(argv[3]), "budget");
  o.max_draft = 64;
  const int64_t n = std::atoll(argv[4]), reps = std::atoll(argv[5]);
  struct Config {
    int64_t w, d;
    double miss;
  };
  std::vector<Config> configs;
  {
    std::stringstream ss(argv[6]);
    std::string item;
    while (std::getline(ss, item, ',')) {
      Config c{};
      if (std::sscanf(item.c_str(), "%lld:%lld:%lf", reinterpret_cast<long long*>(&c.w),
                      reinterpret_cast<long long*>(&c.d), &c.miss) != 3)
        Die("bad config " + item);
      configs.push_back(c);
    }
  }
  auto e = Check(Engine::Open(argv[2], o), "open");
  std::vector<int32_t> prompt;
  if (argc > 7) {
    std::stringstream ss(argv[7]);
    std::string id;
    while (std::getline(ss, id, ',')) prompt.push_back(static_cast<int32_t>(std::atoi(id.c_str())));
  } else {
    for (int i = 0; i < 16; ++i) prompt.push_back(static_cast<int32_t>((1000 + 7919 * i) % e->n_vocab()));
  }
  std::fprintf(stderr, "plan: %d streamed groups\n", e->plan().n_streamed);
  // Weight bytes read while decoding, per run (streamed groups, embedding rows, experts).
  uint64_t bytes0 = 0;
  auto line = [&](int64_t rep, const std::string& cfg, const GenerateResult& r, bool same) {
    const double tps = r.decode_seconds > 0 ? static_cast<double>(r.ids.size() - 1) / r.decode_seconds : 0;
    const uint64_t bytes = e->stats().decode_weight_bytes - bytes0;
    bytes0 = e->stats().decode_weight_bytes;
    std::printf("{\"rep\": %lld, \"config\": \"%s\", \"tokens\": %zu, \"passes\": %llu, \"tokens_per_pass\": %.3f, "
                "\"drafted\": %llu, \"accepted\": %llu, \"decode_s\": %.3f, \"decode_tok_s\": %.4f, "
                "\"s_per_pass\": %.3f, \"weight_mib_per_pass\": %.1f, \"same_ids\": %s}\n",
                static_cast<long long>(rep), cfg.c_str(), r.ids.size(), static_cast<unsigned long long>(r.spec.passes),
                TokensPerPass(r.spec), static_cast<unsigned long long>(r.spec.drafted),
                static_cast<unsigned long long>(r.spec.accepted), r.decode_seconds, tps,
                r.spec.passes > 0 ? r.decode_seconds / static_cast<double>(r.spec.passes) : 0.0,
                r.spec.passes > 0 ? static_cast<double>(bytes) / static_cast<double>(r.spec.passes) / 1048576.0 : 0.0,
                same ? "true" : "false");
    std::fflush(stdout);
  };
  for (int64_t rep = 0; rep < reps; ++rep) {
    const GenerateResult plain = Run(*e, prompt, n, nullptr);
    line(rep, "plain", plain, true);
    for (const Config& c : configs) {
      ReplayDrafter d(plain.ids, static_cast<int64_t>(prompt.size()), c.w, c.d, c.miss, e->n_vocab(),
                      static_cast<uint64_t>(rep + 1));
      const GenerateResult r = Run(*e, prompt, n, &d);
      char cfg[96];
      std::snprintf(cfg, sizeof cfg, "replay tree %lldx%lld (%lld nodes) miss %.3f", static_cast<long long>(c.w),
                    static_cast<long long>(c.d), static_cast<long long>(c.w * c.d), c.miss);
      line(rep, cfg, r, r.ids == plain.ids);
      if (r.ids != plain.ids) Die("replay run emitted other ids than plain decoding");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "rank") return Rank(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "replay") return Replay(argc, argv);
  Die("usage: spec_bench rank|replay ...");
}
