// Qwen3-Next from GGUF (issue 15): a tiny random Qwen3NextForCausalLM
// (tests/fixtures/qwen3next/qwen3next-h64, tools/gen_qwen3next_gguf_fixtures.py:
// 3 Gated DeltaNet + 1 gated attention layers, 2 key / 4 value heads, MoE top-2 of 4 +
// shared expert in every layer) converted by llama.cpp's convert_hf_to_gguf.py
// (llama-cpp-python 0.3.36's sdist; split attn_qkv + attn_gate projections, ssm_a =
// −exp(A_log), squeezed conv, 1 + w norms) and run:
//  - against llama.cpp on the same file (llama-cpp-python 0.3.36: logits at all 80
//    positions, its 32 greedy ids, perplexity within 0.5%);
//  - against transformers 5.25.0 on the model before conversion (logits, greedy ids);
//  - against spool's own run of the HF folder (the GGUF reader maps every tensor and
//    transform exactly);
// and malformed conversions are refused naming the tensor or key.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../formats/test_writers.h"
#include "gguf_rewrite.h"
#include "logits_helpers.h"
#include "formats/gguf.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/perplexity.h"

namespace spool {
namespace {

const std::string kDir = std::string(SPOOL_TEST_FIXTURES) + "/qwen3next";
const std::string kHf = kDir + "/qwen3next-h64";
const std::string kGguf = kDir + "/qwen3next-h64.gguf";

// Bounds, |Δ| / (1 + |logit|) over every position. Measured (2-vCPU EPYC, 2026-12-06)
// in the printouts of the tests below; each bound sits above its measurement with room
// for f32 summation order only:
//  - GGUF vs HF folder through spool: the same kernels; only −exp(A_log) (torch's exp
//    in the converter vs std::exp) can differ by an ulp;
//  - vs transformers (its chunked delta rule in f32): spool's own kernels' order;
//  - vs llama.cpp: its f32 GEMM and delta-rule orders, and its l2 norm
//    (x / max(‖x‖, eps) instead of x · rsqrt(‖x‖² + 1e-6)).
constexpr double kSameModelBound = 1e-5;
constexpr double kTransformersBound = 2e-4;
constexpr double kLlamaCppBound = 2e-4;

nlohmann::json Load(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

runtime::EngineOptions Options(int64_t chunk = 512) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.ctx = 256;
  o.kv_dtype = DType::kF32;
  o.kv_page_tokens = 16;
  o.prefill_chunk = chunk;
  o.load_tokenizer = false;
  return o;
}

using testing_logits::DecodeAll;
using testing_logits::Greedy;
using testing_logits::PrefillAll;
using testing_logits::Worst;

std::unique_ptr<runtime::Engine> Open(const std::string& path, int64_t chunk = 512) {
  auto e = runtime::Engine::Open(path, Options(chunk));
  EXPECT_TRUE(e.ok()) << e.status().message();
  return e.ok() ? std::move(*e) : nullptr;
}

TEST(Qwen3NextGguf, ConfigEqualsTheHfFolders) {
  auto g = Open(kGguf), h = Open(kHf);
  ASSERT_TRUE(g && h);
  const models::ModelConfig &a = g->config(), &b = h->config();
  EXPECT_EQ(a.arch, "qwen3next");
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.n_nextn_layers, 0);
  for (int64_t l = 0; l < a.n_layer; ++l) {
    EXPECT_EQ(a.layers[l].mixer, b.layers[l].mixer) << "layer " << l;
    EXPECT_EQ(a.layers[l].ffn, models::FfnKind::kMoe) << "layer " << l;
  }
  EXPECT_EQ(a.n_linear_layers(), 3);
  EXPECT_EQ(a.linear.n_k_heads, b.linear.n_k_heads);
  EXPECT_EQ(a.linear.n_v_heads, b.linear.n_v_heads);
  EXPECT_EQ(a.linear.k_head_dim, b.linear.k_head_dim);
  EXPECT_EQ(a.linear.v_head_dim, b.linear.v_head_dim);
  EXPECT_EQ(a.linear.conv_kernel, b.linear.conv_kernel);
  EXPECT_EQ(a.rope_dim, b.rope_dim);
  EXPECT_EQ(a.rope_dim, 4);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_TRUE(a.attn_output_gate && a.qk_norm);
  EXPECT_FALSE(a.norm_plus_one) << "the converter stored 1 + w already";
  EXPECT_EQ(a.moe.n_expert, b.moe.n_expert);
  EXPECT_EQ(a.moe.n_expert_used, b.moe.n_expert_used);
  EXPECT_EQ(a.moe.n_ff_expert, b.moe.n_ff_expert);
  EXPECT_EQ(a.moe.n_ff_shared, b.moe.n_ff_shared);
  EXPECT_TRUE(a.moe.norm_topk_prob);
  // The converter's split projection: q, k, v channels (ungrouped) and z apart.
  const models::LinearAttnWeights& w = g->weights().layer(0).linear;
  EXPECT_TRUE(w.split());
  EXPECT_EQ(w.in_qkv.n_out, a.linear.conv_dim());
  EXPECT_EQ(w.in_z.n_out, a.linear.value_dim());
  EXPECT_FALSE(h->weights().layer(0).linear.split());
  // −exp(A_log) as stored by the converter equals spool's own from the HF A_log.
  const auto& ga = w.neg_a;
  const auto& ha = h->weights().layer(0).linear.neg_a;
  ASSERT_EQ(ga.size(), ha.size());
  for (size_t i = 0; i < ga.size(); ++i) EXPECT_NEAR(ga[i], ha[i], 1e-6 * std::abs(ha[i])) << i;
  auto sg = g->NewSequence(), sh = h->NewSequence();
  EXPECT_EQ(sg->recurrent()->bytes(), sh->recurrent()->bytes());
}

TEST(Qwen3NextGguf, GgufEqualsTheHfFolderThroughSpool) {
  const auto ref = Load(kHf + "/reference.json");
  const auto ids = ref["sequence_ids"].get<std::vector<int32_t>>();
  auto g = Open(kGguf), h = Open(kHf);
  ASSERT_TRUE(g && h);
  const double pre = Worst(PrefillAll(*g, ids), PrefillAll(*h, ids));
  const double dec = Worst(DecodeAll(*g, ids), DecodeAll(*h, ids));
  std::printf("qwen3next GGUF vs its HF folder (spool both): prefill %.3g, decode path %.3g (bound %.0e)\n", pre, dec,
              kSameModelBound);
  EXPECT_LT(pre, kSameModelBound);
  EXPECT_LT(dec, kSameModelBound);
}

TEST(Qwen3NextGguf, MatchesTransformers) {
  const auto ref = Load(kHf + "/reference.json");
  const auto ids = ref["sequence_ids"].get<std::vector<int32_t>>();
  const auto want = ref["sequence_logits"].get<std::vector<std::vector<float>>>();
  auto e = Open(kGguf);
  ASSERT_TRUE(e);
  const int64_t V = e->n_vocab();
  const double pre = Worst(PrefillAll(*e, ids), want, V);
  const double dec = Worst(DecodeAll(*e, ids), want, V);
  std::printf("qwen3next GGUF vs transformers over %zu positions: prefill %.3g, decode path %.3g (bound %.0e)\n",
              ids.size(), pre, dec, kTransformersBound);
  EXPECT_LT(pre, kTransformersBound);
  EXPECT_LT(dec, kTransformersBound);
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(Greedy(*e, prompt, static_cast<int64_t>(greedy.size())), greedy);
  auto chunked = Open(kGguf, 7);  // prefill in steps of 7 tokens
  ASSERT_TRUE(chunked);
  EXPECT_EQ(Greedy(*chunked, prompt, static_cast<int64_t>(greedy.size())), greedy) << "prefill chunks of 7";
}

TEST(Qwen3NextGguf, MatchesLlamaCpp) {
  const auto ref = Load(kDir + "/qwen3next-h64.llamacpp.json");
  const auto ids = ref["sequence_ids"].get<std::vector<int32_t>>();
  const auto want = ref["sequence_logits"].get<std::vector<std::vector<float>>>();
  auto e = Open(kGguf);
  ASSERT_TRUE(e);
  const int64_t V = e->n_vocab();
  const double pre = Worst(PrefillAll(*e, ids), want, V);
  const double dec = Worst(DecodeAll(*e, ids), want, V);
  std::printf("qwen3next GGUF vs llama.cpp over %zu positions: prefill %.3g, decode path %.3g (bound %.0e)\n", ids.size(),
              pre, dec, kLlamaCppBound);
  EXPECT_LT(pre, kLlamaCppBound);
  EXPECT_LT(dec, kLlamaCppBound);
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(Greedy(*e, prompt, static_cast<int64_t>(greedy.size())), greedy);
}

// llama-perplexity's method over the recorded ids (tools/gen_llamacpp_refs.py).
TEST(Qwen3NextGguf, PerplexityWithinHalfAPercentOfLlamaCpp) {
  const auto ref = Load(kDir + "/qwen3next-h64.llamacpp.json")["perplexity"];
  const auto ids = ref["token_ids"].get<std::vector<int32_t>>();
  auto e = Open(kGguf);
  ASSERT_TRUE(e);
  auto res = runtime::Perplexity(*e, ids, ref["n_ctx"].get<int64_t>(), -1);
  ASSERT_TRUE(res.ok()) << res.status().message();
  const double want = ref["ppl"].get<double>();
  std::printf("qwen3next GGUF perplexity %.6f, llama.cpp %.6f (%d tokens)\n", res->ppl, want,
              static_cast<int>(res->scored_tokens));
  EXPECT_EQ(res->scored_tokens, ref["scored_tokens"].get<int64_t>());
  EXPECT_LT(std::abs(res->ppl - want) / want, 0.005);
}

// Quantised GGUFs written by llama.cpp's own quantiser (llama_model_quantize, default
// rules), against llama.cpp on each file: tools/gen_qwen3next_quant_fixtures.py's
// qwen3next-h256 (hidden 256, head dims 64, one Gated DeltaNet and one gated attention
// layer, MoE top-2 of 4 + shared expert in both) as Q8_0 and Q4_K_M —
// at hidden 256 the Q4_K_M file holds real Q4_K and Q6_K blocks beside the Q5_0 / Q8_0
// fallbacks of the 64-column down projections (the tensor types are checked against the
// json). llama.cpp's own logits on each file differ from its f32 run of the unquantised
// model by `llamacpp_self_gap` (json; 0.318 for Q8_0, 1.7 for Q4_K_M: weight rounding,
// activation re-quantisation and near-tie routing decisions move logits that much). spool
// must agree with llama.cpp on the same file within kSelfGapFraction of that gap at every
// position (|Δ| / (1 + |logit|)). A misread tensor (wrong type, block layout, row order of
// the split attn_qkv / attn_gate, ssm_ba, ssm_out or an expert's rows) changes weights by
// at least as much as quantisation does and fails that bound; what passes is the two
// engines' different f32 rounding upstream of each requantised activation (measured
// 2026-12-06, 2-vCPU EPYC: 0.0099 for Q8_0, 0.026 for Q4_K_M — 32x and 64x below
// llama.cpp's own gap). Greedy ids identical but where llama.cpp's best-vs-second margin
// is below kNearTie (its ids before such a step must agree; measured 32 of 32 on both);
// perplexity within 0.5% (measured 0.007% and 3e-8).
//
// The earlier h64 quantised fixture (hidden 64, weights N(0, 0.08²)) could not settle this:
// that tiny random model amplifies any perturbation — llama.cpp's own logits on its Q8_0
// file and on an f32 file holding exactly the dequantised Q8_0 weights differ by 1.6, from
// activation quantisation alone; spool on that dequantised file agrees with llama.cpp within
// 7.5e-5, and at position 0 of the Q4_K_M file bit for bit (docs/parts/qwen3next.md).
constexpr double kSelfGapFraction = 0.05;
constexpr double kNearTie = 1e-2;

class Qwen3NextQuantGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(Qwen3NextQuantGguf, MatchesLlamaCpp) {
  const std::string file = GetParam();
  const auto ref = Load(kDir + "/qwen3next-h256-quant.llamacpp.json")["files"][file];
  ASSERT_TRUE(ref.is_object()) << file;
  auto e = Open(kDir + "/" + file);
  ASSERT_TRUE(e);
  // The tensor types spool reads are the ones llama.cpp's quantiser wrote.
  std::map<std::string, int> types;
  for (const auto& t : e->source().tensors) {
    std::string name(DTypeName(t.dtype));
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    ++types[name];
  }
  const auto want_types = ref["tensor_types"].get<std::map<std::string, int>>();
  EXPECT_EQ(types, want_types) << file;
  const double self_gap = ref["llamacpp_self_gap"].get<double>();
  const double bound = kSelfGapFraction * self_gap;
  const auto ids = ref["sequence_ids"].get<std::vector<int32_t>>();
  const auto want = ref["sequence_logits"].get<std::vector<std::vector<float>>>();
  const int64_t V = e->n_vocab();
  const double pre = Worst(PrefillAll(*e, ids), want, V);
  const double dec = Worst(DecodeAll(*e, ids), want, V);
  std::printf("%s vs llama.cpp over %zu positions: prefill %.3g, decode path %.3g (bound %.3g; llama.cpp's own gap "
              "to f32 %.3g)\n",
              file.c_str(), ids.size(), pre, dec, bound, self_gap);
  EXPECT_LT(pre, bound);
  EXPECT_LT(dec, bound);
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy = ref["greedy_ids"].get<std::vector<int32_t>>();
  const auto margins = ref["greedy_margins"].get<std::vector<double>>();
  const auto got = Greedy(*e, prompt, static_cast<int64_t>(greedy.size()));
  ASSERT_EQ(got.size(), greedy.size());
  size_t same = 0;
  while (same < got.size() && got[same] == greedy[same]) ++same;
  if (same < got.size()) {
    EXPECT_LT(margins.at(same), kNearTie) << "greedy ids differ at step " << same << " where llama.cpp's margin is "
                                             << margins.at(same);
  }
  std::printf("%s: %zu of %zu greedy ids equal llama.cpp's\n", file.c_str(), same, greedy.size());
  const auto& pr = ref["perplexity"];
  auto res = runtime::Perplexity(*e, pr["token_ids"].get<std::vector<int32_t>>(), pr["n_ctx"].get<int64_t>(), -1);
  ASSERT_TRUE(res.ok()) << res.status().message();
  const double want_ppl = pr["ppl"].get<double>();
  std::printf("%s perplexity %.6f, llama.cpp %.6f\n", file.c_str(), res->ppl, want_ppl);
  EXPECT_EQ(res->scored_tokens, pr["scored_tokens"].get<int64_t>());
  EXPECT_LT(std::abs(res->ppl - want_ppl) / want_ppl, 0.005);
}

INSTANTIATE_TEST_SUITE_P(Files, Qwen3NextQuantGguf,
                         ::testing::Values("qwen3next-h256-q8_0.gguf", "qwen3next-h256-q4_k_m.gguf"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           return i.param.find("q8_0") != std::string::npos ? std::string("Q8_0") : std::string("Q4_K_M");
                         });

// A checkpoint kept at any length (a chat turn's prompt end): rewinding there and feeding
// the same tokens again = a run that never went further, bit for bit.
TEST(Qwen3NextGguf, KeptCheckpointRewindsExactly) {
  const auto ids = Load(kHf + "/reference.json")["sequence_ids"].get<std::vector<int32_t>>();
  auto e = Open(kGguf);
  ASSERT_TRUE(e);
  const int64_t V = e->n_vocab();
  const std::span<const int32_t> head(ids.data(), 21), tail(ids.data() + 21, 14), other(ids.data() + 40, 9);
  std::vector<float> want(V), got(V), scratch(V);
  auto fresh = e->NewSequence();
  ASSERT_TRUE(e->Prefill(*fresh, head, scratch.data()).ok());
  ASSERT_TRUE(e->Prefill(*fresh, tail, want.data()).ok());
  auto seq = e->NewSequence();
  EXPECT_FALSE(e->KeepCheckpoint(*seq)) << "nothing to keep at length 0";
  ASSERT_TRUE(e->Prefill(*seq, head, scratch.data()).ok());
  EXPECT_TRUE(e->KeepCheckpoint(*seq));
  ASSERT_TRUE(e->Prefill(*seq, other, scratch.data()).ok());  // a turn that diverges
  EXPECT_EQ(e->RewindPoint(*seq, 25), 21);
  EXPECT_EQ(e->RewindPoint(*seq, 20), 0);
  EXPECT_FALSE(e->Truncate(*seq, 25).ok());
  ASSERT_TRUE(e->Truncate(*seq, 21).ok());
  ASSERT_TRUE(e->Prefill(*seq, tail, got.data()).ok());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), V * sizeof(float)), 0);
}

