// Several sequences in one pass over the weights, and draft trees, on the GPU decoder
// (gpu::LlamaDecoder::Run with RunItems, KeepTreePath), on stories260K:
//   - 1, 2 and 3 sequences of different lengths decoded in one run, and a prefill chunk
//     beside decode rows, give each sequence's logits bit for bit as running it alone;
//     streamed (every layer through the VRAM ring) = resident, and a streamed run of
//     three sequences copies each streamed layer once (one pass);
//   - every node of a draft tree has the logits of decoding its path one token at a time
//     (bit for bit; trees from slot 0's page and from a later page, one step or level by
//     level, beside another sequence), and KeepTreePath leaves the cache of a chain
//     decode of the kept path (later logits and every KV row bit-identical);
//   - errors (label malformed): trees without the decoder's tree scratch, with a KV
//     window, a bad tree or path, a sequence twice in one run.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "cpu_reference.h"
#include "gpu/llama_decoder.h"
#include "gpu_test_util.h"

namespace spool::gpu {
namespace {

const std::string kStories = std::string(SPOOL_SHARED_DATA) + "/models/stories260K.gguf";

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int32_t Argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

LlamaDecoderOptions Options(DType kv) {
  LlamaDecoderOptions o;
  o.ctx = 96;
  o.kv_dtype = kv;
  o.page_tokens = 8;  // several pages, trees from a later page
  o.max_rows = 16;  // a 9-row tree step; 20 prompt rows split over two passes
  o.own_kv = false;
  o.n_kv = 4;
  o.trees = true;
  return o;
}

const std::vector<std::vector<int32_t>> kPrompts = {
    {1, 403, 407, 261, 378, 425, 386, 270, 302, 264, 318},  // 11
    {1, 261, 500, 11, 300, 42},                             // 6
    {1, 72, 99},                                            // 3
};

class GpuBatch : public ::testing::TestWithParam<DType> {};

TEST_P(GpuBatch, SequencesInOneRunEqualEachAlone) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 96, GetParam(), 8, /*threads=*/1);
  const auto& w = m.engine->weights();
  const int64_t V = w.config().n_vocab;
  auto dec = LlamaDecoder::Open(*dev, w, *m.provider, Options(GetParam()));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  LlamaDecoder& d = **dec;
  const int kSteps = 6;
  // Alone: each prompt, then kSteps greedy tokens, one sequence per run.
  std::vector<std::vector<std::vector<float>>> ref(kPrompts.size());
  std::vector<std::vector<int32_t>> toks(kPrompts.size());
  for (size_t s = 0; s < kPrompts.size(); ++s) {
    auto kv = d.NewKv();
    ASSERT_TRUE(kv.ok());
    std::vector<float> l(static_cast<size_t>(V));
    ASSERT_TRUE(d.Run(**kv, kPrompts[s], l.data(), false).ok());
    ref[s].push_back(l);
    for (int i = 0; i < kSteps; ++i) {
      const int32_t t = Argmax(l.data(), V);
      toks[s].push_back(t);
      ASSERT_TRUE(d.Run(**kv, std::span<const int32_t>(&t, 1), l.data(), false).ok());
      ref[s].push_back(l);
    }
  }
  // Together: the three prompts in one run (20 rows: passes of 16 split the second
  // prompt), then decode steps of 3, 2, 1, 3, 1 and 2 sequences.
  std::vector<std::unique_ptr<DeviceKv>> kvs;
  for (size_t s = 0; s < kPrompts.size(); ++s) kvs.push_back(std::move(d.NewKv().value()));
  std::vector<std::vector<float>> l(kPrompts.size(), std::vector<float>(static_cast<size_t>(V)));
  {
    std::vector<RunItem> items(kPrompts.size());
    for (size_t s = 0; s < kPrompts.size(); ++s) items[s] = RunItem{kvs[s].get(), kPrompts[s], l[s].data(), false};
    { Status rs = d.Run(items); ASSERT_TRUE(rs.ok()) << rs.message(); }
    for (size_t s = 0; s < kPrompts.size(); ++s) EXPECT_TRUE(SameBits(l[s], ref[s][0])) << "prompt of sequence " << s;
  }
  std::vector<int> done(kPrompts.size(), 0);
  const std::vector<std::vector<size_t>> schedule = {{0, 1, 2}, {0, 1}, {2}, {2, 1, 0}, {1}, {0, 2}, {0, 1, 2}, {1, 2}, {0}};
  for (const auto& group : schedule) {
    std::vector<RunItem> items;
    for (size_t s : group)
      if (done[s] < kSteps)
        items.push_back(RunItem{kvs[s].get(), std::span<const int32_t>(&toks[s][static_cast<size_t>(done[s])], 1),
                                l[s].data(), false});
    if (items.empty()) continue;
    { Status rs = d.Run(items); ASSERT_TRUE(rs.ok()) << rs.message(); }
    for (size_t s : group) {
      if (done[s] >= kSteps) continue;
      ++done[s];
      EXPECT_TRUE(SameBits(l[s], ref[s][static_cast<size_t>(done[s])]))
          << "sequence " << s << " step " << done[s] << " in a run of " << items.size();
    }
  }
  for (size_t s = 0; s < kPrompts.size(); ++s) EXPECT_EQ(done[s], kSteps);
  // A prefill chunk (every row's logits) beside two decode rows, as the scheduler mixes
  // them: the chunk's rows equal the prompt run alone with all_logits.
  const std::vector<int32_t> chunk = {1, 300, 301, 302, 303};
  std::vector<float> alone(chunk.size() * static_cast<size_t>(V)), mixed(alone.size());
  {
    auto kv = d.NewKv();
    ASSERT_TRUE(d.Run(**kv, chunk, alone.data(), true).ok());
  }
  auto fresh = d.NewKv();
  ASSERT_TRUE(fresh.ok());
  auto a = d.NewKv(), b = d.NewKv();
  ASSERT_TRUE(d.Run(**a, kPrompts[0], l[0].data(), false).ok());
  ASSERT_TRUE(d.Run(**b, kPrompts[1], l[1].data(), false).ok());
  const int32_t ta = toks[0][0], tb = toks[1][0];
  std::vector<RunItem> items = {RunItem{a->get(), std::span<const int32_t>(&ta, 1), l[0].data(), false},
                                RunItem{fresh->get(), chunk, mixed.data(), true},
                                RunItem{b->get(), std::span<const int32_t>(&tb, 1), l[1].data(), false}};
  { Status rs = d.Run(items); ASSERT_TRUE(rs.ok()) << rs.message(); }
  EXPECT_TRUE(SameBits(mixed, alone)) << "a prefill chunk beside decode rows";
  EXPECT_TRUE(SameBits(l[0], ref[0][1]));
  EXPECT_TRUE(SameBits(l[1], ref[1][1]));
}

