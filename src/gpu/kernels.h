// The compute kernels a dense Llama-family step needs, on a VulkanDevice. Each has a
// CPU twin in spool_tensor (the reference; tests/gpu/kernels_test.cc compares them on
// random inputs of many shapes):
//
//   kernel          CPU twin                    numerics vs the twin (on lavapipe)
//   QuantizeQ8_0    PrepareActivationRowRef     same blocks (d rounded to f16 by RNE, q = roundEven(x·127/amax),
//                   (Q8_0 and Q8_1)             Q8_1's s = f16(d·Σq))
//   QuantizeQ8_K    PrepareActivationRowRef     same blocks (q, d, bsums; Q8_K for K-quant weights)
//   MatVec          MatMulGemv                  bit-identical with a fused fma or its f64 emulation:
//                                               f32/f16/bf16 in DotFloat's order (2×16 fma lanes);
//                                               Q8_0/Q4_0/Q4_1: exact integer block dots summed in
//                                               llama.cpp's block order (Q5_0/Q5_1 the same
//                                               with the fifth bit); Q4_K/Q5_K/Q6_K × Q8_K in
//                                               DotQ45_K's / DotQ6_K's order
//   MatMul          MatMulGemv (row by row)     tiled GEMM for m > 1 (every MatVec type),
//                                               each output in the GEMV's order: bit-identical to
//                                               MatMulGemv; vs the CPU's float prefill GEMM
//                                               (oneDNN, bf16) within 1e-2·Σ|w·x|
//   RmsNorm         RmsNorm                     with f64: the CPU's numerics (sum of squares in f64
//                                               in order); else an f32 tree sum
//   Rope            ApplyRope                   bit-identical (cos/sin table computed on the host)
//   SwiGLU          SwiGLU                      with f64: exp correctly rounded (glibc expf: within
//                                               0.502 ulp, so nearly always equal); else GPU exp
//   Add, AddBias    Add (row by row for a bias) bit-identical
//   KvStore         F32ToBF16 / copy            bit-identical
//   GetRows         (row copy / widening)       bit-identical
//   Attention       AttentionFoldPage +         the CPU's order and exp polynomial, per page: a
//                   AttentionFinalize           decode row bit for bit (fused or f64 fma; not with
//                                               soft-capping: GPU tanh)
//
// Calls record dispatches on the device (VulkanDevice::Dispatch); results are in the
// output buffers after VulkanDevice::Sync (or a Download, which syncs first). Small
// per-call parameters (token ids, positions, page tables) go into a host-visible arena
// that is reused after the next Sync, so a call never forces a submit, except when the
// arena is full, RopeTable (a synchronous upload) and the first FusedFma probe.
//
// Shapes are checked (kInvalidArgument for out-of-range ids and sizes that do not fit
// the buffers); a kernel missing from the binary gives kUnsupported ("built without
// Vulkan shaders").
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "gpu/shader_table.h"
#include "gpu/vulkan_device.h"

