#!/usr/bin/env python3
"""Converts the Gemma fixtures (tools/gen_gemma_fixtures.py) to GGUF with llama.cpp's own
convert_hf_to_gguf.py: tests/fixtures/converted/<name>.gguf in the fixture's storage
dtype. The Gemma converters need a SentencePiece tokenizer.model (Gemma 2 always; Gemma 3
otherwise cuts the embedding to the tokenizer.json's size), so a small BPE SentencePiece
model is trained here; the converter pads the vocabulary to the model's size. The tests
feed token ids, so the vocabulary only has to exist.

tests/models/converted_gguf_test.cc (GemmaConverted.*) checks the files: gemma2 against
transformers' reference (the converted model is the same model: query_pre_attn_scalar
equals head_dim and the f32 embedding scale is sqrtf(n_embd) on both sides); gemma3 for
its layer specs only, since llama.cpp's gemma3 runs it with score scale 1/sqrt(head_dim)
(no GGUF key carries query_pre_attn_scalar, 24 here) and an f32 embedding scale.

With --llamacpp-refs, llama.cpp's own greedy ids and last prompt logits for each file go
to tests/fixtures/converted/<name>.llamacpp.json (GemmaConverted.*MatchesLlamaCpp).

Not run in CI:
  PYTHONPATH=llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=lllib \
  python3 tools/gen_gemma_gguf.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp --llamacpp-refs
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_converted_fixtures import MODELS, OUT, OUTTYPE, convert  # noqa: E402

NAMES = ["gemma2-softcap-f32", "gemma3-swa-bf16"]


def write_spm(d):
    import sentencepiece as spm
    text = ["Once upon a time there was a little fox who lived in the forest.",
            "The fox liked to run and jump and play with the other animals.",
            "One day it found a shiny stone near the river and took it home."] * 20
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=os.path.join(d, "tokenizer"),
                                   vocab_size=120, model_type="bpe", bos_id=2, eos_id=1, unk_id=3, pad_id=0,
                                   minloglevel=2)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "GemmaTokenizer", "bos_token": "<s>", "eos_token": "</s>"}, f)


def llamacpp_refs(name):
    """llama.cpp's (llama-cpp-python's) greedy ids and prompt logits for the converted file:
    tests/fixtures/converted/<name>.llamacpp.json. Needs PYTHONPATH / LLAMA_CPP_LIB_PATH
    as in tools/gen_llamacpp_refs.py."""
    import llama_cpp
    import numpy as np
    with open(os.path.join(MODELS, name, "reference.json")) as f:
        ref = json.load(f)
    m = llama_cpp.Llama(model_path=os.path.join(OUT, name + ".gguf"), n_ctx=256, logits_all=True, verbose=False,
                        n_threads=2)
    ids = ref["prompt_ids"]
    m.reset()
    m.eval(ids)
    last = [round(float(x), 6) for x in m.scores[m.n_tokens - 1]]
    out = []
    for _ in range(len(ref["greedy_ids"])):
        nxt = int(np.argmax(m.scores[m.n_tokens - 1]))
        out.append(nxt)
        m.eval([nxt])
    with open(os.path.join(OUT, name + ".llamacpp.json"), "w") as f:
        json.dump({"generator": "tools/gen_gemma_gguf.py", "llama_cpp_python": llama_cpp.__version__,
                   "prompt_ids": ids, "last_logits": last, "greedy_ids": out}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("--llamacpp-refs", action="store_true", help="also record llama-cpp-python's outputs")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in NAMES:
        src = os.path.join(MODELS, name)
        with open(os.path.join(src, "reference.json")) as f:
            ref = json.load(f)
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, name)
            shutil.copytree(src, d)
            write_spm(d)
            out = os.path.join(OUT, name + ".gguf")
            convert(a.llama_cpp, d, OUTTYPE[ref["storage_dtype"]], out)
        print(f"{name}: {os.path.getsize(out)} bytes", file=sys.stderr)
        if a.llamacpp_refs:
            llamacpp_refs(name)


if __name__ == "__main__":
    main()