// Streamed through the VRAM ring = resident, bit for bit, and three sequences in one run
// cross each streamed layer once: one pass over the weights for all of them.
TEST_P(GpuBatch, StreamedRunOfThreeSequencesIsOnePass) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 96, GetParam(), 8, /*threads=*/1);
  const auto& w = m.engine->weights();
  const int64_t V = w.config().n_vocab;
  LlamaDecoderOptions o = Options(GetParam());
  auto full = LlamaDecoder::Plan(*dev, w, o);
  ASSERT_TRUE(full.ok());
  LlamaDecoderOptions so = o;
  so.vram_budget = full->fixed_bytes + 2 * full->largest_layer;  // every layer streamed
  auto run = [&](const LlamaDecoderOptions& opts, std::vector<std::vector<float>>* out, DeviceStats* step) {
    auto dec = LlamaDecoder::Open(*dev, w, *m.provider, opts);
    ASSERT_TRUE(dec.ok()) << dec.status().message();
    std::vector<std::unique_ptr<DeviceKv>> kvs;
    out->assign(kPrompts.size(), std::vector<float>(static_cast<size_t>(V)));
    for (size_t s = 0; s < kPrompts.size(); ++s) {
      kvs.push_back(std::move((*dec)->NewKv().value()));
      ASSERT_TRUE((*dec)->Run(*kvs[s], kPrompts[s], (*out)[s].data(), false).ok());
    }
    const int32_t t[3] = {Argmax((*out)[0].data(), V), Argmax((*out)[1].data(), V), Argmax((*out)[2].data(), V)};
    std::vector<RunItem> items;
    for (size_t s = 0; s < kPrompts.size(); ++s)
      items.push_back(RunItem{kvs[s].get(), std::span<const int32_t>(&t[s], 1), (*out)[s].data(), false});
    const DeviceStats before = dev->stats();
    ASSERT_TRUE((*dec)->Run(items).ok());
    const DeviceStats& after = dev->stats();
    step->copy_bytes = after.copy_bytes - before.copy_bytes;
    step->copies = after.copies - before.copies;
    EXPECT_EQ((*dec)->plan().n_streamed, opts.vram_budget ? w.config().n_layer : 0) << (*dec)->plan().ToString();
  };
  std::vector<std::vector<float>> resident, streamed;
  DeviceStats rs, ss;
  run(o, &resident, &rs);
  run(so, &streamed, &ss);
  for (size_t s = 0; s < kPrompts.size(); ++s) EXPECT_TRUE(SameBits(streamed[s], resident[s])) << "sequence " << s;
  EXPECT_EQ(rs.copy_bytes, 0u);
  EXPECT_EQ(ss.copy_bytes, full->layer_bytes);  // each layer once, not once per sequence
  EXPECT_EQ(ss.copies, static_cast<uint64_t>(w.config().n_layer));
}

