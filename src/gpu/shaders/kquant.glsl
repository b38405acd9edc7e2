// K-quant block fields shared by the GEMV (gemv_k.glsl) and tiled GEMM (gemm_k.glsl)
// shaders. Include after the weight buffer `w` is declared (BYTE_AT reads it).

// Q4_K / Q5_K: the 6-bit scale (x) and min (y) of sub-block s (0..7) of the super-block
// whose first byte is `base` (d, dmin at base, base+2; scales[12] at base+4). The CPU's
// UnpackScaleMinK4 (tensor/quant_blocks.h) in the same bit order.
uvec2 unpack_scale_min_k4(uint base, uint s) {
  if (s < 4u) return uvec2(BYTE_AT(w, base + 4u + s) & 63u, BYTE_AT(w, base + 8u + s) & 63u);
  return uvec2((BYTE_AT(w, base + 8u + s) & 15u) | ((BYTE_AT(w, base + s) >> 6) << 4),
               (BYTE_AT(w, base + 8u + s) >> 4) | ((BYTE_AT(w, base + 4u + s) >> 6) << 4));
}
