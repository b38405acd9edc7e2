#include "gpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "gpu/shader_table.h"

namespace spool::gpu {
namespace {

constexpr uint64_t kArenaBytes = uint64_t{4} << 20;
constexpr uint64_t kMaxIndex = uint64_t{1} << 32;  // shaders index 32-bit words/elements
constexpr uint32_t kMaxGroupsX = 65535;             // the minimum maxComputeWorkGroupCount[0]
constexpr int64_t kMaxPageTokens = 1024;            // attention.glsl MAX_PAGE

// Push constants, laid out as the shaders' push_constant blocks (32-bit fields).
struct QuantizePush { uint32_t n_blocks, d_offset, s_offset; };
struct GemvPush { uint32_t n_out, n_in, m, xd_offset, xs_offset; };
struct RmsNormPush { uint32_t n_rows, dim; float eps; };
struct RopePush { uint32_t n_tok, n_head, head_dim, rope_dim, neox; };
struct SwiGluPush { uint32_t n; };
struct AddPush { uint32_t n, b_n; };
struct KvStorePush { uint32_t n, dst_elem, bf16, src_elem; };
struct CopyWordsPush { uint32_t n, src_word, dst_word; };
struct GetRowsPush { uint32_t n_ids, dim, dtype; };
struct AttentionPush {
  uint32_t n_q, n_head, n_kv_head, head_dim, n_pages, pos_offset, kv_bf16;
  float scale;
  int32_t window;
  float softcap;
  uint32_t state_mode;
};

struct Grid { uint32_t x, y; };
// Groups for `n` workgroups laid out as x + y·gx (the shaders' row/index formula).
Grid GroupsFor(uint64_t n) {
  if (n == 0) return {0, 0};
  const uint32_t x = static_cast<uint32_t>(std::min<uint64_t>(n, kMaxGroupsX));
  return {x, static_cast<uint32_t>((n + x - 1) / x)};
}
Grid ThreadsFor(uint64_t n) { return GroupsFor((n + 63) / 64); }

Result<PipelineId> Get(VulkanDevice& dev, Shader s, uint32_t n_buffers, uint32_t push_bytes) {
  return dev.Pipeline(ShaderCode{ShaderName(s), ShaderSpirv(s), n_buffers, push_bytes});
}

Status Fits(const Buffer& b, uint64_t bytes, const char* what) {
  if (!b.valid()) return InvalidArgument(std::string("GPU kernel: ") + what + " is not a buffer");
  if (bytes > b.bytes())
    return InvalidArgument(std::string("GPU kernel: ") + what + " needs " + std::to_string(bytes) +
                           " bytes, the buffer has " + std::to_string(b.bytes()));
  return Status::Ok();
}

Status Positive(int64_t v, const char* what) {
  if (v <= 0 || static_cast<uint64_t>(v) >= kMaxIndex)
    return InvalidArgument(std::string("GPU kernel: ") + what + " = " + std::to_string(v) + " out of range");
  return Status::Ok();
}

Shader GemvShader(DType t, bool fma_f64) {
  switch (t) {
    case DType::kF32: return fma_f64 ? Shader::kGemvF32F64 : Shader::kGemvF32;
    case DType::kF16: return fma_f64 ? Shader::kGemvF16F64 : Shader::kGemvF16;
    case DType::kBF16: return fma_f64 ? Shader::kGemvBF16F64 : Shader::kGemvBF16;
    case DType::kQ8_0: return fma_f64 ? Shader::kGemvQ8_0F64 : Shader::kGemvQ8_0;
    case DType::kQ4_1: return fma_f64 ? Shader::kGemvQ4_1F64 : Shader::kGemvQ4_1;
    case DType::kQ4_K: return fma_f64 ? Shader::kGemvQ4_KF64 : Shader::kGemvQ4_K;
    case DType::kQ6_K: return fma_f64 ? Shader::kGemvQ6_KF64 : Shader::kGemvQ6_K;
    case DType::kQ5_0: return fma_f64 ? Shader::kGemvQ5_0F64 : Shader::kGemvQ5_0;
    case DType::kQ5_1: return fma_f64 ? Shader::kGemvQ5_1F64 : Shader::kGemvQ5_1;
    case DType::kQ5_K: return fma_f64 ? Shader::kGemvQ5_KF64 : Shader::kGemvQ5_K;
    default: return fma_f64 ? Shader::kGemvQ4_0F64 : Shader::kGemvQ4_0;
  }
}

// The integer-dot-product variant of a quantised GEMV.
Shader GemvIntDotShader(DType t, bool fma_f64) {
  switch (t) {
    case DType::kQ8_0: return fma_f64 ? Shader::kGemvQ8_0IDotF64 : Shader::kGemvQ8_0IDot;
    case DType::kQ4_1: return fma_f64 ? Shader::kGemvQ4_1IDotF64 : Shader::kGemvQ4_1IDot;
    case DType::kQ5_0: return fma_f64 ? Shader::kGemvQ5_0IDotF64 : Shader::kGemvQ5_0IDot;
    case DType::kQ5_1: return fma_f64 ? Shader::kGemvQ5_1IDotF64 : Shader::kGemvQ5_1IDot;
    case DType::kQ4_K: return fma_f64 ? Shader::kGemvQ4_KIDotF64 : Shader::kGemvQ4_KIDot;
    case DType::kQ5_K: return fma_f64 ? Shader::kGemvQ5_KIDotF64 : Shader::kGemvQ5_KIDot;
    case DType::kQ6_K: return fma_f64 ? Shader::kGemvQ6_KIDotF64 : Shader::kGemvQ6_KIDot;
    default: return fma_f64 ? Shader::kGemvQ4_0IDotF64 : Shader::kGemvQ4_0IDot;
  }
}

Shader GemmShader(DType t, bool fma_f64) {
  switch (t) {
    case DType::kF32: return fma_f64 ? Shader::kGemmF32F64 : Shader::kGemmF32;
    case DType::kF16: return fma_f64 ? Shader::kGemmF16F64 : Shader::kGemmF16;
    case DType::kBF16: return fma_f64 ? Shader::kGemmBF16F64 : Shader::kGemmBF16;
    case DType::kQ8_0: return fma_f64 ? Shader::kGemmQ8_0F64 : Shader::kGemmQ8_0;
    case DType::kQ4_1: return fma_f64 ? Shader::kGemmQ4_1F64 : Shader::kGemmQ4_1;
    case DType::kQ4_K: return fma_f64 ? Shader::kGemmQ4_KF64 : Shader::kGemmQ4_K;
    case DType::kQ6_K: return fma_f64 ? Shader::kGemmQ6_KF64 : Shader::kGemmQ6_K;
    case DType::kQ5_0: return fma_f64 ? Shader::kGemmQ5_0F64 : Shader::kGemmQ5_0;
    case DType::kQ5_1: return fma_f64 ? Shader::kGemmQ5_1F64 : Shader::kGemmQ5_1;
    case DType::kQ5_K: return fma_f64 ? Shader::kGemmQ5_KF64 : Shader::kGemmQ5_K;
    default: return fma_f64 ? Shader::kGemmQ4_0F64 : Shader::kGemmQ4_0;
  }
}

}  // namespace

bool MatVecUsesQ8K(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K; }

uint64_t MatVecActBytes(DType t, int64_t m, int64_t n_in) {
  if (!GetDTypeInfo(t).quantized) return 0;
  return MatVecUsesQ8K(t) ? Q8KActBytes(m, n_in) : Q8ActBytes(m, n_in);
}

std::string_view MatVecTypeNames() { return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k"; }

bool SelectIntDot(const DeviceInfo& info, IntDotPath path) {
  switch (path) {
    case IntDotPath::kOff: return false;
    case IntDotPath::kOn: return info.integer_dot_enabled;
    case IntDotPath::kAuto: return info.integer_dot_enabled && info.integer_dot_accelerated;
  }
  return false;
}

Result<bool> Kernels::UsesIntDot() const {
  if (int_dot_path_ == IntDotPath::kOn && !dev_.info().integer_dot_enabled)
    return Unsupported("GPU MatVec: the integer dot product path was asked for, but device " + dev_.info().name +
                       " has not enabled shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product)");
  return SelectIntDot(dev_.info(), int_dot_path_);
}

bool GemmSupports(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ8_0 || t == DType::kQ4_0 ||
         t == DType::kQ4_1 || t == DType::kQ5_0 || t == DType::kQ5_1 || MatVecUsesQ8K(t);
}

bool MatVecSupports(DType t) { return GemmSupports(t); }

Result<BufferRange> Kernels::Param(const void* data, uint64_t bytes) {
  const uint64_t align = dev_.info().min_offset_align;
  const uint64_t size = std::max<uint64_t>(4, (bytes + 3) & ~uint64_t{3});
  if (size > kArenaBytes) return InvalidArgument("GPU kernel parameters of " + std::to_string(bytes) + " bytes");
  if (!arena_.valid()) {
    auto a = dev_.Allocate(kArenaBytes, MemoryKind::kHostVisible, "kernel parameter arena");
    if (!a.ok()) return a.status();
    arena_ = std::move(a.value());
  }
  if (arena_sync_ != dev_.sync_count()) {  // everything that read the arena has run
    arena_sync_ = dev_.sync_count();
    arena_used_ = 0;
  }
  uint64_t off = (arena_used_ + align - 1) / align * align;
  if (off + size > kArenaBytes) {
    if (Status s = dev_.Sync(); !s.ok()) return s;
    arena_sync_ = dev_.sync_count();
    off = 0;
  }
  std::memcpy(static_cast<uint8_t*>(arena_.data()) + off, data, bytes);
  arena_used_ = off + size;
  return BufferRange{&arena_, off, size};
}

Status Kernels::EnsureScratch(uint64_t bytes) {
  if (scratch_.valid() && scratch_.bytes() >= bytes) return Status::Ok();
  scratch_ = Buffer();  // frees after pending work (FreeBuffer syncs)
  auto b = dev_.Allocate(std::max<uint64_t>(bytes, uint64_t{1} << 16), MemoryKind::kDevice, "Q8_0 activations");
  if (!b.ok()) return b.status();
  scratch_ = std::move(b.value());
  return Status::Ok();
}

Result<bool> Kernels::FusedFma() {
  if (fused_fma_ >= 0) return fused_fma_ == 1;
  auto pipe = Get(dev_, Shader::kFmaProbe, 1, 0);
  if (!pipe.ok()) return pipe.status();
  // (1 + 2^-12)² - 1 = 2^-11 + 2^-24 when rounded once; 2^-11 when the product is
  // rounded first (its 2^-24 is a tie, which rounds to even).
  const float a = 1.0f + 0x1p-12f;
  const float in[4] = {a, a, -1.0f, 0.0f};
  auto b = dev_.Allocate(sizeof(in), MemoryKind::kDevice, "fma probe");
  if (!b.ok()) return b.status();
  if (Status s = dev_.Upload(b.value(), 0, in, sizeof(in)); !s.ok()) return s;
  const BufferRange bufs[] = {{&b.value()}};
  if (Status s = dev_.Dispatch(pipe.value(), bufs, {}, 1); !s.ok()) return s;
  float out[4];
  if (Status s = dev_.Download(b.value(), 0, out, sizeof(out)); !s.ok()) return s;
  fused_fma_ = out[3] == 0x1p-11f + 0x1p-24f ? 1 : 0;
  return fused_fma_ == 1;
}

Result<bool> Kernels::EmulateFmaInF64() {
  auto fused = FusedFma();
  if (!fused.ok()) return fused.status();
  return !fused.value() && dev_.info().shader_float64;
}

// Activation rows [m, n] f32 → blocks of `block` values (Q8_0/Q8_1: 32, Q8_K: 256) with the
// layout `act_bytes` gives; one thread per block.
Status Kernels::QuantizeRows(const Buffer& x, const Buffer& xq, int64_t m, int64_t n, int64_t block, Shader shader,
                             uint64_t act_bytes, const char* what) {
  if (Status s = Positive(m, "m"); !s.ok()) return s;
  if (Status s = Positive(n, "n"); !s.ok()) return s;
  if (n % block != 0)
    return InvalidArgument(std::string("GPU ") + what + ": n = " + std::to_string(n) + " is not a multiple of " +
                           std::to_string(block));
  const uint64_t elems = static_cast<uint64_t>(m) * static_cast<uint64_t>(n);
  if (elems >= kMaxIndex) return InvalidArgument(std::string("GPU ") + what + ": m·n too large");
  if (Status s = Fits(x, elems * 4, "x"); !s.ok()) return s;
  if (Status s = Fits(xq, act_bytes, "xq"); !s.ok()) return s;
  auto pipe = Get(dev_, shader, 2, sizeof(QuantizePush));
  if (!pipe.ok()) return pipe.status();
  const uint64_t blocks = elems / static_cast<uint64_t>(block);
  const QuantizePush push{static_cast<uint32_t>(blocks), static_cast<uint32_t>(elems / 4),
                          static_cast<uint32_t>(elems / 4 + blocks)};
  const BufferRange bufs[] = {{&x}, {&xq}};
  const Grid g = ThreadsFor(blocks);
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::QuantizeQ8_0(const Buffer& x, const Buffer& xq, int64_t m, int64_t n) {
  return QuantizeRows(x, xq, m, n, 32, Shader::kQuantizeQ8_0, n > 0 && m > 0 ? Q8ActBytes(m, n) : 0, "QuantizeQ8_0");
}

Status Kernels::QuantizeQ8_K(const Buffer& x, const Buffer& xq, int64_t m, int64_t n) {
  return QuantizeRows(x, xq, m, n, 256, Shader::kQuantizeQ8_K, n > 0 && m > 0 ? Q8KActBytes(m, n) : 0, "QuantizeQ8_K");
}

Status Kernels::CheckMatMul(const char* what, const WeightBuffer& w, const Buffer& x, const Buffer& y, int64_t m) {
  if (!MatVecSupports(w.dtype))
    return Unsupported(std::string("GPU ") + what + ": weights of type " + std::string(DTypeName(w.dtype)) +
                       " (supported: " + std::string(MatVecTypeNames()) + ")");
  if (Status s = Positive(m, "m"); !s.ok()) return s;
  if (Status s = Positive(w.n_out, "n_out"); !s.ok()) return s;
  if (Status s = Positive(w.n_in, "n_in"); !s.ok()) return s;
  const auto& ti = GetDTypeInfo(w.dtype);
  if (w.n_in % ti.block_elems != 0)
    return InvalidArgument(std::string("GPU ") + what + ": n_in = " + std::to_string(w.n_in) +
                           " is not a multiple of " + std::to_string(ti.block_elems));
  const uint64_t w_elems = static_cast<uint64_t>(w.n_out) * static_cast<uint64_t>(w.n_in);
  const uint64_t w_bytes = w_elems / ti.block_elems * ti.block_bytes;
  if (w_elems >= kMaxIndex || w_bytes >= kMaxIndex)
    return InvalidArgument(std::string("GPU ") + what + ": weight too large (>= 4 GiB)");
  if (!w.buffer || w.offset > w.buffer->bytes())
    return InvalidArgument(std::string("GPU ") + what + ": weight offset outside its buffer");
  if (Status s = Fits(*w.buffer, w.offset + w_bytes, "weight"); !s.ok()) return s;
  const uint64_t x_elems = static_cast<uint64_t>(m) * static_cast<uint64_t>(w.n_in);
  if (x_elems >= kMaxIndex) return InvalidArgument(std::string("GPU ") + what + ": m·n_in too large");
  if (Status s = Fits(x, x_elems * 4, "x"); !s.ok()) return s;
  if (Status s = Fits(y, static_cast<uint64_t>(m) * static_cast<uint64_t>(w.n_out) * 4, "y"); !s.ok()) return s;
  return Status::Ok();
}

Status Kernels::PrepareActivations(const WeightBuffer& w, const Buffer& x, int64_t m, uint32_t* xd_offset,
                                   uint32_t* xs_offset) {
  const uint64_t x_elems = static_cast<uint64_t>(m) * static_cast<uint64_t>(w.n_in);
  if (MatVecUsesQ8K(w.dtype)) {
    if (Status s = EnsureScratch(Q8KActBytes(m, w.n_in)); !s.ok()) return s;
    if (Status s = QuantizeQ8_K(x, scratch_, m, w.n_in); !s.ok()) return s;
    *xd_offset = static_cast<uint32_t>(x_elems / 4);
    *xs_offset = static_cast<uint32_t>(x_elems / 4 + x_elems / 256);
    return Status::Ok();
  }
  if (Status s = EnsureScratch(Q8ActBytes(m, w.n_in)); !s.ok()) return s;
  if (Status s = QuantizeQ8_0(x, scratch_, m, w.n_in); !s.ok()) return s;
  *xd_offset = static_cast<uint32_t>(x_elems / 4);
  *xs_offset = static_cast<uint32_t>(x_elems / 4 + x_elems / 32);
  return Status::Ok();
}

Status Kernels::MatVec(const WeightBuffer& w, const Buffer& x, const Buffer& y, int64_t m) {
  if (Status s = CheckMatMul("MatVec", w, x, y, m); !s.ok()) return s;
  if (m > kMaxGroupsX) return InvalidArgument("GPU MatVec: more than 65535 rows in one call");
  auto emulate = EmulateFmaInF64();
  if (!emulate.ok()) return emulate.status();
  const bool fma_f64 = emulate.value();
  const bool quantized = GetDTypeInfo(w.dtype).quantized;
  bool int_dot = false;
  if (quantized) {
    auto use = UsesIntDot();
    if (!use.ok()) return use.status();
    int_dot = use.value();
  }
  auto pipe = Get(dev_, int_dot ? GemvIntDotShader(w.dtype, fma_f64) : GemvShader(w.dtype, fma_f64), 3,
                  sizeof(GemvPush));
  if (!pipe.ok()) return pipe.status();
  GemvPush push{static_cast<uint32_t>(w.n_out), static_cast<uint32_t>(w.n_in), static_cast<uint32_t>(m), 0, 0};
  if (quantized)
    if (Status s = PrepareActivations(w, x, m, &push.xd_offset, &push.xs_offset); !s.ok()) return s;
  const BufferRange bufs[] = {{w.buffer, w.offset, 0}, {quantized ? &scratch_ : &x}, {&y}};
  // Rows per workgroup of 64: quantised 8 (8 lanes per row), float 4 (16 lanes per row),
  // the lane counts of the CPU kernels' accumulators.
  const uint64_t rows_per_group = quantized ? 8 : 4;
  const uint64_t n_groups = (static_cast<uint64_t>(w.n_out) + rows_per_group - 1) / rows_per_group;
  const Grid g = GroupsFor(n_groups);
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y, static_cast<uint32_t>(m));
}

Status Kernels::MatMul(const WeightBuffer& w, const Buffer& x, const Buffer& y, int64_t m) {
  if (m <= 1 || !GemmSupports(w.dtype)) return MatVec(w, x, y, m);
  if (Status s = CheckMatMul("MatMul", w, x, y, m); !s.ok()) return s;
  const uint64_t row_tiles = (static_cast<uint64_t>(m) + 7) / 8;
  if (row_tiles > kMaxGroupsX) return InvalidArgument("GPU MatMul: more than 65535·8 rows in one call");
  auto emulate = EmulateFmaInF64();
  if (!emulate.ok()) return emulate.status();
  const bool fma_f64 = emulate.value();
  auto pipe = Get(dev_, GemmShader(w.dtype, fma_f64), 3, sizeof(GemvPush));
  if (!pipe.ok()) return pipe.status();
  GemvPush push{static_cast<uint32_t>(w.n_out), static_cast<uint32_t>(w.n_in), static_cast<uint32_t>(m), 0, 0};
  const bool quantized = GetDTypeInfo(w.dtype).quantized;
  if (quantized)
    if (Status s = PrepareActivations(w, x, m, &push.xd_offset, &push.xs_offset); !s.ok()) return s;
  const BufferRange bufs[] = {{w.buffer, w.offset, 0}, {quantized ? &scratch_ : &x}, {&y}};
  const Grid g = GroupsFor((static_cast<uint64_t>(w.n_out) + 7) / 8);
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y, static_cast<uint32_t>(row_tiles));
}

Status Kernels::RmsNorm(const Buffer& x, const Buffer& weight, float eps, int64_t n_rows, int64_t dim,
                        const Buffer& y) {
  if (Status s = Positive(n_rows, "n_rows"); !s.ok()) return s;
  if (Status s = Positive(dim, "dim"); !s.ok()) return s;
  const uint64_t elems = static_cast<uint64_t>(n_rows) * static_cast<uint64_t>(dim);
  if (elems >= kMaxIndex) return InvalidArgument("GPU RmsNorm: too many elements");
  if (Status s = Fits(x, elems * 4, "x"); !s.ok()) return s;
  if (Status s = Fits(y, elems * 4, "y"); !s.ok()) return s;
  if (Status s = Fits(weight, static_cast<uint64_t>(dim) * 4, "weight"); !s.ok()) return s;
  auto pipe = Get(dev_, dev_.info().shader_float64 ? Shader::kRmsNormF64 : Shader::kRmsNorm, 3, sizeof(RmsNormPush));
  if (!pipe.ok()) return pipe.status();
  const RmsNormPush push{static_cast<uint32_t>(n_rows), static_cast<uint32_t>(dim), eps};
  const BufferRange bufs[] = {{&x}, {&weight}, {&y}};
  const Grid g = GroupsFor(static_cast<uint64_t>(n_rows));
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::RopeTable(std::span<const int64_t> pos, std::span<const float> inv_freq, float mscale,
                          Buffer& table) {
  if (pos.empty() || inv_freq.empty()) return InvalidArgument("GPU RopeTable: no positions or frequencies");
  const size_t half = inv_freq.size();
  std::vector<float> t(pos.size() * half * 2);
  for (size_t i = 0; i < pos.size(); ++i) {
    for (size_t j = 0; j < half; ++j) {
      // Exactly ApplyRope's expressions (this file builds with -ffp-contract=off).
      const float angle = static_cast<float>(pos[i]) * inv_freq[j];
      t[(i * half + j) * 2] = std::cos(angle) * mscale;
      t[(i * half + j) * 2 + 1] = std::sin(angle) * mscale;
    }
  }
  const uint64_t bytes = t.size() * 4;
  if (!table.valid() || table.bytes() < bytes) {
    auto b = dev_.Allocate(bytes, MemoryKind::kDevice, "RoPE table");
    if (!b.ok()) return b.status();
    table = std::move(b.value());
  }
  return dev_.Upload(table, 0, t.data(), bytes);
}

Status Kernels::Rope(bool neox, const Buffer& x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t rope_dim,
                     const Buffer& table) {
  if (Status s = Positive(n_tok, "n_tok"); !s.ok()) return s;
  if (Status s = Positive(n_head, "n_head"); !s.ok()) return s;
  if (Status s = Positive(head_dim, "head_dim"); !s.ok()) return s;
  if (rope_dim <= 0 || rope_dim % 2 != 0 || rope_dim > head_dim)
    return InvalidArgument("GPU Rope: rope_dim = " + std::to_string(rope_dim) + " must be even and in (0, head_dim]");
  const uint64_t elems = static_cast<uint64_t>(n_tok) * static_cast<uint64_t>(n_head) * static_cast<uint64_t>(head_dim);
  if (elems >= kMaxIndex) return InvalidArgument("GPU Rope: too many elements");
  if (Status s = Fits(x, elems * 4, "x"); !s.ok()) return s;
  if (Status s = Fits(table, static_cast<uint64_t>(n_tok) * static_cast<uint64_t>(rope_dim) * 4, "RoPE table");
      !s.ok())
    return s;
  auto pipe = Get(dev_, Shader::kRope, 2, sizeof(RopePush));
  if (!pipe.ok()) return pipe.status();
  const RopePush push{static_cast<uint32_t>(n_tok), static_cast<uint32_t>(n_head), static_cast<uint32_t>(head_dim),
                      static_cast<uint32_t>(rope_dim), neox ? 1u : 0u};
  const BufferRange bufs[] = {{&x}, {&table}};
  const Grid g = ThreadsFor(static_cast<uint64_t>(n_tok * n_head * (rope_dim / 2)));
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::SwiGLU(const Buffer& gate, const Buffer& up, int64_t n, const Buffer& out) {
  if (Status s = Positive(n, "n"); !s.ok()) return s;
  const uint64_t bytes = static_cast<uint64_t>(n) * 4;
  if (Status s = Fits(gate, bytes, "gate"); !s.ok()) return s;
  if (Status s = Fits(up, bytes, "up"); !s.ok()) return s;
  if (Status s = Fits(out, bytes, "out"); !s.ok()) return s;
  auto pipe = Get(dev_, dev_.info().shader_float64 ? Shader::kSwiGLUF64 : Shader::kSwiGLU, 3, sizeof(SwiGluPush));
  if (!pipe.ok()) return pipe.status();
  const SwiGluPush push{static_cast<uint32_t>(n)};
  const BufferRange bufs[] = {{&gate}, {&up}, {&out}};
  const Grid g = ThreadsFor(static_cast<uint64_t>(n));
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::Add(const Buffer& a, const Buffer& b, int64_t n, const Buffer& out) {
  if (Status s = Positive(n, "n"); !s.ok()) return s;
  if (static_cast<uint64_t>(n) >= kMaxIndex) return InvalidArgument("GPU Add: too many elements");
  const uint64_t bytes = static_cast<uint64_t>(n) * 4;
  if (Status s = Fits(a, bytes, "a"); !s.ok()) return s;
  if (Status s = Fits(b, bytes, "b"); !s.ok()) return s;
  if (Status s = Fits(out, bytes, "out"); !s.ok()) return s;
  return DispatchAdd(a, b, n, n, out);
}

Status Kernels::AddBias(const Buffer& x, const Buffer& bias, int64_t n_rows, int64_t dim, const Buffer& out) {
  if (Status s = Positive(n_rows, "n_rows"); !s.ok()) return s;
  if (Status s = Positive(dim, "dim"); !s.ok()) return s;
  const uint64_t elems = static_cast<uint64_t>(n_rows) * static_cast<uint64_t>(dim);
  if (elems >= kMaxIndex) return InvalidArgument("GPU AddBias: too many elements");
  if (Status s = Fits(x, elems * 4, "x"); !s.ok()) return s;
  if (Status s = Fits(bias, static_cast<uint64_t>(dim) * 4, "bias"); !s.ok()) return s;
  if (Status s = Fits(out, elems * 4, "out"); !s.ok()) return s;
  return DispatchAdd(x, bias, static_cast<int64_t>(elems), dim, out);
}

Status Kernels::DispatchAdd(const Buffer& a, const Buffer& b, int64_t n, int64_t b_n, const Buffer& out) {
  auto pipe = Get(dev_, Shader::kAdd, 3, sizeof(AddPush));
  if (!pipe.ok()) return pipe.status();
  const AddPush push{static_cast<uint32_t>(n), static_cast<uint32_t>(b_n)};
  const BufferRange bufs[] = {{&a}, {&b}, {&out}};
  const Grid g = ThreadsFor(static_cast<uint64_t>(n));
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::KvStore(const Buffer& src, int64_t n, DType dtype, const Buffer& dst, uint64_t dst_elem,
                        uint64_t src_elem) {
  if (dtype != DType::kF32 && dtype != DType::kBF16)
    return Unsupported("GPU KvStore: KV of type " + std::string(DTypeName(dtype)) + " (supported: f32, bf16)");
  if (Status s = Positive(n, "n"); !s.ok()) return s;
  const bool bf16 = dtype == DType::kBF16;
  if (bf16 && (n % 2 != 0 || dst_elem % 2 != 0))
    return InvalidArgument("GPU KvStore: bf16 needs an even count and offset");
  if (dst_elem + static_cast<uint64_t>(n) >= kMaxIndex) return InvalidArgument("GPU KvStore: offset beyond 2^32");
  if (src_elem + static_cast<uint64_t>(n) >= kMaxIndex) return InvalidArgument("GPU KvStore: source beyond 2^32");
  if (Status s = Fits(src, (src_elem + static_cast<uint64_t>(n)) * 4, "src"); !s.ok()) return s;
  if (Status s = Fits(dst, (dst_elem + static_cast<uint64_t>(n)) * (bf16 ? 2 : 4), "KV buffer"); !s.ok()) return s;
  auto pipe = Get(dev_, Shader::kKvStore, 2, sizeof(KvStorePush));
  if (!pipe.ok()) return pipe.status();
  const KvStorePush push{static_cast<uint32_t>(n), static_cast<uint32_t>(dst_elem), bf16 ? 1u : 0u,
                         static_cast<uint32_t>(src_elem)};
  const BufferRange bufs[] = {{&src}, {&dst}};
  const Grid g = ThreadsFor(static_cast<uint64_t>(bf16 ? n / 2 : n));
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::CopyWords(const Buffer& src, uint64_t src_word, const Buffer& dst, uint64_t dst_word, int64_t n) {
  if (Status s = Positive(n, "n"); !s.ok()) return s;
  if (src_word + static_cast<uint64_t>(n) >= kMaxIndex || dst_word + static_cast<uint64_t>(n) >= kMaxIndex)
    return InvalidArgument("GPU CopyWords: offset beyond 2^32 words");
  if (&src == &dst && src_word < dst_word + static_cast<uint64_t>(n) && dst_word < src_word + static_cast<uint64_t>(n))
    return InvalidArgument("GPU CopyWords: overlapping ranges in one buffer");
  if (Status s = Fits(src, (src_word + static_cast<uint64_t>(n)) * 4, "src"); !s.ok()) return s;
  if (Status s = Fits(dst, (dst_word + static_cast<uint64_t>(n)) * 4, "dst"); !s.ok()) return s;
  auto pipe = Get(dev_, Shader::kCopyWords, 2, sizeof(CopyWordsPush));
  if (!pipe.ok()) return pipe.status();
  const CopyWordsPush push{static_cast<uint32_t>(n), static_cast<uint32_t>(src_word), static_cast<uint32_t>(dst_word)};
  const BufferRange bufs[] = {{&src}, {&dst}};
  const Grid g = ThreadsFor(static_cast<uint64_t>(n));
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::GetRows(const Buffer& table, DType dtype, int64_t n_table_rows, int64_t dim,
                        std::span<const int32_t> ids, const Buffer& out) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return Unsupported("GPU GetRows: table of type " + std::string(DTypeName(dtype)) + " (supported: f32, f16, bf16)");
  if (Status s = Positive(n_table_rows, "n_table_rows"); !s.ok()) return s;
  if (Status s = Positive(dim, "dim"); !s.ok()) return s;
  if (ids.empty()) return Status::Ok();
  const uint64_t table_elems = static_cast<uint64_t>(n_table_rows) * static_cast<uint64_t>(dim);
  const uint64_t out_elems = ids.size() * static_cast<uint64_t>(dim);
  if (table_elems >= kMaxIndex || out_elems >= kMaxIndex) return InvalidArgument("GPU GetRows: too many elements");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= n_table_rows)
      return InvalidArgument("GPU GetRows: id " + std::to_string(ids[i]) + " at " + std::to_string(i) +
                             " outside the table's " + std::to_string(n_table_rows) + " rows");
  if (Status s = Fits(table, table_elems * (dtype == DType::kF32 ? 4 : 2), "table"); !s.ok()) return s;
  if (Status s = Fits(out, out_elems * 4, "out"); !s.ok()) return s;
  auto pipe = Get(dev_, Shader::kGetRows, 3, sizeof(GetRowsPush));
  if (!pipe.ok()) return pipe.status();
  auto id_range = Param(ids.data(), ids.size_bytes());
  if (!id_range.ok()) return id_range.status();
  const GetRowsPush push{static_cast<uint32_t>(ids.size()), static_cast<uint32_t>(dim),
                         dtype == DType::kF32 ? 0u : dtype == DType::kF16 ? 1u : 2u};
  const BufferRange bufs[] = {{&table}, id_range.value(), {&out}};
  const Grid g = ThreadsFor(out_elems);
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), g.x, g.y);
}

Status Kernels::Attention(const GpuAttentionShape& shape, const Buffer& q, std::span<const int64_t> pos_q,
                          DType kv_dtype, const Buffer& k, const Buffer& v, std::span<const GpuKvPage> pages,
                          const Buffer& out, const GpuAttentionState& state) {
  if (kv_dtype != DType::kF32 && kv_dtype != DType::kBF16)
    return Unsupported("GPU Attention: KV of type " + std::string(DTypeName(kv_dtype)) + " (supported: f32, bf16)");
  if (Status s = Positive(shape.n_head, "n_head"); !s.ok()) return s;
  if (Status s = Positive(shape.n_kv_head, "n_kv_head"); !s.ok()) return s;
  if (shape.n_head % shape.n_kv_head != 0) return InvalidArgument("GPU Attention: n_head % n_kv_head != 0");
  if (shape.head_dim <= 0 || shape.head_dim > 256)
    return InvalidArgument("GPU Attention: head_dim = " + std::to_string(shape.head_dim) + " (supported: 1..256)");
  if (shape.window < 0 || shape.window > INT32_MAX) return InvalidArgument("GPU Attention: window out of range");
  if (pos_q.empty()) return Status::Ok();
  const uint64_t n_q = pos_q.size();
  const uint64_t q_elems = n_q * static_cast<uint64_t>(shape.n_head * shape.head_dim);
  if (q_elems >= kMaxIndex) return InvalidArgument("GPU Attention: too many queries");
  if (Status s = Fits(q, q_elems * 4, "q"); !s.ok()) return s;
  if (Status s = Fits(out, q_elems * 4, "out"); !s.ok()) return s;
  if (state.load || state.store) {
    if (state.buffer == nullptr) return InvalidArgument("GPU Attention: a state to load or store needs a buffer");
    if (Status s = Fits(*state.buffer, AttentionStateBytes(static_cast<int64_t>(n_q), shape.n_head, shape.head_dim),
                        "attention state");
        !s.ok())
      return s;
  }
  const uint64_t esize = kv_dtype == DType::kF32 ? 4 : 2;
  const uint64_t row = static_cast<uint64_t>(shape.n_kv_head * shape.head_dim);
  std::vector<uint32_t> table;
  table.reserve(pages.size() * 4);
  for (const GpuKvPage& p : pages) {
    if (p.n_tokens > kMaxPageTokens)
      return InvalidArgument("GPU Attention: a page of " + std::to_string(p.n_tokens) + " tokens (at most " +
                             std::to_string(kMaxPageTokens) + ")");
    if (p.n_tokens < 0 || p.first_pos < 0 || p.first_pos > INT32_MAX - p.n_tokens)
      return InvalidArgument("GPU Attention: page with bad token count or position");
    const uint64_t n = static_cast<uint64_t>(p.n_tokens) * row;
    if (p.k_elem + n >= kMaxIndex || p.v_elem + n >= kMaxIndex)
      return InvalidArgument("GPU Attention: page beyond 2^32 elements");
    if (Status s = Fits(k, (p.k_elem + n) * esize, "K page"); !s.ok()) return s;
    if (Status s = Fits(v, (p.v_elem + n) * esize, "V page"); !s.ok()) return s;
    table.insert(table.end(), {static_cast<uint32_t>(p.k_elem), static_cast<uint32_t>(p.v_elem),
                               static_cast<uint32_t>(p.n_tokens), static_cast<uint32_t>(p.first_pos)});
  }
  // One parameter block: the page table, then the query positions (so that both land
  // in the arena together).
  const uint32_t pos_offset = static_cast<uint32_t>(table.size());
  for (size_t i = 0; i < n_q; ++i) {
    if (pos_q[i] < 0 || pos_q[i] > INT32_MAX) return InvalidArgument("GPU Attention: query position out of range");
    table.push_back(static_cast<uint32_t>(pos_q[i]));
  }
  auto emulate = EmulateFmaInF64();
  if (!emulate.ok()) return emulate.status();
  const bool fma_f64 = emulate.value();
  auto pipe = Get(dev_, fma_f64 ? Shader::kAttentionF64 : Shader::kAttention, 6, sizeof(AttentionPush));
  if (!pipe.ok()) return pipe.status();
  auto params = Param(table.data(), table.size() * 4);
  if (!params.ok()) return params.status();
  if (n_q > kMaxGroupsX) return InvalidArgument("GPU Attention: more than 65535 queries in one call");
  const AttentionPush push{static_cast<uint32_t>(n_q),
                           static_cast<uint32_t>(shape.n_head),
                           static_cast<uint32_t>(shape.n_kv_head),
                           static_cast<uint32_t>(shape.head_dim),
                           static_cast<uint32_t>(pages.size()),
                           pos_offset,
                           kv_dtype == DType::kBF16 ? 1u : 0u,
                           shape.scale,
                           static_cast<int32_t>(shape.window),
                           shape.softcap,
                           (state.load ? 1u : 0u) | (state.store ? 2u : 0u)};
  // Without a state the output buffer is bound in its place (the shader does not touch it).
  const Buffer* st = state.load || state.store ? state.buffer : &out;
  const BufferRange bufs[] = {{&q}, {&k}, {&v}, params.value(), {&out}, {st}};
  return dev_.Dispatch(pipe.value(), bufs, PushBytes(push), static_cast<uint32_t>(shape.n_head),
                       static_cast<uint32_t>(n_q));
}

}  // namespace spool::gpu