INSTANTIATE_TEST_SUITE_P(Kv, GpuBatch, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& i) { return std::string(i.param == DType::kF32 ? "f32" : "bf16"); });

// ---- Draft trees -----------------------------------------------------------------------

// A tree of 9 rows: row 0 the root (the sampled token), then branches.
//   0 ─ 1 ─ 3 ─ 6
//   │   └ 4
//   ├ 2 ─ 5 ─ 7
//   └ 8
const std::vector<int32_t> kParent = {-1, 0, 0, 1, 1, 2, 3, 5, 0};
const std::vector<int32_t> kTokens = {300, 301, 302, 303, 304, 305, 306, 307, 308};

std::vector<int32_t> PathTo(int32_t node) {
  std::vector<int32_t> p;
  for (int32_t a = node; a >= 0; a = kParent[static_cast<size_t>(a)]) p.insert(p.begin(), a);
  return p;
}

// The logits of decoding `prompt`, then the path's tokens and `after` one at a time
// (the last one's).
std::vector<float> ChainLogits(LlamaDecoder& d, const std::vector<int32_t>& prompt, const std::vector<int32_t>& path,
                               int64_t V, const std::vector<int32_t>& after = {}) {
  auto kv = d.NewKv();
  SPOOL_CHECK(kv.ok());
  std::vector<float> l(static_cast<size_t>(V));
  SPOOL_CHECK(d.Run(**kv, prompt, l.data(), false).ok());
  std::vector<int32_t> feed;
  for (const int32_t node : path) feed.push_back(kTokens[static_cast<size_t>(node)]);
  feed.insert(feed.end(), after.begin(), after.end());
  for (const int32_t t : feed) SPOOL_CHECK(d.Run(**kv, std::span<const int32_t>(&t, 1), l.data(), false).ok());
  return l;
}

class GpuTree : public ::testing::TestWithParam<DType> {};

