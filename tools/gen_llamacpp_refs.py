#!/usr/bin/env python3
"""Records llama.cpp's (llama-cpp-python) greedy continuations and perplexity for the
default model, SmolLM2-135M-Instruct Q4_1, into tests/fixtures/smollm2/llamacpp_refs.json.

Not run in CI (needs llama-cpp-python): `python3 tools/gen_llamacpp_refs.py [MODEL]`.
Greedy = temperature 0 (argmax), every penalty off, f32 KV cache, no flash attention
(llama-cpp-python's default, stated explicitly); 64 new tokens per
prompt; prompts tokenized by llama.cpp with add_bos per the model (SmolLM2: none) and
special tokens parsed. Perplexity follows llama-perplexity (see runtime/perplexity.h),
computed here from llama.cpp's logits so that both sides use the same method.
"""
import json
import math
import os
import sys

import llama_cpp
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "smollm2", "llamacpp_refs.json")
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "<|im_start|>user\nWhat are three tips for staying healthy?<|im_end|>\n<|im_start|>assistant\n",
]
N_PREDICT = 64
PPL_CTX = 128


def no_extra_buffers():
    """llama.cpp's AMX int8 repacked mul_mat crashes (SIGSEGV) on this machine's CPU in
    llama-cpp-python 0.3.36; turn the extra (repack/AMX) buffer types off, as
    `llama-cli --no-repack` does. The plain CPU kernels compute the same math."""
    raw = llama_cpp.llama_cpp
    orig = raw.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    raw.llama_model_default_params = params


def perplexity(llm, toks, n_ctx, bos=None):
    """llama-perplexity's method from llama.cpp's logits: windows of n_ctx tokens (the
    first replaced by `bos` when given, as llama-perplexity does for models that add
    one), each on an empty cache, scoring positions n_ctx/2 .. n_ctx-2. Returns (ppl,
    scored tokens)."""
    nll, count = 0.0, 0
    for c in range(len(toks) // n_ctx):
        window = list(toks[c * n_ctx:(c + 1) * n_ctx])
        if bos is not None:
            window[0] = bos
        llm.reset()
        llm.eval(window)
        logits = np.array(llm.scores[:n_ctx], dtype=np.float64)
        for j in range(n_ctx // 2, n_ctx - 1):
            row = logits[j]
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            nll += lse - row[window[j + 1]]
            count += 1
    return math.exp(nll / count), count


def main():
    no_extra_buffers()
    llm = llama_cpp.Llama(model_path=MODEL, n_ctx=2048, n_threads=2, logits_all=True, verbose=False,
                          flash_attn=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    cases = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        out = []
        for tok in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                                reset=True):
            out.append(int(tok))
            if tok == llm.token_eos() or len(out) == N_PREDICT:
                break
        # llama.cpp's own margin (best - second-best logit) at every greedy step, so a
        # test can tell a near-tie from a real disagreement.
        llm.reset()
        llm.eval(ids + out[:-1])
        margins = []
        for j in range(len(out)):
            row = np.array(llm.scores[len(ids) - 1 + j], dtype=np.float64)
            top = np.sort(row)[-2:]
            margins.append(round(float(top[1] - top[0]), 5))
        cases.append({"prompt": prompt, "prompt_ids": ids, "generated_ids": out, "greedy_margins": margins})
        print(repr(llm.detokenize(out).decode(errors="replace"))[:120], file=sys.stderr)

    text = open(os.path.join(ROOT, "..", "shared", "data", "refs", "story.txt")).read()
    toks = llm.tokenize(text.encode(), add_bos=True, special=False)
    n_chunks = len(toks) // PPL_CTX
    ppl, count = perplexity(llm, toks, PPL_CTX)
    print(f"ppl {ppl:.4f} over {count} tokens", file=sys.stderr)
    ref = {"generator": "tools/gen_llamacpp_refs.py", "llama_cpp_python": llama_cpp.__version__,
           "model": os.path.basename(MODEL), "kv_cache": "f32", "n_predict": N_PREDICT, "cases": cases,
           "perplexity": {"text_file": "story.txt", "n_ctx": PPL_CTX, "n_tokens": len(toks), "n_windows": n_chunks,
                          "ppl": ppl}}
    with open(OUT, "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    main()