// Not llama.cpp-exact for the Gated DeltaNet: refused rather than half applied.
TEST(Qwen3NextGguf, GgmlNumericsAreRefusedClearly) {
  runtime::EngineOptions o = Options();
  o.ggml_numerics = true;
  auto e = runtime::Engine::Open(kGguf, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("--numerics ggml does not support linear-attention (Gated DeltaNet) layers"),
            std::string::npos)
      << e.status().message();
}

// --- other layouts llama.cpp loads, written from the converted file ----------------

using testing::NewTensor;
using testing::U32Value;

// The converted GGUF rewritten (testing::RewriteGguf, tests/models/gguf_rewrite.h).
std::string Rewrite(const std::string& tag, const std::function<bool(const std::string&, formats::GgufValue&)>& edit_kv,
                    const std::vector<std::pair<std::string, formats::GgufValue>>& extra_kv,
                    const std::function<bool(const std::string&)>& drop, const std::vector<NewTensor>& add) {
  return testing::RewriteGguf(kGguf, "q3n-" + tag, edit_kv, extra_kv, drop, add);
}

std::vector<float> SequenceLogits(const std::string& path) {
  const auto ids = Load(kHf + "/reference.json")["sequence_ids"].get<std::vector<int32_t>>();
  auto e = Open(path);
  EXPECT_TRUE(e);
  return e ? PrefillAll(*e, ids) : std::vector<float>{};
}

