#include "tensor/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "base/check.h"

namespace spool {

std::vector<float> RopeFrequencies(int64_t head_dim, int64_t rope_dim, float theta, const RopeScaling& s) {
  SPOOL_CHECK(rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim);
  std::vector<float> inv(static_cast<size_t>(rope_dim / 2));
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rope_dim);
    inv[i] = 1.0f / std::pow(theta, exponent);
  }
  if (!s.freq_factors.empty()) {
    SPOOL_CHECK(static_cast<int64_t>(s.freq_factors.size()) == rope_dim / 2);
    for (int64_t i = 0; i < rope_dim / 2; ++i) inv[i] /= s.freq_factors[i];
  }
  switch (s.kind) {
    case RopeScaling::Kind::kNone: break;
    case RopeScaling::Kind::kLinear:
      for (float& f : inv) f /= s.factor;
      break;
    case RopeScaling::Kind::kLlama3: {
      // Python scalars are doubles; torch casts them to f32 when combined with the f32 tensor.
      const double old_ctx = static_cast<double>(s.original_max_position);
      const float low_freq_wavelen = static_cast<float>(old_ctx / s.low_freq_factor);
      const float high_freq_wavelen = static_cast<float>(old_ctx / s.high_freq_factor);
      const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
      const float span = static_cast<float>(static_cast<double>(s.high_freq_factor) - s.low_freq_factor);
      for (float& f : inv) {
        const float wavelen = two_pi / f;
        float scaled = wavelen > low_freq_wavelen ? f / s.factor : f;
        const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
        if (medium) {
          const float smooth = (static_cast<float>(old_ctx) / wavelen - s.low_freq_factor) / span;
          scaled = (1.0f - smooth) * scaled / s.factor + smooth * scaled;
        }
        f = scaled;
      }
      break;
    }
    case RopeScaling::Kind::kYarn: {
      // transformers: python doubles for the correction range, f32 tensors for the rest.
      const double dim = static_cast<double>(rope_dim), base = theta;
      auto correction_dim = [&](double rotations) {
        return dim * std::log(static_cast<double>(s.original_max_position) / (rotations * 2 * std::numbers::pi)) /
               (2 * std::log(base));
      };
      double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1);
      if (low == high) high += 0.001;  // as transformers: no division by zero
      const float lo = static_cast<float>(low), span = static_cast<float>(high - low);
      for (int64_t i = 0; i < rope_dim / 2; ++i) {
        const float pos_freq = std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(rope_dim));
        const float extrapolated = inv[i];
        const float interpolated = 1.0f / (s.factor * pos_freq);  // the product rounded to f32 first, as torch
        const float ramp = std::clamp((static_cast<float>(i) - lo) / span, 0.0f, 1.0f);
        const float extrapolation = 1.0f - ramp;
        const float a = interpolated * (1.0f - extrapolation), b = extrapolated * extrapolation;
        inv[i] = a + b;
      }
      break;
    }
  }
  return inv;
}

void ApplyRope(RopeStyle style, float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t rope_dim,
               const int64_t* pos, const float* inv_freq, float mscale) {
  SPOOL_CHECK(rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim);
  const int64_t half = rope_dim / 2;
  std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos[t]) * inv_freq[i];
      cos_t[i] = std::cos(angle) * mscale;
      sin_t[i] = std::sin(angle) * mscale;
    }
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = x + (t * n_head + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t ia = style == RopeStyle::kNeox ? i : 2 * i;
        const int64_t ib = style == RopeStyle::kNeox ? i + half : 2 * i + 1;
        const float a = v[ia], b = v[ib];
        v[ia] = a * cos_t[i] - b * sin_t[i];
        v[ib] = b * cos_t[i] + a * sin_t[i];
      }
    }
  }
}

void ApplyRopeGgml(RopeStyle style, float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t rope_dim,
                   const int64_t* pos, float freq_base, float freq_scale, const float* freq_factors,
                   const GgmlYarn* yarn) {
  SPOOL_CHECK(rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim);
  const int64_t half = rope_dim / 2;
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(rope_dim));
  const float ext_factor = yarn ? yarn->ext_factor : 0.0f;
  float mscale = yarn ? yarn->attn_factor : 1.0f;
  float corr_low = 0, corr_high = 0;
  if (ext_factor != 0.0f) {
    SPOOL_CHECK(yarn->n_ctx_orig > 0);
    const float pi = static_cast<float>(std::numbers::pi);
    auto corr_dim = [&](float rotations) {
      return static_cast<float>(rope_dim) *
             std::log(static_cast<float>(yarn->n_ctx_orig) / (rotations * 2.0f * pi)) / (2.0f * std::log(freq_base));
    };
    corr_low = std::max(0.0f, std::floor(corr_dim(yarn->beta_fast)));
    corr_high = std::min(static_cast<float>(rope_dim - 1), std::ceil(corr_dim(yarn->beta_slow)));
    mscale *= std::fma(0.1f, std::log(1.0f / freq_scale), 1.0f);
  }
  std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  for (int64_t t = 0; t < n_tok; ++t) {
    float theta = static_cast<float>(pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float extrapolated = freq_factors ? theta / freq_factors[i] : theta;
      float angle = freq_scale * extrapolated;
      if (ext_factor != 0.0f) {
        const float y = (static_cast<float>(i) - corr_low) / std::max(0.001f, corr_high - corr_low);
        const float mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * ext_factor;
        angle = std::fma(angle, 1.0f - mix, extrapolated * mix);
      }
      cos_t[i] = std::cos(angle) * mscale;
      sin_t[i] = std::sin(angle) * mscale;
      theta *= theta_scale;
    }
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = x + (t * n_head + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t ia = style == RopeStyle::kNeox ? i : 2 * i;
        const int64_t ib = style == RopeStyle::kNeox ? i + half : 2 * i + 1;
        const float a = v[ia], b = v[ib];
        v[ia] = std::fma(a, cos_t[i], -(b * sin_t[i]));
        v[ib] = std::fma(a, sin_t[i], b * cos_t[i]);
      }
    }
  }
}

}  // namespace spool
