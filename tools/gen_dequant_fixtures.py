#!/usr/bin/env python3
"""Writes tests/fixtures/tensor/dequant_<type>.{q,f32}: reference data for DequantizeRow.

For every weight type spool reads, `<type>.q` holds N_ELEMS elements stored in that type
(GGML block layout) and `<type>.f32` the little-endian f32 values gguf-py's
`gguf.quants.dequantize` gives for them. Types gguf-py can quantise (f32, f16, bf16,
q8_0, q4_0, q4_1, q5_0, q5_1) are made by `gguf.quants.quantize` of random floats;
gguf-py has no K-quant quantiser, so q4_k/q5_k/q6_k blocks are random bytes with finite
f16 scales. mxfp4 is exhaustive: one block per E8M0 exponent (0..255, including the two
that decode to subnormal scales and the ones whose ×12 overflows to inf), each holding
all 16 E2M1 codes in its low nibbles and all 16 in its high nibbles (8,192 elements).
tests/tensor/dequant_test.cc requires bit-exact equality.

Usage: python3 tools/gen_dequant_fixtures.py   (needs `pip install gguf numpy`; run from
the repository root). Generated with gguf 0.19.0, numpy 2.4; mxfp4 with the gguf-py of
llama-cpp-python 0.3.36's vendor/llama.cpp (PYTHONPATH=.../vendor/llama.cpp/gguf-py; the
PyPI gguf 0.19.0 has no MXFP4).
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

N_ELEMS = 512
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tensor")

QUANTISABLE = {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0, "q4_0": T.Q4_0,
               "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1}
RANDOM_BYTES = {"q4_k": T.Q4_K, "q5_k": T.Q5_K, "q6_k": T.Q6_K}


def random_floats(rng):
    # Blocks with different magnitudes and offsets, one all-zero block, one constant block.
    x = rng.standard_normal(N_ELEMS).astype(np.float32)
    x *= np.repeat(rng.uniform(0.01, 4.0, N_ELEMS // 32), 32).astype(np.float32)
    x += np.repeat(rng.uniform(-1.0, 1.0, N_ELEMS // 32), 32).astype(np.float32)
    x[0:32] = 0.0
    x[32:64] = 0.75
    return x


def f16_bytes(rng, n, lo, hi):
    return rng.uniform(lo, hi, n).astype(np.float16).view(np.uint8).reshape(n, 2)


def random_kquant(rng, qtype):
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    nb = N_ELEMS // block_size
    b = rng.integers(0, 256, size=(nb, type_size), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):  # d, dmin first
        b[:, 0:2] = f16_bytes(rng, nb, -0.05, 0.05)
        b[:, 2:4] = f16_bytes(rng, nb, -0.05, 0.05)
    else:  # Q6_K: d last
        b[:, type_size - 2:] = f16_bytes(rng, nb, -0.05, 0.05)
    return b.reshape(-1)


def main():
    rng = np.random.default_rng(1234)
    os.makedirs(OUT, exist_ok=True)
    for name, qtype in list(QUANTISABLE.items()) + list(RANDOM_BYTES.items()):
        if name in QUANTISABLE:
            q = quants.quantize(random_floats(rng), qtype)
        else:
            q = random_kquant(rng, qtype)
        q = np.ascontiguousarray(q).view(np.uint8).reshape(-1)
        deq = quants.dequantize(q, qtype).astype(np.float32).reshape(-1)
        assert deq.size == N_ELEMS, (name, deq.size)
        q.tofile(os.path.join(OUT, f"dequant_{name}.q"))
        deq.astype("<f4").tofile(os.path.join(OUT, f"dequant_{name}.f32"))
        print(f"{name}: {q.size} bytes -> {deq.size} floats")
    if hasattr(T, "MXFP4"):
        write_mxfp4()
    else:
        print("this gguf-py has no MXFP4: dequant_mxfp4 not written")


def write_mxfp4():
    e = np.arange(256, dtype=np.uint8).reshape(256, 1)
    codes = np.arange(16, dtype=np.uint8)
    qs = np.tile(codes | ((15 - codes) << 4), (256, 1))  # low: 0..15, high: 15..0
    q = np.concatenate([e, qs], axis=1).reshape(-1)
    with np.errstate(over="ignore"):
        deq = quants.dequantize(q, T.MXFP4).astype(np.float32).reshape(-1)
    assert deq.size == 256 * 32
    q.tofile(os.path.join(OUT, "dequant_mxfp4.q"))
    deq.astype("<f4").tofile(os.path.join(OUT, "dequant_mxfp4.f32"))
    print(f"mxfp4: {q.size} bytes -> {deq.size} floats (every exponent x every code)")


if __name__ == "__main__":
    main()