// An older converter's layout: one grouped `ssm_in` per Gated DeltaNet layer (per key
// head q, k, v, z — the HF in_proj_qkvz order) instead of attn_qkv + attn_gate.
TEST(Qwen3NextGguf, LegacyGroupedSsmInEqualsTheSplitLayout) {
  auto e = Open(kGguf);
  ASSERT_TRUE(e);
  const models::ModelConfig c = e->config();
  const int64_t nk = c.linear.n_k_heads, dk = c.linear.k_head_dim, dv = c.linear.v_head_dim;
  const int64_t r = c.linear.n_v_heads / nk, KD = c.linear.key_dim(), D = c.n_embd;
  auto g = formats::ReadGguf(kGguf);
  ASSERT_TRUE(g.ok());
  std::ifstream in(kGguf, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<NewTensor> add;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    if (c.layers[l].mixer != models::MixerKind::kLinearAttention) continue;
    const std::string b = "blk." + std::to_string(l) + ".";
    const formats::TensorInfo* qkv = g->FindTensor(b + "attn_qkv.weight");
    const formats::TensorInfo* z = g->FindTensor(b + "attn_gate.weight");
    ASSERT_TRUE(qkv && z);
    const size_t row = static_cast<size_t>(D) * 4;
    auto rows = [&](const formats::TensorInfo* t, int64_t r0, int64_t n) {
      return std::string(file.begin() + t->offset + r0 * row, file.begin() + t->offset + (r0 + n) * row);
    };
    std::string grouped;
    for (int64_t hk = 0; hk < nk; ++hk)
      grouped += rows(qkv, hk * dk, dk) + rows(qkv, KD + hk * dk, dk) + rows(qkv, 2 * KD + hk * r * dv, r * dv) +
                 rows(z, hk * r * dv, r * dv);
    add.push_back({b + "ssm_in.weight", {static_cast<uint64_t>(c.linear.qkvz_dim()), static_cast<uint64_t>(D)},
                   std::vector<uint8_t>(grouped.begin(), grouped.end())});
  }
  const std::string path = Rewrite(
      "legacy", [](const std::string&, formats::GgufValue&) { return true; }, {},
      [](const std::string& n) {
        return n.find("attn_qkv.weight") != std::string::npos || n.find("attn_gate.weight") != std::string::npos;
      },
      add);
  auto legacy = Open(path);
  ASSERT_TRUE(legacy);
  EXPECT_FALSE(legacy->weights().layer(0).linear.split());
  EXPECT_EQ(legacy->weights().layer(0).linear.in_qkvz.n_out, c.linear.qkvz_dim());
  const auto want = SequenceLogits(kGguf), got = SequenceLogits(path);
  const double d = Worst(got, want);
  std::printf("qwen3next legacy ssm_in vs split attn_qkv + attn_gate: %.3g\n", d);
  EXPECT_LT(d, 1e-6);
  std::filesystem::remove(path);
}

