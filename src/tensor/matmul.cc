#include "tensor/matmul.h"

#include <vector>

#include "base/check.h"
#include "tensor/matmul_internal.h"
#include "tensor/vec_dot.h"

namespace spool {

MatMulContext::MatMulContext() : impl_(std::make_unique<Impl>()) {}
MatMulContext::~MatMulContext() = default;

void EnsureSize(AlignedBuffer& buf, size_t bytes) {
  if (buf.size() < bytes) buf.Reset(bytes, 64);
}

namespace {
void CheckShapes(const WeightView& w, int64_t m) {
  const DTypeInfo& info = GetDTypeInfo(w.dtype);
  SPOOL_CHECK(w.dtype != DType::kI32);
  SPOOL_CHECK(w.n_out >= 0 && w.n_in >= 0 && m >= 0);
  SPOOL_CHECK_MSG(w.n_in % info.block_elems == 0, "n_in must be a whole number of blocks");
  SPOOL_CHECK(reinterpret_cast<uintptr_t>(w.data) % (w.dtype == DType::kF32 ? 4 : 2) == 0);
}
}  // namespace

void MatMulGemv(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  CheckShapes(w, m);
  if (m == 0 || w.n_out == 0) return;
  const ActFormat fmt = ActFormatFor(w.dtype);
  const size_t act_bytes = ActRowBytes(fmt, w.n_in);
  const uint8_t* act;
  if (fmt == ActFormat::kF32) {
    act = reinterpret_cast<const uint8_t*>(x);
  } else {
    EnsureSize(ctx.impl().act, act_bytes * static_cast<size_t>(m));
    uint8_t* buf = ctx.impl().act.data();
    for (int64_t i = 0; i < m; ++i) PrepareActivationRow(fmt, x + i * w.n_in, buf + i * act_bytes, w.n_in);
    act = buf;
  }
  const size_t row_bytes = *DTypeBytes(w.dtype, static_cast<uint64_t>(w.n_in));
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  pool.ParallelFor(
      static_cast<size_t>(w.n_out),
      [&](size_t begin, size_t end, int) {
        for (size_t r = begin; r < end; ++r) {
          const void* wrow = wdata + r * row_bytes;
          for (int64_t i = 0; i < m; ++i)
            y[i * w.n_out + static_cast<int64_t>(r)] = DotRow(w.dtype, wrow, act + i * act_bytes, w.n_in);
        }
      },
      /*grain=*/16);
}

void MatMul(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  if (m <= GemvMaxRows(w.dtype)) return MatMulGemv(ctx, pool, w, x, m, y);
  MatMulGemm(ctx, pool, w, x, m, y);
}

void MatMulRef(const WeightView& w, const float* x, int64_t m, float* y) {
  CheckShapes(w, m);
  const ActFormat fmt = ActFormatFor(w.dtype);
  const size_t act_bytes = ActRowBytes(fmt, w.n_in);
  std::vector<uint8_t> act(act_bytes + 64);
  const size_t row_bytes = *DTypeBytes(w.dtype, static_cast<uint64_t>(w.n_in));
  for (int64_t i = 0; i < m; ++i) {
    // Align the prepared row like AlignedBuffer would (Q8_K holds a float).
    uint8_t* a = act.data() + (64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64;
    PrepareActivationRowRef(fmt, x + i * w.n_in, a, w.n_in);
    for (int64_t r = 0; r < w.n_out; ++r)
      y[i * w.n_out + r] = DotRowRef(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes, a, w.n_in);
  }
}

}  // namespace spool
