// GGUF rope_freqs (llama3 rope scaling as llama.cpp's converter stores it) on real
// converter output: tests/fixtures/rope_freqs, written by tools/gen_rope_freqs_fixture.py
// — a tiny random Llama-3.2-shaped model (llama3 scaling factor 32, theta 500000, tied
// embeddings, GQA, head_dim 64) saved as an HF folder and converted by llama.cpp's
// convert_hf_to_gguf.py to f32 and to Q8_0 GGUFs, with llama-cpp-python 0.3.36's outputs
// on both GGUFs and transformers' outputs on the HF folder recorded.
//
// Checked (KV cache f32 everywhere, as the references):
//  - `--numerics ggml`, Q8_0 GGUF: prompt ids, 32 greedy ids and every prompt logit
//    identical to llama.cpp's (recorded as exact f32 values; no tolerance);
//  - `--numerics ggml` and default numerics, f32 GGUF: ids identical to llama.cpp's,
//    logits within 2e-4 · (1 + |logit|) (llama.cpp's f32 GEMM summation order is not
//    replicated; measured ≤ 4.5e-5);
//  - default numerics on the f32 GGUF and the HF folder against transformers, same
//    bound, same greedy ids: the rope_freqs factors give the HF llama3 formula's result.
// Negative control (done by hand): with the factors ignored in the ggml rope, the Q8_0
// logits differ from llama.cpp's by up to 0.58 and the greedy ids diverge at once.
#include <gtest/gtest.h>

#include "converted_reference.h"
#include "models/weights.h"

namespace spool {
namespace {

using namespace testing_converted;

const ConvertedFixture kFx{std::string(SPOOL_TEST_FIXTURES) + "/rope_freqs", /*ctx=*/256};
const std::string kF32 = "llama32-tiny-f32.gguf";
const std::string kQ8 = "llama32-tiny-q8_0.gguf";

TEST(RopeFreqs, FixtureCarriesTheTensor) {
  auto src = formats::OpenModelSource(kFx.dir + "/" + kF32);
  ASSERT_TRUE(src.ok()) << src.status().message();
  const formats::TensorInfo* t = src->FindTensor("rope_freqs.weight");
  ASSERT_NE(t, nullptr) << "the converter wrote no rope_freqs tensor";
  auto w = models::ModelWeights::Load(std::move(*src));
  ASSERT_TRUE(w.ok()) << w.status().message();
  const auto& c = (*w)->config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);  // no scaling key: llama3 is in the tensor
  ASSERT_EQ(c.rope_scaling.freq_factors.size(), static_cast<size_t>(c.rope_dim / 2));
  EXPECT_EQ(c.rope_scaling.freq_factors.front(), 1.0f);
  EXPECT_EQ(c.rope_scaling.freq_factors.back(), 32.0f);
}

// Q8_0 weights: llama.cpp's arithmetic reproduced bit for bit, rope_freqs included.
TEST(RopeFreqs, GgmlNumericsEqualLlamaCppQ8) { CheckAgainstLlamaCpp(kFx, kQ8, /*ggml=*/true, /*exact=*/true); }
// f32 weights: llama.cpp's f32 GEMM order is not replicated; same ids, logits close.
TEST(RopeFreqs, GgmlNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kFx, kF32, /*ggml=*/true, /*exact=*/false); }
TEST(RopeFreqs, DefaultNumericsMatchLlamaCppF32) { CheckAgainstLlamaCpp(kFx, kF32, /*ggml=*/false, /*exact=*/false); }

// The same model through both formats: the GGUF's rope_freqs and permuted Q/K give
// transformers' llama3 result on the HF folder, and so does the HF folder.
TEST(RopeFreqs, GgufAndHfFolderMatchTransformers) { CheckAgainstTransformers(kFx, {kFx.dir + "/" + kF32, kFx.hf()}); }

}  // namespace
}  // namespace spool
