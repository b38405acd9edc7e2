#!/usr/bin/env python3
"""Writes the rope_freqs fixture: a tiny random Llama-3.2-shaped model (llama3 rope
scaling, tied embeddings, GQA) as an HF folder, the same model converted to GGUF by
llama.cpp's own convert_hf_to_gguf.py (which stores llama3 scaling as the
`rope_freqs.weight` tensor), and both references:

  tests/fixtures/rope_freqs/hf/               config.json, model.safetensors (f32),
                                              tokenizer.json, tokenizer_config.json,
                                              reference.json (transformers, f32 compute)
  tests/fixtures/rope_freqs/llama32-tiny-f32.gguf    convert_hf_to_gguf.py --outtype f32
  tests/fixtures/rope_freqs/llama32-tiny-q8_0.gguf   convert_hf_to_gguf.py --outtype q8_0
  tests/fixtures/rope_freqs/llamacpp_refs.json       llama-cpp-python on each GGUF: prompt
                                              ids, greedy ids + margins, logits of every prompt position (exact f32 values)

Two GGUFs because spool's `--numerics ggml` reproduces llama.cpp's arithmetic bit for bit
for Q8_0 weights (docs/testing.md), not for f32 ones (llama.cpp's f32 GEMM order is not
replicated): the Q8_0 file pins the rope_freqs arithmetic exactly, the f32 file compares
with transformers.

Not run in CI. Needs torch, transformers, tokenizers, llama-cpp-python and the llama.cpp
source tree of the same llama-cpp-python sdist (its vendor/llama.cpp holds the converter
and gguf-py):
  pip download --no-deps --no-binary :all: llama-cpp-python && tar xzf llama_cpp_python-*.tar.gz
  python3 tools/gen_rope_freqs_fixture.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp
The recorded fixture used llama-cpp-python 0.3.36's Python package straight from that
sdist (PYTHONPATH=llama_cpp_python-0.3.36) with its libllama/libggml built from the same
sdist (-DGGML_NATIVE=ON) and LLAMA_CPP_LIB_PATH pointing at them; `--stage hf` and
`--stage llamacpp` run the two halves separately.

Shape: Llama 3.2 (rope_theta 500000, llama3 scaling factor 32, low 1, high 4, original
context 8192, tied embeddings) shrunk to 2 layers, hidden 128, 2 heads of 64 (GQA 2:1),
ffn 256. head_dim 64 puts 3 of the 32 frequencies in llama3's smoothed band, 15 in the
kept band and 14 in the divided band, so every branch of the formula is exercised.
The vocabulary is tests/fixtures/tokenizer/bpe_llama3.tokenizer.json (a byte-level BPE
trained with Llama 3's pre-tokenizer regex). Its hash is unknown to the converter, which
refuses unknown pre-tokenizers, so the converter is told "llama-bpe" (what a real
Llama 3 tokenizer is detected as); nothing else about the conversion is changed.
The seed is chosen so that every greedy step has a margin >= MIN_MARGIN in transformers.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
import transformers
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "rope_freqs")
HF = os.path.join(OUT, "hf")
GGUFS = {"f32": os.path.join(OUT, "llama32-tiny-f32.gguf"), "q8_0": os.path.join(OUT, "llama32-tiny-q8_0.gguf")}
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "bpe_llama3.tokenizer.json")
PROMPTS = ["Once upon a time, there was a little", "The quick brown fox jumps over the lazy dog."]
N_NEW = 32
MIN_MARGIN = 0.02
GENERATOR = "tools/gen_rope_freqs_fixture.py"  # recorded in the references; gen_yarn_fixture.py sets its own

CONFIG = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=1, head_dim=64, tie_word_embeddings=True, rope_theta=500000.0,
              rms_norm_eps=1e-5, max_position_embeddings=131072, bos_token_id=0, eos_token_id=1,
              rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                original_max_position_embeddings=8192))


def build(seed, vocab_size):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=vocab_size, initializer_range=0.25, architectures=["LlamaForCausalLM"],
                                   **CONFIG)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # random norms, so that a missing multiply is caught
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model


def hf_greedy(model, ids):
    t = torch.tensor([ids])
    with torch.no_grad():
        logits = model(t).logits[0].float()
        # An explicit mask: BOS is id 0, which generate() would otherwise take for padding.
        out = model.generate(t, attention_mask=torch.ones_like(t), max_new_tokens=N_NEW, min_new_tokens=N_NEW,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
        new = out[0, len(ids):].tolist()
        full = model(out[:, :-1]).logits[0].float()
    steps = range(len(ids) - 1, full.shape[0])
    margins = [float(v[0] - v[1]) for v in (torch.topk(full[s], 2).values for s in steps)]
    if [int(full[s].argmax()) for s in steps] != new:
        margins = [-1.0]  # generate() disagrees with the forward pass (a near-tie): not this seed
    return logits, new, margins


def write_hf(model):
    shutil.rmtree(HF, ignore_errors=True)
    os.makedirs(HF)
    model.config.save_pretrained(HF)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, os.path.join(HF, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(TOKENIZER, os.path.join(HF, "tokenizer.json"))
    with open(os.path.join(HF, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                   "eos_token": "<|end_of_text|>", "add_bos_token": True, "clean_up_tokenization_spaces": False,
                   "model_max_length": CONFIG["max_position_embeddings"]}, f, indent=1)


def convert(llama_cpp_dir):
    # Run the converter's own main(); only the pre-tokenizer detection is pinned (see above).
    for outtype, path in GGUFS.items():
        code = (
            "import sys, runpy\n"
            f"sys.path.insert(0, {llama_cpp_dir!r})\n"
            f"sys.path.insert(1, {os.path.join(llama_cpp_dir, 'gguf-py')!r})\n"
            "from conversion import base\n"
            "base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'llama-bpe'\n"
            f"sys.argv = ['convert_hf_to_gguf.py', '--outtype', {outtype!r}, '--outfile', {path!r}, {HF!r}]\n"
            f"runpy.run_path({os.path.join(llama_cpp_dir, 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


def no_extra_buffers(llama_cpp):
    """As tools/gen_llamacpp_refs.py: llama.cpp's AMX repack path crashes on this CPU."""
    raw = llama_cpp.llama_cpp
    orig = raw.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    raw.llama_model_default_params = params


