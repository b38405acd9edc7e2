// Private to tensor/: MatMulContext's state shared by the GEMV and GEMM files.
#pragma once

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "base/aligned_buffer.h"
#include "tensor/matmul.h"

namespace spool {


struct MatMulContext::Impl {
  AlignedBuffer act;                    // prepared activation rows (GEMV) / bf16 x (GEMM)
  AlignedBuffer kcol;                   // repacked activation bands (K-quant prefill GEMM)
  std::vector<AlignedBuffer> tiles;     // per-thread dequantised weight tiles (GEMM)
  struct GemmState;
  std::unique_ptr<GemmState> gemm;      // oneDNN engine, stream, primitive cache
  Impl();  // out of line: GemmState is complete only in gemm.cc
  ~Impl();
};

void EnsureSize(AlignedBuffer& buf, size_t bytes);

}  // namespace spool
