#!/usr/bin/env python3
"""Qwen3.5 GGUF fixtures (issue 15): llama.cpp's conversion of the tiny random Qwen3.5
HF fixtures (tools/gen_qwen35_fixtures.py) and llama.cpp's outputs on them
(tests/models/qwen35_gguf_test.cc).

  - qwen35moe-f32 (Qwen3_5MoeForCausalLM, 2 key / 4 value heads of 16, 4 experts top-2 +
    shared expert in every layer) → tests/fixtures/qwen35/qwen35moe-f32.gguf (llama.cpp
    arch `qwen35moe`) and qwen35moe-f32.llamacpp.json: llama-cpp-python's logits at every
    position of the HF fixture's `sequence_ids` (exact f32), its own 32 greedy ids from the
    prompt with margins, and perplexity (tools/gen_llamacpp_refs.py's method) over those ids
    in windows of PPL_CTX (f32 KV cache, no flash attention, no extra buffer types);
  - qwen35-f32 (Qwen3_5ForCausalLM, dense; value head dim 8 ≠ key head dim 16) →
    tests/fixtures/qwen35/qwen35-f32.gguf (arch `qwen35`) only: llama.cpp's qwen35 loader
    sizes value heads as the key head dim (src/models/qwen35.cpp: head_v_dim =
    hparams.ssm_d_state, for ssm_norm, attn_gate, ssm_out and the state) and cannot load
    it, so the test compares spool's GGUF run with spool's HF run and transformers;
  - qwen35-dv16-f32 (the same dense model with dv = dk = 16) → qwen35-dv16-f32.gguf and
    qwen35-dv16-f32.llamacpp.json, as qwen35moe-f32; and (stage quant) its Q8_0
    quantisation by llama.cpp's quantiser (llama_model_quantize, default rules, ftype
    MOSTLY_Q8_0) → qwen35-dv16-q8_0.gguf, with the same file dequantised to f32 by gguf-py
    (tools/dequant_gguf.py --f32) → qwen35-dv16-q8_0.dequant.gguf: spool on the Q8_0 file
    against spool on its exact dequantised values (tests/models/qwen35_test.cc), and
    qwen35-dv16-q8_0.llamacpp.json (llama.cpp's outputs on the Q8_0 file and every
    tensor's type).

The converter (convert_hf_to_gguf.py --outtype f32 --no-mtp) reorders value heads to tiled
order (_LinearAttentionVReorderBase._reorder_v_heads), splits b/a into ssm_beta/ssm_alpha,
stores −exp(A_log) and 1 + w norms, and writes rope.dimension_sections (mrope_section
padded with 0). A byte-level BPE tokenizer (gen_converted_fixtures.write_tokenizer) is
added to a copy of each folder for the converter; the pre-tokenizer is forced to llama-bpe.

Pinned: llama-cpp-python 0.3.36 (its sdist's vendor/llama.cpp for the converter; the
script refuses other versions). Not run in CI:
  PYTHONPATH=<sdist>/vendor/llama.cpp/gguf-py \\
    python3 tools/gen_qwen35_gguf_fixtures.py --llama-cpp <sdist>/vendor/llama.cpp [NAME ...]
    python3 tools/gen_qwen35_gguf_fixtures.py --llama-cpp UNUSED --stage quant
(the sdist: pip download llama-cpp-python==0.3.36 --no-binary :all: --no-deps; the
quant stage needs only llama-cpp-python and gguf.)
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HF = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "qwen35")
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
N_NEW = 32
PPL_CTX = 40
# name, run llama.cpp on it
MODELS = [("qwen35moe-f32", True), ("qwen35-f32", False), ("qwen35-dv16-f32", True)]
QUANT_SOURCE = "qwen35-dv16-f32"
QUANT_NAME = "qwen35-dv16-q8_0"
QUANT_FTYPE = 7  # LLAMA_FTYPE_MOSTLY_Q8_0


def llamacpp_outputs(llama_cpp, perplexity, path, ref):
    """llama-cpp-python's outputs on `path` (f32 KV cache, no flash attention): logits at
    every position of the HF fixture's sequence_ids (exact f32), its own N_NEW greedy ids
    from the prompt with margins, perplexity over sequence_ids in windows of PPL_CTX."""
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False,
                          flash_attn=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    exact = lambda row: [float(str(np.float32(x))) for x in row]
    seq = ref["sequence_ids"]
    prompt = ref["prompt_ids"]
    llm.reset()
    llm.eval(seq)
    seq_logits = [exact(llm.scores[i]) for i in range(len(seq))]
    llm.reset()
    gen = []
    for tok in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        gen.append(int(tok))
        if len(gen) == N_NEW:
            break
    llm.reset()
    llm.eval(prompt + gen[:-1])
    margins = []
    for j in range(len(gen)):
        row = np.sort(np.array(llm.scores[len(prompt) - 1 + j], dtype=np.float64))
        margins.append(round(float(row[-1] - row[-2]), 5))
    ppl, count = perplexity(llm, seq, PPL_CTX, bos=None)
    return {"generator": "tools/gen_qwen35_gguf_fixtures.py", "llama_cpp_python": llama_cpp.__version__,
            "kv_cache": "f32", "flash_attn": False, "prompt_ids": prompt, "greedy_ids": gen,
            "greedy_margins": margins, "sequence_ids": seq, "sequence_logits": seq_logits,
            "perplexity": {"token_ids": seq, "n_ctx": PPL_CTX, "bos": None, "scored_tokens": count, "ppl": ppl}}


def stage_quant():
    import llama_cpp
    import gguf
    import dequant_gguf
    import gen_rope_freqs_fixture as rf
    from gen_llamacpp_refs import perplexity
    rf.no_extra_buffers(llama_cpp)
    src = os.path.join(OUT, QUANT_SOURCE + ".gguf")
    out = os.path.join(OUT, QUANT_NAME + ".gguf")
    deq = os.path.join(OUT, QUANT_NAME + ".dequant.gguf")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = QUANT_FTYPE
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), out.encode(), p)
    assert rc == 0, f"llama_model_quantize: {rc}"
    dequant_gguf.main(out, deq, f32=True)
    types = {}
    for tensor in gguf.GGUFReader(out).tensors:
        types.setdefault(tensor.tensor_type.name, []).append(tensor.name)
    with open(os.path.join(HF, QUANT_SOURCE, "reference.json")) as f:
        ref = json.load(f)
    r = llamacpp_outputs(llama_cpp, perplexity, out, ref)
    r["source"] = os.path.basename(src)
    r["tensor_types"] = {k: len(v) for k, v in sorted(types.items())}
    r["tensor_types_by_name"] = {k: sorted(v) for k, v in sorted(types.items())}
    with open(os.path.join(OUT, QUANT_NAME + ".llamacpp.json"), "w") as f:
        json.dump(r, f)
    print(f"{QUANT_NAME}.gguf: {os.path.getsize(out)} bytes, types {r['tensor_types']}; "
          f"{os.path.basename(deq)}: {os.path.getsize(deq)} bytes; llama.cpp greedy {r['greedy_ids'][:8]}..., "
          f"min margin {min(r['greedy_margins'])}, ppl {r['perplexity']['ppl']:.4f}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("--stage", choices=["gguf", "quant"], default="gguf",
                    help="gguf: convert and run llama.cpp; quant: the Q8_0 file of " + QUANT_SOURCE)
    ap.add_argument("names", nargs="*", help="only these fixtures (default: all)")
    a = ap.parse_args()
    if a.stage == "quant":
        stage_quant()
        return
    import llama_cpp
    if llama_cpp.__version__ != LLAMA_CPP_PYTHON_VERSION:
        sys.exit(f"llama-cpp-python {llama_cpp.__version__}: this generator is pinned to {LLAMA_CPP_PYTHON_VERSION}")
    import gen_converted_fixtures as conv
    import gen_rope_freqs_fixture as rf
    from gen_llamacpp_refs import perplexity
    from gen_qwen3next_gguf_fixtures import convert
    rf.no_extra_buffers(llama_cpp)
    os.makedirs(OUT, exist_ok=True)
    for name, run_llama in MODELS:
        if a.names and name not in a.names:
            continue
        src = os.path.join(HF, name)
        out = os.path.join(OUT, name + ".gguf")
        with open(os.path.join(src, "reference.json")) as f:
            ref = json.load(f)
        with open(os.path.join(src, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, name)
            shutil.copytree(src, d)
            conv.write_tokenizer(d, vocab)
            convert(a.llama_cpp, d, out)
        print(f"{name}.gguf: {os.path.getsize(out)} bytes", file=sys.stderr)
        if not run_llama:
            continue
        refs = llamacpp_outputs(llama_cpp, perplexity, out, ref)
        gen, margins, ppl, count = (refs["greedy_ids"], refs["greedy_margins"], refs["perplexity"]["ppl"],
                                    refs["perplexity"]["scored_tokens"])
        with open(os.path.join(OUT, name + ".llamacpp.json"), "w") as f:
            json.dump(refs, f)
        print(f"{name}: llama.cpp greedy {gen[:8]}..., min margin {min(margins)}, HF greedy "
              f"{ref['greedy_ids'][:8]}..., ppl {ppl:.4f} over {count}", file=sys.stderr)


if __name__ == "__main__":
    main()
