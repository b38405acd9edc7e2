// Depthwise causal 1-D convolution with SiLU and a rolling state (Gated DeltaNet's
// short conv over the q, k, v channels; transformers' causal_conv1d_fn /
// causal_conv1d_update with activation "silu").
//
//   y[t, c] = silu( Σ_{j<K} w[c, j] · x̃[t + j, c] )   where x̃ = state (K − 1 rows) ++ x
//
// The state holds the K − 1 inputs before x (oldest first; zeros at a sequence's
// start) and is advanced to the last K − 1 rows of x̃.
#pragma once

#include <cstdint>

namespace spool {

// x: [n, C], w: [C, K], state: [K − 1, C] in/out, y: [n, C] (may not alias x).
void CausalConv1dSilu(const float* x, int64_t n, int64_t C, const float* w, int64_t K, float* state, float* y);

}  // namespace spool