TEST_P(GpuTree, NodesEqualTheirPathsDecodedOneByOne) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 96, GetParam(), 8, /*threads=*/1);
  const auto& w = m.engine->weights();
  const int64_t V = w.config().n_vocab;
  auto dec = LlamaDecoder::Open(*dev, w, *m.provider, Options(GetParam()));
  ASSERT_TRUE(dec.ok()) << dec.status().message();
  LlamaDecoder& d = **dec;
  const int64_t n = static_cast<int64_t>(kParent.size());
  // Prompts of 11 (the tree from slot 11, in the second page: the first page folds
  // once for all rows) and 3 tokens (from slot 3, in the first page).
  for (const auto& prompt : {kPrompts[0], kPrompts[2]}) {
    SCOPED_TRACE(prompt.size());
    std::vector<std::vector<float>> chain(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) chain[static_cast<size_t>(i)] = ChainLogits(d, prompt, PathTo(i), V);
    // One tree step (all rows), beside another sequence's decode row.
    auto kv = d.NewKv();
    auto other = d.NewKv();
    std::vector<float> l(static_cast<size_t>(V)), ol(static_cast<size_t>(V));
    ASSERT_TRUE(d.Run(**kv, prompt, l.data(), false).ok());
    ASSERT_TRUE(d.Run(**other, kPrompts[1], ol.data(), false).ok());
    const int64_t base = (*kv)->n_tokens;
    std::vector<float> rows(static_cast<size_t>(n * V));
    const int32_t ot = 77;
    RunItem tree{kv->get(), kTokens, rows.data(), true, base, kParent};
    std::vector<RunItem> items = {RunItem{other->get(), std::span<const int32_t>(&ot, 1), ol.data(), false}, tree};
    { Status rs = d.Run(items); ASSERT_TRUE(rs.ok()) << rs.message(); }
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<float> row(rows.begin() + i * V, rows.begin() + (i + 1) * V);
      EXPECT_TRUE(SameBits(row, chain[static_cast<size_t>(i)])) << "tree node " << i;
    }
    EXPECT_TRUE(SameBits(ol, ChainLogits(d, kPrompts[1], {}, V, {ot}))) << "the sequence beside the tree";
    // Level by level (as a draft model drafts): rows 0-2, then 3-8 with the tree's base
    // earlier than the cache's end.
    auto lv = d.NewKv();
    ASSERT_TRUE(d.Run(**lv, prompt, l.data(), false).ok());
    std::vector<float> r1(3 * static_cast<size_t>(V)), r2(6 * static_cast<size_t>(V));
    RunItem first{lv->get(), std::span<const int32_t>(kTokens.data(), 3), r1.data(), true, base,
                  std::span<const int32_t>(kParent.data(), 3)};
    ASSERT_TRUE(d.Run(std::span<const RunItem>(&first, 1)).ok());
    RunItem second{lv->get(), std::span<const int32_t>(kTokens.data() + 3, 6), r2.data(), true, base, kParent};
    ASSERT_TRUE(d.Run(std::span<const RunItem>(&second, 1)).ok());
    for (int64_t i = 0; i < n; ++i) {
      const float* src = i < 3 ? r1.data() + i * V : r2.data() + (i - 3) * V;
      const std::vector<float> row(src, src + V);
      EXPECT_TRUE(SameBits(row, chain[static_cast<size_t>(i)])) << "level-by-level node " << i;
    }
    // Keep the path 0 → 2 → 5 → 7, then decode 4 more tokens: the logits and every KV
    // row equal a chain decode of the path.
    const std::vector<int32_t> keep = {0, 2, 5, 7};
    ASSERT_TRUE(d.KeepTreePath(**kv, base, keep).ok());
    EXPECT_EQ((*kv)->n_tokens, base + 4);
    auto ckv = d.NewKv();
    ASSERT_TRUE(d.Run(**ckv, prompt, l.data(), false).ok());
    for (const int32_t node : keep) {
      const int32_t t = kTokens[static_cast<size_t>(node)];
      ASSERT_TRUE(d.Run(**ckv, std::span<const int32_t>(&t, 1), l.data(), false).ok());
    }
    std::vector<float> kl(static_cast<size_t>(V));
    for (int32_t t : {320, 321, 322, 323}) {
      ASSERT_TRUE(d.Run(**kv, std::span<const int32_t>(&t, 1), kl.data(), false).ok());
      ASSERT_TRUE(d.Run(**ckv, std::span<const int32_t>(&t, 1), l.data(), false).ok());
      EXPECT_TRUE(SameBits(kl, l)) << "after the kept path, token " << t;
    }
    const int64_t rows_n = (*kv)->n_tokens;
    ASSERT_EQ(rows_n, (*ckv)->n_tokens);
    const uint64_t row_bytes = static_cast<uint64_t>(w.config().kv_dim()) * (GetParam() == DType::kF32 ? 4 : 2);
    std::vector<uint8_t> k1(rows_n * row_bytes), v1(k1.size()), k2(k1.size()), v2(k1.size());
    for (int64_t layer = 0; layer < w.config().n_layer; ++layer) {
      ASSERT_TRUE(d.ReadKv(**kv, layer, rows_n, k1.data(), v1.data()).ok());
      ASSERT_TRUE(d.ReadKv(**ckv, layer, rows_n, k2.data(), v2.data()).ok());
      EXPECT_EQ(k1, k2) << "K rows of layer " << layer;
      EXPECT_EQ(v1, v2) << "V rows of layer " << layer;
    }
    // A path that is the first rows in place (nothing moves), and the empty tail.
    auto kv2 = d.NewKv();
    ASSERT_TRUE(d.Run(**kv2, prompt, l.data(), false).ok());
    RunItem again{kv2->get(), kTokens, rows.data(), true, base, kParent};
    ASSERT_TRUE(d.Run(std::span<const RunItem>(&again, 1)).ok());
    const std::vector<int32_t> in_place = {0, 1, 3, 6};
    ASSERT_TRUE(d.KeepTreePath(**kv2, base, in_place).ok());
    const int32_t t = 330;
    ASSERT_TRUE(d.Run(**kv2, std::span<const int32_t>(&t, 1), kl.data(), false).ok());
    EXPECT_TRUE(SameBits(kl, ChainLogits(d, prompt, in_place, V, {t}))) << "after a path kept in place";
  }
}