// A multi-token-prediction block after the trunk (nextn_predict_layers 1, block_count 5,
// recurrent_layers of 5, blk.4.* tensors) is not run: the same logits.
TEST(Qwen3NextGguf, MtpBlockIsIgnored) {
  auto g = formats::ReadGguf(kGguf);
  ASSERT_TRUE(g.ok());
  std::vector<float> zeros(64 * 128, 0.0f);
  const auto* norm = reinterpret_cast<const uint8_t*>(zeros.data());
  std::vector<NewTensor> add = {
      {"blk.4.attn_norm.weight", {64}, std::vector<uint8_t>(norm, norm + 64 * 4)},
      {"blk.4.nextn.eh_proj.weight", {64, 128}, std::vector<uint8_t>(norm, norm + zeros.size() * 4)},
      {"blk.4.nextn.enorm.weight", {64}, std::vector<uint8_t>(norm, norm + 64 * 4)},
  };
  auto edit = [](const std::string& key, formats::GgufValue& v) {
    if (key == "qwen3next.block_count") v = U32Value(5);
    if (key == "qwen3next.attention.recurrent_layers") {
      formats::GgufValue f = v.array.back();
      f.scalar = false;
      v.array.push_back(f);
    }
    return true;
  };
  const std::string path = Rewrite("mtp", edit, {{"qwen3next.nextn_predict_layers", U32Value(1)}},
                                   [](const std::string&) { return false; }, add);
  auto mtp = Open(path);
  ASSERT_TRUE(mtp);
  EXPECT_EQ(mtp->config().n_layer, 4);
  EXPECT_EQ(mtp->config().n_nextn_layers, 1);
  EXPECT_EQ(std::memcmp(SequenceLogits(path).data(), SequenceLogits(kGguf).data(), 80 * 256 * sizeof(float)), 0);
  std::filesystem::remove(path);
  // nextn_predict_layers must leave a trunk.
  const std::string bad = Rewrite("mtpbad", edit, {{"qwen3next.nextn_predict_layers", U32Value(5)}},
                                  [](const std::string&) { return false; }, add);
  auto e = runtime::Engine::Open(bad, Options());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("qwen3next.nextn_predict_layers is 5, expected 0 to block_count - 1 (4)"),
            std::string::npos)
      << e.status().message();
  std::filesystem::remove(bad);
}

