#!/usr/bin/env python3
"""Writes tests/fixtures/tensor/quant_input.f32 and quant_{q8_0,q4_0}.q: f32 values and
what gguf-py's `gguf.quants.quantize` makes of them. tests/tensor/quantize_test.cc
requires spool's quantiser (src/tensor/quantize.h) to write the same bytes.

Blocks of 32: random normals at several scales and offsets, an all-zero block, a
constant block, blocks whose values land exactly on .5 after scaling (rounding ties),
a block whose largest |x| is negative, one where +m and -m tie (argmax takes the
first), tiny values (subnormal f16 scales), and large ones.

Usage: python3 tools/gen_quant_fixtures.py  (needs numpy and gguf-py; run from the
repository root). Generated with gguf-py of llama.cpp as vendored by
llama-cpp-python 0.3.36, numpy 2.4.
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tensor")


def inputs():
    rng = np.random.default_rng(16)
    blocks = []
    for scale in [1e-3, 0.02, 0.5, 3.0, 100.0]:
        for _ in range(8):
            blocks.append(rng.standard_normal(32) * scale + rng.uniform(-scale, scale))
    blocks.append(np.zeros(32))
    blocks.append(np.full(32, 0.75))
    # Ties: m = 127 (Q8_0: d = 1, x·(1/d) = k + .5), m = -8 (Q4_0: d = 1).
    t = np.arange(32) - 16 + 0.5
    t[0] = 127.0
    blocks.append(t)
    t = (np.arange(32) % 16) - 7.5
    t[3] = -8.0
    blocks.append(t)
    b = rng.standard_normal(32)
    b[5] = -9.0
    blocks.append(b)
    b = rng.standard_normal(32)
    b[2], b[9] = 6.0, -6.0
    blocks.append(b)
    blocks.append(rng.standard_normal(32) * 1e-6)
    blocks.append(rng.standard_normal(32) * 1e-9)
    blocks.append(rng.standard_normal(32) * 3000.0)
    return np.concatenate(blocks).astype(np.float32)


def main():
    x = inputs()
    os.makedirs(OUT, exist_ok=True)
    x.tofile(os.path.join(OUT, "quant_input.f32"))
    for name, qtype in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0)]:
        quants.quantize(x, qtype).tofile(os.path.join(OUT, f"quant_{name}.q"))
    print(f"{x.size} values, {x.size // 32} blocks")


if __name__ == "__main__":
    main()