INSTANTIATE_TEST_SUITE_P(Kv, GpuTree, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& i) { return std::string(i.param == DType::kF32 ? "f32" : "bf16"); });

TEST(GpuTreeErrors, BadTreesAndUnsupportedSetupsAreClearErrors) {
  GPU_TEST_DEVICE(dev);
  Opened m = OpenCpu(kStories, 96, DType::kF32, 8, /*threads=*/1);
  const auto& w = m.engine->weights();
  const int64_t V = w.config().n_vocab;
  std::vector<float> rows(kParent.size() * static_cast<size_t>(V));
  auto expect = [&](LlamaDecoder& d, const std::vector<int32_t>& parent, ErrorCode code, const std::string& says) {
    auto kv = d.NewKv();
    ASSERT_TRUE(kv.ok());
    ASSERT_TRUE(d.Run(**kv, kPrompts[0], rows.data(), false).ok());
    const int64_t n0 = (*kv)->n_tokens;
    RunItem it{kv->get(), kTokens, rows.data(), true, n0, parent};
    Status s = d.Run(std::span<const RunItem>(&it, 1));
    EXPECT_EQ(s.code(), code) << s.message();
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
    EXPECT_EQ((*kv)->n_tokens, n0) << "a refused step leaves the cache";
  };
  {
    LlamaDecoderOptions o = Options(DType::kF32);
    o.trees = false;
    auto d = LlamaDecoder::Open(*dev, w, *m.provider, o);
    ASSERT_TRUE(d.ok());
    expect(**d, kParent, ErrorCode::kUnsupported, "opened for trees");
  }
  {
    LlamaDecoderOptions o = Options(DType::kF32);
    o.kv_hot_tokens = 24;  // a window of 3 of 12 pages
    auto d = LlamaDecoder::Open(*dev, w, *m.provider, o);
    ASSERT_TRUE(d.ok()) << d.status().message();
    ASSERT_TRUE((*d)->plan().kv_windowed());
    expect(**d, kParent, ErrorCode::kUnsupported, "whole KV cache in VRAM");
  }
  auto d = LlamaDecoder::Open(*dev, w, *m.provider, Options(DType::kF32));
  ASSERT_TRUE(d.ok());
  std::vector<int32_t> bad = kParent;
  bad[3] = 5;  // a parent after its child
  expect(**d, bad, ErrorCode::kInvalidArgument, "a parent must be -1 or an earlier node");
  expect(**d, std::vector<int32_t>(kParent.begin(), kParent.end() - 1), ErrorCode::kInvalidArgument,
         "does not end at the step's last token");
  // KeepTreePath: a path not increasing, beyond the step, not starting in place.
  auto kv = (*d)->NewKv();
  ASSERT_TRUE((*d)->Run(**kv, kPrompts[0], rows.data(), false).ok());
  const int64_t base = (*kv)->n_tokens;
  RunItem it{kv->get(), kTokens, rows.data(), true, base, kParent};
  ASSERT_TRUE((*d)->Run(std::span<const RunItem>(&it, 1)).ok());
  for (const std::vector<int32_t>& path : {std::vector<int32_t>{0, 2, 2}, std::vector<int32_t>{0, 9}}) {
    Status s = (*d)->KeepTreePath(**kv, base, path);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
    EXPECT_NE(s.message().find("kept tree path"), std::string::npos) << s.message();
  }
  // The same sequence twice in one run.
  const int32_t t = 5;
  std::vector<RunItem> twice = {RunItem{kv->get(), std::span<const int32_t>(&t, 1), rows.data(), false},
                                RunItem{kv->get(), std::span<const int32_t>(&t, 1), rows.data(), false}};
  Status s = (*d)->Run(twice);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("twice"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace spool::gpu
