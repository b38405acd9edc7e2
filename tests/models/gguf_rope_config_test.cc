// GGUF rope metadata and the rope_freqs tensor (llama3 scaling as llama.cpp's converter
// writes it): what is read, and what is refused with a clear error (ctest label
// `malformed`). Files are built byte by byte (tests/formats/test_writers.h) with only
// the metadata and the rope_freqs tensor, which is all ReadModelConfig looks at.
// The audit these cases come from is in docs/parts/formats.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <optional>

#include "../formats/test_writers.h"
#include "formats/model_source.h"
#include "models/config.h"
#include "tensor/rope.h"

namespace spool {
namespace {

using formats::testing::GgufBuilder;
using formats::testing::TempDir;
using formats::testing::WriteFile;

constexpr uint32_t kF32 = 0, kF16 = 1;
constexpr int kHalf = 32;  // head_dim 64 → rope_freqs has 32 entries

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Llama-3.2-like factors (theta 500000, factor 32, low 1, high 4, original 8192),
// computed with llama.cpp's converter's formula (it runs it in torch f32 arithmetic; here
// the band arithmetic is in double), stored as f32.
std::vector<float> ConverterFactors(int64_t dim = 64, double theta = 500000.0, double factor = 32.0,
                                    double low = 1.0, double high = 4.0, double old_ctx = 8192.0) {
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    // torch: base ** (arange(0, dim, 2, f32) / dim) in f32, then 1 / that in f32.
    const float freq = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(i) / static_cast<float>(dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < old_ctx / high) out.push_back(1.0f);
    else if (wavelen > old_ctx / low) out.push_back(static_cast<float>(factor));
    else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

struct Spec {
  std::string arch = "llama";
  std::optional<std::vector<uint8_t>> freqs = F32Bytes(ConverterFactors());
  std::vector<uint64_t> freqs_ne = {kHalf};
  uint32_t freqs_type = kF32;
  std::function<void(GgufBuilder&)> extra;  // more metadata
};

Result<models::ModelConfig> Read(const Spec& s) {
  GgufBuilder g;
  const std::string p = s.arch + ".";
  g.KvStr("general.architecture", s.arch)
      .KvU32(p + "block_count", 2)
      .KvU32(p + "context_length", 131072)
      .KvU32(p + "embedding_length", 128)
      .KvU32(p + "feed_forward_length", 256)
      .KvU32(p + "attention.head_count", 2)
      .KvU32(p + "attention.head_count_kv", 1)
      .KvU32(p + "rope.dimension_count", 64)
      .KvU32(p + "vocab_size", 300)
      .KvF32(p + "rope.freq_base", 500000.0f)
      .KvF32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  if (s.extra) s.extra(g);
  if (s.freqs) g.TensorData("rope_freqs.weight", s.freqs_ne, s.freqs_type, *s.freqs);
  g.Tensor("token_embd.weight", {128, 300}, kF32, 128 * 300 * 4);
  TempDir dir;
  const std::string path = dir.File("m.gguf");
  WriteFile(path, g.Build());
  auto src = formats::OpenModelSource(path);
  if (!src.ok()) return src.status();
  return models::ReadModelConfig(*src);
}

void ExpectError(const Result<models::ModelConfig>& r, ErrorCode code, std::initializer_list<const char*> words) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  for (const char* w : words) EXPECT_NE(r.status().message().find(w), std::string::npos) << r.status().message();
}

TEST(GgufRope, ReadsRopeFreqs) {
  auto r = Read(Spec{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kNone);
  EXPECT_EQ(r->rope_scaling.freq_factors, ConverterFactors());
  EXPECT_EQ(r->rope_theta, 500000.0f);
}

// The factors give the HF llama3 formula's frequencies (RopeFrequencies, which matches
// transformers) to within two f32 roundings: the converter stores 1/((1-s)/f + s) where
// transformers computes (1-s)·x/f + s·x.
TEST(GgufRope, FactorsEqualHfLlama3Formula) {
  RopeScaling llama3;
  llama3.kind = RopeScaling::Kind::kLlama3;
  llama3.factor = 32.0f;
  llama3.low_freq_factor = 1.0f;
  llama3.high_freq_factor = 4.0f;
  llama3.original_max_position = 8192;
  RopeScaling gguf;
  gguf.freq_factors = ConverterFactors();
  const auto want = RopeFrequencies(64, 64, 500000.0f, llama3);
  const auto got = RopeFrequencies(64, 64, 500000.0f, gguf);
  ASSERT_EQ(want.size(), got.size());
  int smoothed = 0, divided = 0, kept = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 2.5e-7 * want[i]) << "frequency " << i;
    const float f = gguf.freq_factors[i];
    (f == 1.0f ? kept : f == 32.0f ? divided : smoothed)++;
  }
  // The fixture shape exercises every branch of the formula.
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

// ggml's rope divides its running θ by the factor; with all factors 1 it is unchanged.
TEST(GgufRope, GgmlRopeWithUnitFactorsIsUnchanged) {
  std::vector<float> a(2 * 64), b;
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.37f * static_cast<float>(i));
  b = a;
  const int64_t pos[1] = {1234};
  std::vector<float> ones(32, 1.0f);
  ApplyRopeGgml(RopeStyle::kInterleaved, a.data(), 1, 2, 64, 64, pos, 500000.0f, 1.0f, nullptr);
  ApplyRopeGgml(RopeStyle::kInterleaved, b.data(), 1, 2, 64, 64, pos, 500000.0f, 1.0f, ones.data());
  EXPECT_EQ(a, b);
  // And a factor of 2 on every frequency is the same as half the position (θ/2 exactly).
  std::vector<float> c(a.size()), d(a.size());
  for (size_t i = 0; i < c.size(); ++i) c[i] = d[i] = std::cos(0.11f * static_cast<float>(i));
  std::vector<float> twos(32, 2.0f);
  const int64_t half_pos[1] = {617};
  ApplyRopeGgml(RopeStyle::kInterleaved, c.data(), 1, 2, 64, 64, pos, 500000.0f, 1.0f, twos.data());
  ApplyRopeGgml(RopeStyle::kInterleaved, d.data(), 1, 2, 64, 64, half_pos, 500000.0f, 1.0f, nullptr);
  EXPECT_EQ(c, d);
}

TEST(GgufRope, WrongLengthRefused) {
  Spec s;
  s.freqs = F32Bytes(std::vector<float>(16, 1.0f));
  s.freqs_ne = {16};
  ExpectError(Read(s), ErrorCode::kInvalidFile, {"rope_freqs.weight", "[16]", "expected [32]"});
}

TEST(GgufRope, TwoDimensionalRefused) {
  Spec s;
  s.freqs = F32Bytes(std::vector<float>(64, 1.0f));
  s.freqs_ne = {32, 2};
  ExpectError(Read(s), ErrorCode::kInvalidFile, {"rope_freqs.weight", "expected [32]"});
}

TEST(GgufRope, WrongDtypeRefused) {
  Spec s;
  s.freqs = std::vector<uint8_t>(kHalf * 2, 0x3c);  // f16 values
  s.freqs_type = kF16;
  ExpectError(Read(s), ErrorCode::kInvalidFile, {"rope_freqs.weight", "f16", "expected f32"});
}

TEST(GgufRope, NonPositiveValuesRefused) {
  for (float bad : {0.0f, -1.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    auto v = ConverterFactors();
    v[7] = bad;
    Spec s;
    s.freqs = F32Bytes(v);
    ExpectError(Read(s), ErrorCode::kInvalidFile, {"rope_freqs.weight", "value 7", "positive"});
  }
}

TEST(GgufRope, RopeFreqsOnArchitectureWithoutThemRefused) {
  for (const char* arch : {"qwen2", "qwen3"}) {
    Spec s;
    s.arch = arch;
    ExpectError(Read(s), ErrorCode::kUnsupported, {"rope_freqs.weight", arch});
  }
}

TEST(GgufRope, LongropeAndOthersRefused) {
  for (const char* type : {"longrope", "dynamic"}) {
    Spec s;
    s.freqs.reset();
    s.extra = [&](GgufBuilder& g) {
      g.KvStr("llama.rope.scaling.type", type).KvF32("llama.rope.scaling.factor", 4.0f).KvU32(
          "llama.rope.scaling.original_context_length", 32768);
    };
    ExpectError(Read(s), ErrorCode::kUnsupported, {"rope.scaling.type", type});
  }
}

TEST(GgufRope, LinearScaling) {
  Spec s;
  s.freqs.reset();
  s.extra = [](GgufBuilder& g) { g.KvStr("llama.rope.scaling.type", "linear").KvF32("llama.rope.scaling.factor", 4.0f); };
  auto r = Read(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kLinear);
  EXPECT_EQ(r->rope_scaling.factor, 4.0f);
  EXPECT_TRUE(r->rope_scaling.freq_factors.empty());
}

// As llama.cpp: without a type key the factor is linear; type "none" ignores it; the old
// key name rope.scale_linear counts too.
TEST(GgufRope, FactorWithoutTypeIsLinearAndNoneIgnoresIt) {
  Spec s;
  s.freqs.reset();
  s.extra = [](GgufBuilder& g) { g.KvF32("llama.rope.scaling.factor", 2.0f); };
  auto r = Read(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kLinear);
  EXPECT_EQ(r->rope_scaling.factor, 2.0f);
  s.extra = [](GgufBuilder& g) { g.KvStr("llama.rope.scaling.type", "none").KvF32("llama.rope.scaling.factor", 2.0f); };
  r = Read(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kNone);
  s.extra = [](GgufBuilder& g) { g.KvF32("llama.rope.scale_linear", 3.0f); };
  r = Read(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kLinear);
  EXPECT_EQ(r->rope_scaling.factor, 3.0f);
  s.extra = [](GgufBuilder& g) { g.KvF32("llama.rope.scaling.factor", 0.0f); };  // 0: no scaling
  r = Read(s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.kind, RopeScaling::Kind::kNone);
}

TEST(GgufRope, BadFactorRefused) {
  Spec s;
  s.freqs.reset();
  s.extra = [](GgufBuilder& g) { g.KvStr("llama.rope.scaling.type", "linear").KvF32("llama.rope.scaling.factor", -2.0f); };
  ExpectError(Read(s), ErrorCode::kInvalidFile, {"rope.scaling.factor"});
}

TEST(GgufRope, AttnFactorOtherThanOneRefused) {
  Spec s;
  s.extra = [](GgufBuilder& g) { g.KvF32("llama.rope.scaling.attn_factor", 1.0f); };
  EXPECT_TRUE(Read(s).ok());
  s.extra = [](GgufBuilder& g) { g.KvF32("llama.rope.scaling.attn_factor", 0.5f); };
  ExpectError(Read(s), ErrorCode::kUnsupported, {"attn_factor"});
}

TEST(GgufRope, ValueLengthDifferentFromKeyLengthRefused) {
  Spec s;
  s.extra = [](GgufBuilder& g) { g.KvU32("llama.attention.key_length", 64).KvU32("llama.attention.value_length", 64); };
  EXPECT_TRUE(Read(s).ok());
  s.extra = [](GgufBuilder& g) { g.KvU32("llama.attention.value_length", 32); };
  ExpectError(Read(s), ErrorCode::kUnsupported, {"value_length"});
}

// Tensors spool would not read (llama.cpp's optional llama biases, Mixtral experts, a
// layer past block_count) make the file unsupported instead of silently ignored.
TEST(GgufRope, UnusedTensorsRefused) {
  for (const char* name : {"blk.0.attn_output.bias", "blk.1.ffn_gate_exps.weight", "blk.2.attn_q.weight", "rope_factors_long.weight"}) {
    Spec s;
    s.extra = [&](GgufBuilder& g) { g.Tensor(name, {128}, kF32, 128 * 4); };
    ExpectError(Read(s), ErrorCode::kUnsupported, {name, "not used"});
  }
}


// ---- yarn (llama.cpp's reading for llama/mistral/qwen2/qwen3; docs/parts/formats.md) ----

// `extra` adds keys after a valid yarn block: type yarn, factor 4, original context 32.
Result<models::ModelConfig> ReadYarn(const std::function<void(GgufBuilder&)>& extra, bool with_orig = true,
                                     float factor = 4.0f, const std::string& arch = "llama") {
  Spec s;
  s.arch = arch;
  s.freqs.reset();
  s.extra = [=](GgufBuilder& g) {
    const std::string p = arch + ".";
    g.KvStr(p + "rope.scaling.type", "yarn").KvF32(p + "rope.scaling.factor", factor);
    if (with_orig) g.KvU32(p + "rope.scaling.original_context_length", 32);
    if (extra) extra(g);
  };
  return Read(s);
}

TEST(GgufYarn, ReadsAsLlamaCppDoes) {
  for (const char* arch : {"llama", "mistral", "qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    auto r = ReadYarn(nullptr, true, 4.0f, arch);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const RopeScaling& y = r->rope_scaling;
    EXPECT_EQ(y.kind, RopeScaling::Kind::kYarn);
    EXPECT_EQ(y.factor, 4.0f);
    EXPECT_EQ(y.original_max_position, 32);
    EXPECT_EQ(y.beta_fast, 32.0f);
    EXPECT_EQ(y.beta_slow, 1.0f);
    EXPECT_TRUE(y.truncate);
    // llama.cpp's cparams attn factor is mscale/mscale (≈ 1); the effective one is 0.1·ln 4 + 1.
    EXPECT_NEAR(y.ggml_attn_factor, 1.0f, 1e-6f);
    EXPECT_NEAR(y.attention_factor, 0.1 * std::log(4.0) + 1, 1e-6);
  }
  // No original_context_length: llama.cpp takes the training context.
  auto r = ReadYarn(nullptr, /*with_orig=*/false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.original_max_position, 131072);
  // The yarn_* keys llama.cpp ignores for these architectures are accepted at the values
  // it uses instead (the converter writes beta_fast/beta_slow when config.json has them).
  r = ReadYarn([](GgufBuilder& g) {
    g.KvF32("llama.rope.scaling.yarn_beta_fast", 32.0f).KvF32("llama.rope.scaling.yarn_beta_slow", 1.0f)
        .KvF32("llama.rope.scaling.yarn_ext_factor", 1.0f).KvF32("llama.rope.scaling.yarn_log_multiplier", 0.0f);
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  // The general attn_factor multiplies in.
  r = ReadYarn([](GgufBuilder& g) { g.KvF32("llama.rope.scaling.attn_factor", 0.5f); });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NEAR(r->rope_scaling.ggml_attn_factor, 0.5f, 1e-6f);
  EXPECT_NEAR(r->rope_scaling.attention_factor, 0.5 * (0.1 * std::log(4.0) + 1), 1e-6);
}

TEST(GgufYarn, BadFactorRefused) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (float bad : {0.0f, -4.0f, nan, inf}) {
    SCOPED_TRACE(bad);
    ExpectError(ReadYarn(nullptr, true, bad), ErrorCode::kInvalidFile, {"rope.scaling.factor", "positive"});
  }
  Spec s;  // yarn without any factor
  s.freqs.reset();
  s.extra = [](GgufBuilder& g) { g.KvStr("llama.rope.scaling.type", "yarn"); };
  ExpectError(Read(s), ErrorCode::kInvalidFile, {"yarn", "rope.scaling.factor is missing"});
}

TEST(GgufYarn, BadOriginalContextRefused) {
  for (uint32_t bad : {0u, 131073u, 0xffffffffu}) {
    SCOPED_TRACE(bad);
    Spec s;
    s.freqs.reset();
    s.extra = [=](GgufBuilder& g) {
      g.KvStr("llama.rope.scaling.type", "yarn").KvF32("llama.rope.scaling.factor", 4.0f).KvU32(
          "llama.rope.scaling.original_context_length", bad);
    };
    ExpectError(Read(s), ErrorCode::kInvalidFile, {"original_context_length", "expected 1 to the context length 131072"});
  }
}

TEST(GgufYarn, BadBetasRefused) {
  // Inverted, equal, non-positive, NaN.
  for (auto [fast, slow] : std::initializer_list<std::pair<float, float>>{
           {1.0f, 32.0f}, {8.0f, 8.0f}, {32.0f, 0.0f}, {std::numeric_limits<float>::quiet_NaN(), 1.0f}}) {
    SCOPED_TRACE(fast);
    SCOPED_TRACE(slow);
    auto r = ReadYarn([=](GgufBuilder& g) {
      g.KvF32("llama.rope.scaling.yarn_beta_fast", fast).KvF32("llama.rope.scaling.yarn_beta_slow", slow);
    });
    ExpectError(r, ErrorCode::kInvalidFile, {"yarn_beta_"});
  }
}

// Keys llama.cpp reads only for other architectures, at values other than the ones it
// uses: llama.cpp and transformers would disagree, spool refuses and says why.
TEST(GgufYarn, KeysLlamaCppIgnoresRefusedUnlessDefault) {
  const std::pair<const char*, float> cases[] = {{"yarn_beta_fast", 16.0f},
                                                 {"yarn_beta_slow", 2.0f},
                                                 {"yarn_ext_factor", 0.5f},
                                                 {"yarn_attn_factor", 1.2f},
                                                 {"yarn_log_multiplier", 0.1f}};
  for (auto [key, value] : cases) {
    SCOPED_TRACE(key);
    auto r = ReadYarn([=](GgufBuilder& g) { g.KvF32(std::string("llama.rope.scaling.") + key, value); });
    ExpectError(r, ErrorCode::kUnsupported, {key, "llama.cpp ignores this key for 'llama'"});
  }
  auto r = ReadYarn([](GgufBuilder& g) {
    g.KvF32("llama.rope.scaling.yarn_ext_factor", std::numeric_limits<float>::quiet_NaN());
  });
  ExpectError(r, ErrorCode::kInvalidFile, {"yarn_ext_factor", "finite"});
}

TEST(GgufYarn, BadAttnFactorRefused) {
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN()}) {
    SCOPED_TRACE(bad);
    ExpectError(ReadYarn([=](GgufBuilder& g) { g.KvF32("llama.rope.scaling.attn_factor", bad); }),
                ErrorCode::kInvalidFile, {"attn_factor", "positive"});
  }
}

TEST(GgufYarn, WithRopeFreqsRefused) {
  Spec s;  // the default Spec carries a rope_freqs tensor
  s.extra = [](GgufBuilder& g) {
    g.KvStr("llama.rope.scaling.type", "yarn").KvF32("llama.rope.scaling.factor", 4.0f);
  };
  ExpectError(Read(s), ErrorCode::kUnsupported, {"rope_freqs.weight", "yarn"});
}

// ggml's yarn rope against its definition in double: the blend of interpolated and
// extrapolated angles over the correction range, and the magnitude factor.
TEST(GgufYarn, GgmlRopeFollowsTheRamp) {
  const int64_t dim = 32, pos[] = {45};
  std::vector<float> x(dim), y;
  for (int64_t i = 0; i < dim; ++i) x[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
  y = x;
  GgmlYarn yarn;
  yarn.n_ctx_orig = 32;
  ApplyRopeGgml(RopeStyle::kNeox, y.data(), 1, 1, dim, dim, pos, 10000.0f, 0.25f, nullptr, &yarn);
  // corr dims: floor(32·ln(32/(32·2π))/(2 ln 1e4)) → 0, ceil(32·ln(32/2π)/(2 ln 1e4)) = 3.
  const double mscale = 0.1 * std::log(4.0) + 1;
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double extrap = 45.0 * std::pow(10000.0, -2.0 * i / dim);
    const double mix = 1 - std::clamp(i / 3.0, 0.0, 1.0);
    const double angle = extrap * 0.25 * (1 - mix) + extrap * mix;
    const double a = x[i], b = x[i + dim / 2];
    EXPECT_NEAR(y[i], mscale * (a * std::cos(angle) - b * std::sin(angle)), 2e-5) << i;
    EXPECT_NEAR(y[i + dim / 2], mscale * (b * std::cos(angle) + a * std::sin(angle)), 2e-5) << i;
  }
}

// The default path: transformers' frequencies for the same parameters.
TEST(GgufYarn, FrequenciesFollowTheRamp) {
  RopeScaling s;
  s.kind = RopeScaling::Kind::kYarn;
  s.factor = 4.0f;
  s.original_max_position = 32;
  const auto inv = RopeFrequencies(32, 32, 10000.0f, s);
  for (int64_t i = 0; i < 16; ++i) {
    const double extrap = std::pow(10000.0, -2.0 * i / 32), extrapolation = 1 - std::clamp(i / 3.0, 0.0, 1.0);
    EXPECT_NEAR(inv[i], extrap / 4 * (1 - extrapolation) + extrap * extrapolation, 1e-6 * extrap) << i;
  }
  s.truncate = false;  // low = max(-3.19, 0) = 0, high = 2.83
  const auto untruncated = RopeFrequencies(32, 32, 10000.0f, s);
  const double high = 32 * std::log(32 / (2 * std::numbers::pi)) / (2 * std::log(10000.0));
  for (int64_t i = 0; i < 16; ++i) {
    const double extrap = std::pow(10000.0, -2.0 * i / 32), extrapolation = 1 - std::clamp(i / high, 0.0, 1.0);
    EXPECT_NEAR(untruncated[i], extrap / 4 * (1 - extrapolation) + extrap * extrapolation, 1e-6 * extrap) << i;
  }
}

}  // namespace
}  // namespace spool
