#!/usr/bin/env python3
"""llama.cpp's side of the h64 quantised-qwen3next investigation (docs/parts/qwen3next.md,
"Quantised GGUF"): quantises tests/fixtures/qwen3next/qwen3next-h64.gguf as the removed
fixtures were (llama_model_quantize, default rules, Q8_0 and Q4_K_M), writes an f32 GGUF
holding exactly gguf-py's dequantisation of each, and prints llama.cpp's logit distance
(|Δ| / (1 + |logit|), worst over the 80 reference positions) between the quantised file,
its dequantised twin and the f32 file. Writes the files to OUT_DIR (default a temporary
folder) so that spool can be run on the same files.

llama-cpp-python 0.3.36, gguf-py of its sdist:
  PYTHONPATH=<sdist>/vendor/llama.cpp/gguf-py python3 tools/qwen3next_quant_isolation.py [OUT_DIR]
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "qwen3next")
QUANT_TYPES = {"q8_0": 7, "q4_k_m": 15}


def dequantised_copy(gguf, src, dst):
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if name == "general.file_type":
            w.add_uint32(name, int(gguf.LlamaFileType.ALL_F32))
            continue
        w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        w.add_tensor(t.name, np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    import gguf
    import llama_cpp
    import gen_rope_freqs_fixture as rf
    from gen_qwen3next_quant_fixtures import logits_of, rel
    rf.no_extra_buffers(llama_cpp)
    out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="q3n-isolation-")
    os.makedirs(out, exist_ok=True)
    f32 = os.path.join(FX, "qwen3next-h64.gguf")
    with open(os.path.join(FX, "qwen3next-h64", "reference.json")) as f:
        seq = json.load(f)["sequence_ids"]
    lf = logits_of(llama_cpp, f32, seq)
    for t, ftype in QUANT_TYPES.items():
        q = os.path.join(out, f"qwen3next-h64-{t}.gguf")
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = ftype
        p.nthread = 2
        assert llama_cpp.llama_model_quantize(f32.encode(), q.encode(), p) == 0
        d = os.path.join(out, f"qwen3next-h64-{t}-dequantised-f32.gguf")
        dequantised_copy(gguf, q, d)
        lq, ld = logits_of(llama_cpp, q, seq), logits_of(llama_cpp, d, seq)
        print(f"{t}: llama.cpp quantised vs its dequantised twin {rel(lq, ld):.3g} (position 0: {rel(lq[:1], ld[:1]):.3g}), "
              f"dequantised twin vs f32 {rel(ld, lf):.3g}, quantised vs f32 {rel(lq, lf):.3g}; files in {out}")


if __name__ == "__main__":
    main()
