#!/usr/bin/env python3
"""Writes a copy of a GGUF model with every quantised tensor dequantised to bf16 (1-D
tensors: f32), metadata unchanged. Used by bench/engine to compare spool and llama.cpp
on SmolLM2 at full precision:  tools/dequant_gguf.py IN.gguf OUT.gguf
With --f32 every tensor is written in f32: gguf-py's dequantised values exactly (a
quantised model's reference for spool's own quantised kernels, tools/gen_qwen35_gguf_fixtures.py):
  tools/dequant_gguf.py --f32 IN.gguf OUT.gguf
"""
import sys

import gguf
import numpy as np


def main(src, dst, f32=False):
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if name == "general.file_type":
            w.add_uint32(name, int(gguf.LlamaFileType.ALL_F32 if f32 else gguf.LlamaFileType.MOSTLY_BF16))
            continue
        w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]  # outermost first
        a = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        if a.ndim >= 2 and not f32:
            bits = a.view(np.uint32)
            bf16 = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
            w.add_tensor(t.name, bf16, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(t.name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    args = [x for x in sys.argv[1:] if x != "--f32"]
    if len(args) != 2:
        sys.exit("usage: tools/dequant_gguf.py [--f32] IN.gguf OUT.gguf")
    main(args[0], args[1], f32="--f32" in sys.argv[1:])
