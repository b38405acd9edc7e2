// Logits and greedy ids of an engine over a fixed id sequence, and the relative distance
// to a reference's logits — shared by the hybrid-model tests (qwen3next_gguf_test,
// qwen35_test) that compare against transformers / llama.cpp json references.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool::testing_logits {

// Largest |got − want| / (1 + |want|). got: [positions, V] row-major; want: one row of V
// per position.
inline double Worst(const std::vector<float>& got, const std::vector<std::vector<float>>& want, int64_t V) {
  double w = 0;
  for (size_t t = 0; t < want.size(); ++t)
    for (int64_t v = 0; v < V; ++v)
      w = std::max(w, std::abs(got[t * V + v] - static_cast<double>(want[t][v])) / (1 + std::abs(want[t][v])));
  return w;
}

// The same over two flat arrays of equal length.
inline double Worst(const std::vector<float>& got, const std::vector<float>& want) {
  double w = 0;
  for (size_t i = 0; i < want.size(); ++i)
    w = std::max(w, std::abs(got[i] - static_cast<double>(want[i])) / (1 + std::abs(want[i])));
  return w;
}

// Logits at every position, [ids.size(), n_vocab]: one decode step per token (the
// recurrence: decode numerics).
inline std::vector<float> DecodeAll(runtime::Engine& e, const std::vector<int32_t>& ids) {
  const int64_t V = e.n_vocab();
  std::vector<float> logits(ids.size() * V);
  auto seq = e.NewSequence();
  for (size_t t = 0; t < ids.size(); ++t) {
    runtime::Sequence* s = seq.get();
    EXPECT_TRUE(e.Decode(std::span<runtime::Sequence* const>(&s, 1), std::span<const int32_t>(&ids[t], 1),
                         logits.data() + t * V).ok());
  }
  return logits;
}

// The same from one prefill (the engine's prefill chunking).
inline std::vector<float> PrefillAll(runtime::Engine& e, const std::vector<int32_t>& ids) {
  std::vector<float> logits(ids.size() * e.n_vocab());
  auto seq = e.NewSequence();
  Status st = e.Prefill(*seq, ids, logits.data(), /*all_logits=*/true);
  EXPECT_TRUE(st.ok()) << st.message();
  return logits;
}

// n greedy tokens after prompt; EOS does not stop them.
inline std::vector<int32_t> Greedy(runtime::Engine& e, const std::vector<int32_t>& prompt, int64_t n) {
  runtime::GenerateRequest req;
  req.prompt = prompt;
  req.sampling = sampling::SamplingParams::Greedy();
  req.max_tokens = n;
  req.ignore_eos = true;
  auto seq = e.NewSequence();
  auto res = runtime::Generate(e, *seq, req);
  EXPECT_TRUE(res.ok()) << res.status().message();
  return res.ok() ? res->ids : std::vector<int32_t>{};
}

}  // namespace spool::testing_logits
