// Rotary position embeddings.
//
// Two pairings of the rotated dimensions (of the first rope_dim dims of each head;
// the rest pass through unchanged):
//   kInterleaved ("normal", GGML's default): pairs (2i, 2i+1), frequency i. GGUF llama
//                models use it (the converter permuted Q/K weights to match).
//   kNeox ("half", HF transformers' rotate_half): pairs (i, i + rope_dim/2), frequency i.
//                HF Llama/Qwen and GGUF qwen2/qwen3 use it.
// For a pair (a, b) at position p with angle θ = p * inv_freq[i]:
//   a' = a*cos θ - b*sin θ,   b' = b*cos θ + a*sin θ   (f32, no FMA, as HF computes).
#pragma once

#include <cstdint>
#include <vector>

namespace spool {

enum class RopeStyle : uint8_t { kInterleaved, kNeox };

// HF transformers' rope_scaling variants (modeling_rope_utils.py), and GGUF's
// per-dimension frequency factors.
struct RopeScaling {
  enum class Kind : uint8_t { kNone, kLinear, kLlama3, kYarn } kind = Kind::kNone;
  float factor = 1.0f;                 // linear, llama3 and yarn
  float low_freq_factor = 1.0f;        // llama3
  float high_freq_factor = 4.0f;       // llama3
  int64_t original_max_position = 8192;  // llama3, yarn: original_max_position_embeddings
  // yarn (models/config resolves every default, per format; docs/parts/formats.md):
  float beta_fast = 32.0f;             // correction range: rotations at the fast end
  float beta_slow = 1.0f;              // ... and at the slow end (beta_fast > beta_slow)
  bool truncate = true;                // floor/ceil the correction range (transformers' `truncate`)
  // Multiplies cos and sin (so q·k by its square). HF: transformers' attention_factor
  // (default 0.1·ln(factor) + 1); GGUF: llama.cpp's effective mscale, computed in f32
  // as llama.cpp does. Used by ApplyRope's callers; ApplyRopeGgml gets ggml_attn_factor.
  float attention_factor = 1.0f;
  // GGUF only: the `attn_factor` llama.cpp passes to ggml's rope (its cparams
  // yarn_attn_factor, ≈ 1); ggml multiplies it by 1 + 0.1·ln(1/freq_scale) itself.
  float ggml_attn_factor = 1.0f;
  // GGUF `rope_freqs.weight` (llama.cpp's converter writes llama3 scaling this way):
  // frequency i is divided by freq_factors[i] before `kind` applies. Empty: no factors;
  // else [rope_dim / 2], every value finite and > 0 (models/config checks).
  std::vector<float> freq_factors;
};

// Inverse frequencies inv_freq[i], i < rope_dim/2, computed as HF transformers does in
// f32: inv_freq[i] = 1 / theta^((2i)/rope_dim), then scaled:
//   linear: inv_freq / factor
//   llama3: wavelengths above original_max_position/low_freq_factor divided by factor,
//           below original_max_position/high_freq_factor kept, smoothly mixed between.
//   yarn:   transformers' _compute_yarn_parameters: frequencies below the correction
//           range [low, high] (dims where a wave turns more than beta_fast times in the
//           original context) kept, above it divided by factor, linearly blended
//           between; low/high floored/ceiled when truncate. (attention_factor is not
//           part of the frequencies: the caller passes it to ApplyRope.)
// freq_factors, when present, divide inv_freq first (the GGUF form of llama3 scaling:
// the factors are 1, factor, or 1/((1-smooth)/factor + smooth), so the result equals
// the llama3 formula to within an f32 rounding or two).
// rope_dim: the rotated dims (head_dim * partial_rotary_factor), even, <= head_dim.
// Returns [rope_dim / 2].
std::vector<float> RopeFrequencies(int64_t head_dim, int64_t rope_dim, float theta, const RopeScaling& scaling);

// Rotates x in place: token t is at absolute position pos[t].
// x: [n_tok, n_head, head_dim]   pos: [n_tok]   inv_freq: [rope_dim / 2]
// mscale multiplies cos and sin (yarn's attention_factor; 1 otherwise), as transformers
// multiplies its cos/sin caches.
void ApplyRope(RopeStyle style, float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t rope_dim,
               const int64_t* pos, const float* inv_freq, float mscale = 1.0f);

// RoPE as llama.cpp's CPU rope computes it (GGUF models), bit for bit: per token at
// position p the angles are θ_0 = p·freq_scale, then θ_{i+1} from θ_i·theta_scale with
// theta_scale = powf(freq_base, -2/rope_dim) (a running product, each step rounded to
// f32 — not p·inv_freq[i]); cos/sin by libm cosf/sinf; and the pair rotation with one
// fused multiply-add each (as GCC contracts ggml's expressions):
//   a' = fma(a, cos θ, -(b·sin θ)),   b' = fma(a, sin θ, b·cos θ).
// freq_scale: 1, or 1/factor for linear scaling. freq_factors: null, or [rope_dim / 2]
// (GGUF rope_freqs): angle i is freq_scale·(θ_i / freq_factors[i]), as ggml's rope
// applies its `freq_factors` source; θ_i's running product is not divided.
// Same shapes and pairings as ApplyRope.
// yarn (null: none, i.e. ggml's ext_factor 0 and attn_factor 1): ggml's rope_yarn. The
// correction dims are floor/ceil of rope_dim·logf(n_ctx_orig/(β·2π))/(2·logf(freq_base))
// for β = beta_fast/beta_slow, clamped to [0, rope_dim-1], in f32; for pair i the ramp is
// r = 1 - clamp((i - low)/max(0.001, high - low), 0, 1), mix = r·ext_factor, and
//   θ = fma(θ_interp, 1 - mix, θ_extrap·mix),  θ_interp = freq_scale·θ_extrap,
//   cos/sin multiplied by attn_factor·fma(0.1, logf(1/freq_scale), 1)
// (ggml-cpu is built with -march=native and FMA contraction; these are the contractions
// GCC is assumed to make. Not pinned by a test: on tests/fixtures/yarn, and by hand with
// factor 5 / original context 100, the uncontracted blend and the other contraction
// give llama.cpp's logits bit for bit too.)
struct GgmlYarn {
  int64_t n_ctx_orig = 0;   // original context (> 0)
  float ext_factor = 1.0f;  // llama.cpp: 1 for yarn
  float attn_factor = 1.0f; // RopeScaling::ggml_attn_factor
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
};
void ApplyRopeGgml(RopeStyle style, float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t rope_dim,
                   const int64_t* pos, float freq_base, float freq_scale, const float* freq_factors = nullptr,
                   const GgmlYarn* yarn = nullptr);

}  // namespace spool