namespace spool::gpu {

// A weight matrix W [n_out, n_in] in a device buffer, rows back to back from `offset`
// (a multiple of the device's min_offset_align).
struct WeightBuffer {
  const Buffer* buffer;
  uint64_t offset = 0;
  DType dtype;      // one MatVecSupports accepts
  int64_t n_out;
  int64_t n_in;     // a multiple of dtype's block size
};

// Activation rows quantised to Q8_0/Q8_1 in the GPU's own layout: int8 q values packed
// four to a 32-bit word ([m, n] bytes), then one f32 scale d per block ([m, n/32]), the
// f32 value of the f16 that the CPU's BlockQ8_0 stores, then Q8_1's s = f16(d·Σq) per
// block ([m, n/32], as BlockQ8_1::s).
inline uint64_t Q8ActBytes(int64_t m, int64_t n) { return static_cast<uint64_t>(m * n + 8 * (m * n / 32)); }
// Activation rows quantised to Q8_K (for Q4_K/Q5_K/Q6_K weights): int8 q packed four to a
// word ([m, n] bytes), then one f32 d per 256-block ([m, n/256]), then the int32 sum of
// each 16 q values ([m, n/16], BlockQ8_K::bsums widened).
inline uint64_t Q8KActBytes(int64_t m, int64_t n) { return static_cast<uint64_t>(m * n + 4 * (m * n / 256) + 4 * (m * n / 16)); }

// One KV page in device buffers (GPU twin of KvPageView): token t of kv head g at dim
// d is element k_elem + (t·n_kv_head + g)·head_dim + d of the K buffer (same for V).
struct GpuKvPage {
  uint64_t k_elem;
  uint64_t v_elem;
  int64_t n_tokens;
  int64_t first_pos;
};

struct GpuAttentionShape {
  int64_t n_head;
  int64_t n_kv_head;
  int64_t head_dim;   // <= 256
  float scale;
  int64_t window = 0;     // as AttentionShape::window
  float softcap = 0.0f;   // as AttentionShape::softcap
};

// The online softmax's running state between Attention calls over the pages of the same
// queries (pages folded in groups, e.g. cold KV pages staged from host RAM): `buffer`
// holds [n_q, n_head, head_dim + 2] f32 (max, sum, acc). `load`: start from it (else from
// nothing seen); `store`: write it instead of the output (the last call leaves it false).
struct GpuAttentionState {
  const Buffer* buffer = nullptr;
  bool load = false;
  bool store = false;
};
inline uint64_t AttentionStateBytes(int64_t n_q, int64_t n_head, int64_t head_dim) {
  return static_cast<uint64_t>(n_q) * static_cast<uint64_t>(n_head) * static_cast<uint64_t>(head_dim + 2) * 4;
}

// The weight types MatVec reads: f32, f16, bf16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (× Q8_0/Q8_1
// activations) and Q4_K, Q5_K, Q6_K (× Q8_K activations).
bool MatVecSupports(DType t);
// Their names, for error messages ("f32, f16, ...").
std::string_view MatVecTypeNames();
// Whether weights of type t take Q8_K activations (the K-quants) rather than Q8_0/Q8_1.
bool MatVecUsesQ8K(DType t);
// Bytes of the quantised activations MatVec/MatMul prepare for m rows of n_in (0 for
// float weights): Q8KActBytes or Q8ActBytes.
uint64_t MatVecActBytes(DType t, int64_t m, int64_t n_in);
// Which GEMV shaders quantised weights take. The integer-dot-product variants
// (SPV_KHR_integer_dot_product: each lane's four int8 products of a block by one OpSDot)
// compute the same integers as the plain ones, so their results are identical bit for bit.
enum class IntDotPath : uint8_t {
  kAuto,  // integer dot where the device enabled shaderIntegerDotProduct and reports
          // 4×8-bit packed signed dot products as accelerated; else plain
  kOff,   // always the plain shaders (every Vulkan 1.1 device)
  kOn,    // integer dot wherever the feature is enabled, accelerated or not (tests:
          // lavapipe has it, not accelerated); MatVec fails (kUnsupported) where it is not
};
// Whether quantised MatVec takes the integer-dot variants on a device described by
// `info` under `path`.
bool SelectIntDot(const DeviceInfo& info, IntDotPath path);

// The weight types the tiled GEMM reads (MatMul with m > 1): the same as MatVec's.
bool GemmSupports(DType t);

class Kernels {
 public:
  explicit Kernels(VulkanDevice& device) : dev_(device) {}

  // xq = Q8_0 blocks (with Q8_1's s) of each row of x.   x: [m, n] f32 (n % 32 == 0)   xq: Q8ActBytes(m, n)
  Status QuantizeQ8_0(const Buffer& x, const Buffer& xq, int64_t m, int64_t n);

  // xq = Q8_K blocks of each row of x.   x: [m, n] f32 (n % 256 == 0)   xq: Q8KActBytes(m, n)
  Status QuantizeQ8_K(const Buffer& x, const Buffer& xq, int64_t m, int64_t n);

  // Whether the device's fma() rounds once (a probe dispatch, run once). Quantised
  // MatVec follows the CPU's fused-multiply-add order; where fma() is not fused
  // (lavapipe lowers it to a multiply and an add) and the device has f64, it emulates
  // the fused fma in f64 instead, so the result stays the CPU's bit for bit.
  Result<bool> FusedFma();
  // Whether kernels take their *_f64 variants: fma not fused, and the device has f64.
  Result<bool> EmulateFmaInF64();

  // The GEMV shaders quantised weights take (default kAuto; SelectIntDot).
  void set_int_dot_path(IntDotPath path) { int_dot_path_ = path; }
  // Whether quantised MatVec runs the integer-dot variants now; kUnsupported for kOn on a
  // device without the feature.
  Result<bool> UsesIntDot() const;

  // y[m, n_out] = x[m, n_in] · Wᵀ, each row independently (the decode GEMV path).
  // Quantised weights quantise x to Q8_0 first (into a scratch buffer of this object).
  // x: [m, n_in] f32   y: [m, n_out] f32
  Status MatVec(const WeightBuffer& w, const Buffer& x, const Buffer& y, int64_t m);

  // The same product for many rows (prefill): m > 1 runs the tiled GEMM (tiles of 8
  // weight rows × 8 activation rows through shared memory), m == 1 MatVec. Each output is summed in MatVec's order, so the result equals MatVec's (and
  // MatMulGemv's) bit for bit whichever path runs.
  // x: [m, n_in] f32   y: [m, n_out] f32
  Status MatMul(const WeightBuffer& w, const Buffer& x, const Buffer& y, int64_t m);

  // y = x / sqrt(mean(x²) + eps) · weight per row (y may be x).
  // x, y: [n_rows, dim]   weight: [dim] f32
  Status RmsNorm(const Buffer& x, const Buffer& weight, float eps, int64_t n_rows, int64_t dim, const Buffer& y);

