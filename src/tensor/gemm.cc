// GEMM path of MatMul (m > kGemvMaxRows): oneDNN matmul, one single-threaded
// primitive per pool thread over its share of the n_out rows, in tiles of
// kTileRows rows.
//   bf16 weights: x → bf16, weights used in place → AMX bf16, f32 output.
//   f32 weights: f32 GEMM in place.
//   f16 weights: tiles converted to f32 (exact), f32 GEMM.
//   quantised weights: tiles dequantised to bf16 (one rounding), bf16 GEMM.
#include <dnnl.hpp>
#include "tensor/simd_util.h"  // first: wraps <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "base/check.h"
#include "tensor/dequant.h"
#include "tensor/matmul_internal.h"

namespace spool {
namespace {

constexpr int64_t kTileRows = 256;

enum class GemmKind { kBF16, kF32 };

GemmKind KindFor(DType t) { return (t == DType::kF32 || t == DType::kF16) ? GemmKind::kF32 : GemmKind::kBF16; }

struct CachedPrimitive {
  dnnl::matmul prim;
  size_t scratch_bytes;
};

}  // namespace

struct MatMulContext::Impl::GemmState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::vector<dnnl::stream> streams;  // one per pool thread (streams are not thread-safe)
  std::vector<AlignedBuffer> scratch;  // per-thread oneDNN scratchpads (user mode)
  std::mutex mu;                       // guards cache
  // key: (kind, m, n, k, ldc)
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t>, CachedPrimitive> cache;

  const CachedPrimitive& Get(GemmKind kind, int64_t m, int64_t n, int64_t k, int64_t ldc) {
    std::lock_guard<std::mutex> lk(mu);
    auto key = std::make_tuple(static_cast<int>(kind), m, n, k, ldc);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    if (cache.size() > 256) cache.clear();  // shapes churn (varying prefill lengths): bound memory
    using dt = dnnl::memory::data_type;
    const dt in = kind == GemmKind::kBF16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc a_md({m, k}, in, dnnl::memory::dims{k, 1});
    dnnl::memory::desc b_md({k, n}, in, dnnl::memory::dims{1, k});  // W rows [n, k] = Wᵀ column-major
    dnnl::memory::desc c_md({m, n}, dt::f32, dnnl::memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine);
    CachedPrimitive cp{dnnl::matmul(pd), pd.scratchpad_desc().get_size()};
    return cache.emplace(key, std::move(cp)).first->second;
  }
};

MatMulContext::Impl::Impl() = default;
MatMulContext::Impl::~Impl() = default;

void MatMulGemm(MatMulContext& ctx, ThreadPool& pool, const WeightView& w, const float* x, int64_t m, float* y) {
  SPOOL_CHECK(w.dtype != DType::kI32 && m >= 0);
  SPOOL_CHECK_MSG(w.scales == nullptr, "split-layout MXFP4 takes the GEMV path (MatMulGemv)");
  SPOOL_CHECK(w.n_in % GetDTypeInfo(w.dtype).block_elems == 0);
  if (m == 0 || w.n_out == 0) return;
  MatMulContext::Impl& impl = ctx.impl();
  if (!impl.gemm) impl.gemm = std::make_unique<MatMulContext::Impl::GemmState>();
  auto& gs = *impl.gemm;
  const int n_threads = pool.num_threads();
  while (static_cast<int>(gs.streams.size()) < n_threads) gs.streams.emplace_back(gs.engine);
  if (static_cast<int>(gs.scratch.size()) < n_threads) gs.scratch.resize(n_threads);
  if (static_cast<int>(impl.tiles.size()) < n_threads) impl.tiles.resize(n_threads);

  const GemmKind kind = KindFor(w.dtype);
  const int64_t k = w.n_in;
  // Activations in the GEMM input type.
  const void* a_ptr = x;
  if (kind == GemmKind::kBF16) {
    EnsureSize(impl.act, static_cast<size_t>(m * k) * 2);
    uint16_t* xb = impl.act.as<uint16_t>();
    const int64_t total = m * k;
    int64_t j = 0;
    for (; j + 16 <= total; j += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xb + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + j)));
    for (; j < total; ++j) xb[j] = F32ToBF16(x[j]);
    a_ptr = xb;
  }
  const bool in_place = w.dtype == DType::kBF16 || w.dtype == DType::kF32;
  const size_t row_bytes = *DTypeBytes(w.dtype, static_cast<uint64_t>(k));
  const size_t elem_bytes = kind == GemmKind::kBF16 ? 2 : 4;

  pool.ParallelFor(
      static_cast<size_t>(w.n_out),
      [&](size_t begin, size_t end, int t) {
        omp_set_num_threads(1);  // parallelism comes from our pool, not oneDNN's OpenMP
        using dt = dnnl::memory::data_type;
        const dt in = kind == GemmKind::kBF16 ? dt::bf16 : dt::f32;
        for (int64_t r0 = static_cast<int64_t>(begin); r0 < static_cast<int64_t>(end); r0 += kTileRows) {
          const int64_t n = std::min<int64_t>(kTileRows, static_cast<int64_t>(end) - r0);
          const uint8_t* wsrc = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r0) * row_bytes;
          void* b_ptr;
          if (in_place) {
            b_ptr = const_cast<uint8_t*>(wsrc);
          } else {
            EnsureSize(impl.tiles[t], static_cast<size_t>(n * k) * elem_bytes);
            for (int64_t r = 0; r < n; ++r) {
              if (kind == GemmKind::kF32)
                DequantizeRow(w.dtype, wsrc + r * row_bytes, impl.tiles[t].as<float>() + r * k, k);
              else
                DequantizeRowToBF16(w.dtype, wsrc + r * row_bytes, impl.tiles[t].as<uint16_t>() + r * k, k);
            }
            b_ptr = impl.tiles[t].data();
          }
          const CachedPrimitive& cp = gs.Get(kind, m, n, k, w.n_out);
          EnsureSize(gs.scratch[t], std::max<size_t>(cp.scratch_bytes, 64));
          dnnl::memory a_mem({{m, k}, in, dnnl::memory::dims{k, 1}}, gs.engine, const_cast<void*>(a_ptr));
          dnnl::memory b_mem({{k, n}, in, dnnl::memory::dims{1, k}}, gs.engine, b_ptr);
          dnnl::memory c_mem({{m, n}, dt::f32, dnnl::memory::dims{w.n_out, 1}}, gs.engine, y + r0);
          dnnl::memory s_mem({{static_cast<int64_t>(cp.scratch_bytes)}, dt::u8, dnnl::memory::dims{1}}, gs.engine,
                             gs.scratch[t].data());
          cp.prim.execute(gs.streams[t], {{DNNL_ARG_SRC, a_mem},
                                          {DNNL_ARG_WEIGHTS, b_mem},
                                          {DNNL_ARG_DST, c_mem},
                                          {DNNL_ARG_SCRATCHPAD, s_mem}});
          gs.streams[t].wait();
        }
      },
      /*grain=*/kTileRows);
}

}  // namespace spool