def llamacpp_refs(path):
    import llama_cpp
    import numpy as np
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False, flash_attn=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    cases = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        out = []
        for tok in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
            out.append(int(tok))
            if len(out) == N_NEW:
                break
        llm.reset()
        llm.eval(ids)
        # Each f32 logit as its shortest decimal that reads back as the same f32: exact.
        prompt_logits = [[float(str(np.float32(x))) for x in llm.scores[i]] for i in range(len(ids))]
        llm.reset()
        llm.eval(ids + out[:-1])
        margins = []
        for j in range(len(out)):
            row = np.sort(np.array(llm.scores[len(ids) - 1 + j], dtype=np.float64))
            margins.append(round(float(row[-1] - row[-2]), 5))
        cases.append({"prompt": prompt, "prompt_ids": ids, "generated_ids": out, "greedy_margins": margins,
                      "prompt_logits": prompt_logits})
    return {"n_predict": N_NEW, "cases": cases}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("--first-seed", type=int, default=1, help="start of the seed search")
    ap.add_argument("--stage", choices=["all", "hf", "llamacpp"], default="all",
                    help="hf: model, transformers reference and conversion; llamacpp: llama.cpp references")
    a = ap.parse_args()
    if a.stage in ("all", "hf"):
        write_hf_and_gguf(a)
    if a.stage in ("all", "llamacpp"):
        import llama_cpp
        no_extra_buffers(llama_cpp)
        refs = {"generator": GENERATOR, "llama_cpp_python": llama_cpp.__version__,
                "kv_cache": "f32", "flash_attn": False,
                "models": {os.path.basename(p): llamacpp_refs(p) for p in GGUFS.values()}}
        with open(os.path.join(OUT, "llamacpp_refs.json"), "w") as f:
            json.dump(refs, f)
        with open(os.path.join(HF, "reference.json")) as f:
            ref = json.load(f)
        for name, m in refs["models"].items():
            for c, r in zip(m["cases"], ref["cases"]):
                print(f"{name} {c['prompt']!r}: prompt ids {'==' if c['prompt_ids'] == r['prompt_ids'] else '!='} "
                      f"transformers', llama.cpp greedy ids {'==' if c['generated_ids'] == r['greedy_ids'] else '!='} "
                      f"transformers', min llama.cpp margin {min(c['greedy_margins'])}", file=sys.stderr)


def write_hf_and_gguf(a):
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=TOKENIZER)
    vocab_size = len(tok)
    prompt_ids = [tok.encode(p, add_special_tokens=True) for p in PROMPTS]
    for seed in range(a.first_seed, 300):
        model = build(seed, vocab_size)
        runs = [hf_greedy(model, ids) for ids in prompt_ids]
        margin = min(min(r[2]) for r in runs)
        if margin >= MIN_MARGIN:
            break
    print(f"seed {seed}, min transformers margin {margin:.4f}", file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    write_hf(model)
    ref = {"generator": GENERATOR, "transformers_version": transformers.__version__,
           "torch_version": torch.__version__, "architecture": "LlamaForCausalLM", "storage_dtype": "float32",
           "compute_dtype": "float32", "seed": seed, "min_greedy_margin": margin,
           "cases": [{"prompt": p, "prompt_ids": ids, "logits": [[round(float(x), 6) for x in row] for row in r[0]],
                      "greedy_ids": r[1]} for p, ids, r in zip(PROMPTS, prompt_ids, runs)]}
    with open(os.path.join(HF, "reference.json"), "w") as f:
        json.dump(ref, f)
    convert(a.llama_cpp)


if __name__ == "__main__":
    main()