  // cos/sin table for Rope: [n_tok, rope_dim/2] pairs, computed on the host as ApplyRope
  // does (cos(pos·inv_freq)·mscale), uploaded into `table` (allocated here).
  // pos: [n_tok]   inv_freq: [rope_dim/2] (RopeFrequencies: linear/llama3/yarn scaling)
  Status RopeTable(std::span<const int64_t> pos, std::span<const float> inv_freq, float mscale, Buffer& table);

  // Rotates x in place (pairings as tensor/rope.h; neox: pairs (i, i + rope_dim/2)).
  // x: [n_tok, n_head, head_dim]   table: from RopeTable with the same n_tok, rope_dim
  Status Rope(bool neox, const Buffer& x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t rope_dim,
              const Buffer& table);

  // out = silu(gate) · up.   gate, up, out: [n] (out may be gate or up)
  Status SwiGLU(const Buffer& gate, const Buffer& up, int64_t n, const Buffer& out);

  // out = a + b (the residual add; FMA-free, bit-identical to tensor/ops.h's Add).
  // a, b, out: [n] (out may be a or b)
  Status Add(const Buffer& a, const Buffer& b, int64_t n, const Buffer& out);

  // out[r] = x[r] + bias for every row r (QKV bias; FMA-free, bit-identical to tensor/ops.h's
  // Add row by row, as models::Transformer adds it).
  // x, out: [n_rows, dim] (out may be x)   bias: [dim]
  Status AddBias(const Buffer& x, const Buffer& bias, int64_t n_rows, int64_t dim, const Buffer& out);

  // Writes src into a KV cache buffer at element dst_elem, as f32 or rounded to bf16
  // (nearest even, as F32ToBF16). bf16: n and dst_elem even.
  // src: [n] f32   dst: [>= dst_elem + n] of dtype (kF32 or kBF16)
  Status KvStore(const Buffer& src, int64_t n, DType dtype, const Buffer& dst, uint64_t dst_elem,
                 uint64_t src_elem = 0);

  // dst[dst_word + i] = src[src_word + i] for n 32-bit words, unchanged (KV rows of any
  // dtype, f32 rows). src and dst may be one buffer when the ranges do not overlap.
  Status CopyWords(const Buffer& src, uint64_t src_word, const Buffer& dst, uint64_t dst_word, int64_t n);

  // out[i] = row ids[i] of table, widened to f32. Every id must be < n_table_rows.
  // table: [n_table_rows, dim] of dtype (kF32, kF16, kBF16)   out: [ids.size(), dim] f32
  Status GetRows(const Buffer& table, DType dtype, int64_t n_table_rows, int64_t dim, std::span<const int32_t> ids,
                 const Buffer& out);

  // Causal attention of n_q queries over KV pages (folded in the given order, as the
  // CPU folds them), online softmax: the GPU twin of AttentionFoldPage over the pages +
  // AttentionFinalize. Pages of at most 1024 tokens.
  // q: [n_q, n_head, head_dim] f32   pos_q: [n_q]   k, v: page storage of kv_dtype
  // (kF32 or kBF16)   out: [n_q, n_head·head_dim] f32 (zeros for a query that saw no key)
  Status Attention(const GpuAttentionShape& shape, const Buffer& q, std::span<const int64_t> pos_q,
                   DType kv_dtype, const Buffer& k, const Buffer& v, std::span<const GpuKvPage> pages,
                   const Buffer& out, const GpuAttentionState& state = {});

 private:
  // Copies bytes into the host-visible arena; returns its range (valid until the next
  // Sync after the dispatch that reads it).
  Result<BufferRange> Param(const void* data, uint64_t bytes);
  Status EnsureScratch(uint64_t bytes);
  // Add's and AddBias's dispatch: out[i] = a[i] + b[i % b_n], i < n (checked by the callers).
  Status DispatchAdd(const Buffer& a, const Buffer& b, int64_t n, int64_t b_n, const Buffer& out);
  // The activation quantisers' shared body: x [m, n] f32 → `block`-value blocks of
  // `act_bytes` in all (QuantizeQ8_0: 32, QuantizeQ8_K: 256).
  Status QuantizeRows(const Buffer& x, const Buffer& xq, int64_t m, int64_t n, int64_t block, Shader shader,
                      uint64_t act_bytes, const char* what);

  VulkanDevice& dev_;
  Buffer arena_;
  uint64_t arena_used_ = 0;
  uint64_t arena_sync_ = 0;
  Status CheckMatMul(const char* what, const WeightBuffer& w, const Buffer& x, const Buffer& y, int64_t m);
  // Quantises x into scratch_ for w's type; returns the GEMV/GEMM push constants.
  Status PrepareActivations(const WeightBuffer& w, const Buffer& x, int64_t m, uint32_t* xd_offset,
                            uint32_t* xs_offset);

  Buffer scratch_;  // Q8_0 / Q8_K activations of MatVec and MatMul
  int fused_fma_ = -1;  // FusedFma's answer (-1: not probed yet)
  IntDotPath int_dot_path_ = IntDotPath::kAuto;
};

}  // namespace spool::gpu