// --- bad input ----------------------------------------------------------------------

// A copy of the converted GGUF with `edit` applied to its bytes (header strings / tensor
// infos: name, n_dims u32, ne u64 each, type u32, offset u64).
struct EditedGguf {
  std::string path;
  explicit EditedGguf(const std::function<void(std::string&)>& edit) {
    path = (std::filesystem::temp_directory_path() /
            ("spool-q3ngguf-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".gguf"))
               .string();
    std::ifstream in(kGguf, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    edit(bytes);
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~EditedGguf() { std::filesystem::remove(path); }
  static inline int counter = 0;
};

// Replaces the first occurrence of `from` by `to` (same length): a key or tensor renamed.
void Rename(std::string& b, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  const size_t at = b.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  b.replace(at, from.size(), to);
}

std::string OpenError(const std::string& path) {
  auto e = runtime::Engine::Open(path, Options());
  return e.ok() ? std::string("(opened)") : e.status().message();
}

TEST(Qwen3NextGgufMalformed, MissingSsmTensorIsNamed) {
  EditedGguf g([](std::string& b) { Rename(b, "blk.1.ssm_a", "blk.1.ssm_X"); });
  const std::string err = OpenError(g.path);
  EXPECT_NE(err.find("missing tensor 'blk.1.ssm_a': layer 1 is a Gated DeltaNet layer "
                     "(qwen3next.attention.recurrent_layers)"),
            std::string::npos)
      << err;
}

TEST(Qwen3NextGgufMalformed, MissingInputProjectionIsNamed) {
  EditedGguf g([](std::string& b) { Rename(b, "blk.2.attn_qkv.weight", "blk.2.attn_qkX.weight"); });
  const std::string err = OpenError(g.path);
  EXPECT_NE(err.find("missing tensor 'blk.2.attn_qkv.weight' (or the legacy 'blk.2.ssm_in.weight')"), std::string::npos)
      << err;
}

TEST(Qwen3NextGgufMalformed, WrongConvShapeIsNamed) {
  // blk.0.ssm_conv1d.weight: ne {4, 128} (kernel 4 × conv channels 2·32 + 64) → {8, 64},
  // the same bytes.
  EditedGguf g([](std::string& b) {
    const std::string name = "blk.0.ssm_conv1d.weight";
    const size_t at = b.find(name);
    ASSERT_NE(at, std::string::npos);
    uint32_t n_dims = 0;
    std::memcpy(&n_dims, b.data() + at + name.size(), 4);
    ASSERT_EQ(n_dims, 2u);
    uint64_t ne[2];
    std::memcpy(ne, b.data() + at + name.size() + 4, 16);
    ASSERT_EQ(ne[0], 4u);
    ASSERT_EQ(ne[1], 128u);
    ne[0] = 8;
    ne[1] = 64;
    std::memcpy(b.data() + at + name.size() + 4, ne, 16);
  });
  const std::string err = OpenError(g.path);
  EXPECT_NE(err.find("tensor 'blk.0.ssm_conv1d.weight' has shape [64, 8], expected [128, 4] (conv channels 128, kernel 4)"),
            std::string::npos)
      << err;
}

TEST(Qwen3NextGgufMalformed, MissingSsmKeyIsNamed) {
  EditedGguf g([](std::string& b) { Rename(b, "qwen3next.ssm.state_size", "qwen3next.ssm.state_sizX"); });
  const std::string err = OpenError(g.path);
  EXPECT_NE(err.find("qwen3next.ssm.state_size"), std::string::npos) << err;
  EXPECT_NE(err.find("qwen3next needs it"), std::string::npos) << err;
}

TEST(Qwen3NextGgufMalformed, InnerSizeNotAMultipleOfValueHeadsIsNamed) {
  // qwen3next.ssm.inner_size (u32 64) → 63.
  EditedGguf g([](std::string& b) {
    const std::string key = "qwen3next.ssm.inner_size";
    const size_t at = b.find(key);
    ASSERT_NE(at, std::string::npos);
    uint32_t type = 0, v = 0;
    std::memcpy(&type, b.data() + at + key.size(), 4);
    ASSERT_EQ(type, 4u);  // u32
    std::memcpy(&v, b.data() + at + key.size() + 4, 4);
    ASSERT_EQ(v, 64u);
    v = 63;
    std::memcpy(b.data() + at + key.size() + 4, &v, 4);
  });
  const std::string err = OpenError(g.path);
  EXPECT_NE(err.find("qwen3next.ssm.inner_size 63 is not a positive multiple of qwen3next.ssm.time_step_rank 4"),
            std::string::npos)
      << err;
}

TEST(Qwen3NextGgufMalformed, UnknownTensorIsRefused) {
  // A tensor spool would not read (here the FFN norm renamed to an unknown name) is named.
  EditedGguf g([](std::string& b) { Rename(b, "blk.3.post_attention_norm.weight", "blk.3.post_attention_norX.weight"); });
  const std::string err = OpenError(g.path);
  EXPECT_NE(err.find("blk.3.post_attention_nor"), std::string::npos) << err;
}

}  // namespace
}  // namespace spool

