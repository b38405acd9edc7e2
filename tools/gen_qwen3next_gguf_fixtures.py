#!/usr/bin/env python3
"""Qwen3-Next GGUF fixtures (issue 15): a tiny random Qwen3NextForCausalLM that llama.cpp
can load, transformers' outputs on it, llama.cpp's conversion of it and llama.cpp's
outputs (tests/models/qwen3next_gguf_test.cc).

Why a model of its own (tests/fixtures/models/qwen3next-*-f32 are transformers-only):
llama.cpp's qwen3next sizes its delta-rule state and ssm tensors with the value head dim
equal to the key head dim (llama_model_qwen3next::load_arch_tensors: head_v_dim =
ssm_d_state), and requires a router in every layer (no mlp_only_layers). So here:
hidden 64, 4 layers (0-2 Gated DeltaNet, 3 gated full attention), 2 key / 4 value heads
of 16 (grouped value heads: r = 2), conv kernel 4, 4 experts top-2 (intermediate 16) +
a sigmoid-gated shared expert (32) in every layer, 4 attention heads / 2 KV heads of 16,
partial RoPE 0.25, vocab 256, random norms (1 + 0.2·N) and A_log / dt_bias (N(0, 0.5)).

Stage `hf` writes tests/fixtures/qwen3next/qwen3next-h64/ (config.json, model.safetensors
from save_pretrained: one tensor per expert, a 200-token byte-level BPE
(gen_converted_fixtures.write_tokenizer) with Qwen3's chat template
(../shared/data/chat-templates/Qwen-Qwen3-0.6B.jinja, as Qwen3-Next uses; for the
`spool chat` test), reference.json: prompt logits, 32 greedy ids
with margins, and logits at every position of SEQ_LEN ids (prompt + greedy + fixed ids)
from one forward — transformers' torch fallback: chunked delta rule, chunk 64, so two
chunks). The seed is the first whose every greedy step wins by MIN_MARGIN and every
routing decision by gen_moe_fixtures.MIN_ROUTE_GAP.
Stage `gguf` converts that folder with llama.cpp's convert_hf_to_gguf.py (--outtype f32,
--no-mtp: the model has no MTP block) to tests/fixtures/qwen3next/qwen3next-h64.gguf and
records llama-cpp-python's outputs into qwen3next-h64.llamacpp.json (f32 KV cache, no
flash attention, no extra buffer types): logits at every position of the same SEQ_LEN
ids (exact f32), its own 32 greedy ids from the prompt with margins, and perplexity
(tools/gen_llamacpp_refs.py's method) over those ids in windows of PPL_CTX.
Quantised files: tools/gen_qwen3next_quant_fixtures.py (a larger, well-conditioned model;
this one amplifies quantisation noise too much for a tight comparison — docs/parts/qwen3next.md).

Pinned: transformers 5.25.0 (the script refuses others), llama-cpp-python 0.3.36 (its
sdist's vendor/llama.cpp for the converter). Not run in CI. Needs torch, transformers,
tokenizers, safetensors, llama-cpp-python:
  PYTHONPATH=<sdist>/vendor/llama.cpp/gguf-py \\
    python3 tools/gen_qwen3next_gguf_fixtures.py --llama-cpp <sdist>/vendor/llama.cpp
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "qwen3next")
NAME = "qwen3next-h64"
TRANSFORMERS_VERSION = "5.25.0"
PROMPT = [1, 17, 42, 99, 7, 250, 3, 64, 128, 11]
N_NEW = 32
SEQ_LEN = 80      # > 64: transformers' and spool's chunked delta rule run two chunks
PPL_CTX = 40
MIN_MARGIN = 2e-3

CONFIG = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=256,
              rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0, partial_rotary_factor=0.25,
              linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
              linear_num_key_heads=2, linear_num_value_heads=4, num_experts=4, num_experts_per_tok=2,
              moe_intermediate_size=16, shared_expert_intermediate_size=32, norm_topk_prob=True,
              decoder_sparse_step=1, mlp_only_layers=[], full_attention_interval=4,
              bos_token_id=1, eos_token_id=2, initializer_range=0.08)


def sequence(new):
    ids = PROMPT + new
    x = 12345
    while len(ids) < SEQ_LEN:
        x = (x * 1103515245 + 12345) % (1 << 31)
        ids.append(3 + x % 250)
    return ids[:SEQ_LEN]


def build(seed):
    import torch
    import transformers
    torch.manual_seed(seed)
    cfg = transformers.Qwen3NextConfig(**CONFIG)
    model = transformers.Qwen3NextForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1:
                continue
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:  # A_log, dt_bias
                p.copy_(0.5 * torch.randn_like(p))
    return model


def greedy(model):
    import torch
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
        out = model.generate(ids, max_new_tokens=N_NEW, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=N_NEW)
        new = out[0, len(PROMPT):].tolist()
        full = model(out[:, :-1]).logits[0].float()
    margins = []
    for t in range(len(PROMPT) - 1, full.shape[0]):
        top = torch.topk(full[t], 2).values
        margins.append(float(top[0] - top[1]))
    return logits, new, margins


def stage_hf(a):
    import torch
    import transformers
    import gen_converted_fixtures as conv
    from gen_moe_fixtures import MIN_ROUTE_GAP, route_gap
    if transformers.__version__ != TRANSFORMERS_VERSION:
        sys.exit(f"transformers {transformers.__version__}: this generator is pinned to {TRANSFORMERS_VERSION}")
    for seed in range(1, 400):
        model = build(seed)
        logits, new, margins = greedy(model)
        if min(margins) < MIN_MARGIN:
            continue
        gap = route_gap(model)
        if gap >= MIN_ROUTE_GAP:
            break
    ids = sequence(new)
    with torch.no_grad():
        seq_logits = model(torch.tensor([ids])).logits[0].float()
    d = os.path.join(OUT, NAME)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.config.architectures = ["Qwen3NextForCausalLM"]
    model.save_pretrained(d)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    conv.write_tokenizer(d, CONFIG["vocab_size"], "Qwen-Qwen3-0.6B")  # Qwen3-Next uses Qwen3's template
    rnd = lambda rows: [[round(float(x), 6) for x in row] for row in rows]
    ref = {
        "generator": "tools/gen_qwen3next_gguf_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "architecture": "Qwen3NextForCausalLM",
        "storage_dtype": "float32",
        "compute_dtype": "float32",
        "seed": seed,
        "min_route_gap": gap,
        "prompt_ids": PROMPT,
        "logits": rnd(logits),
        "greedy_ids": new,
        "greedy_margins": [round(m, 5) for m in margins],
        "sequence_ids": ids,
        "sequence_logits": rnd(seq_logits),
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"{NAME}: seed {seed}, min margin {min(margins):.4f}, route gap {gap:.4f}, greedy {new[:8]}...",
          file=sys.stderr)


def convert(llama_cpp_dir, src, out):
    """convert_hf_to_gguf.py --outtype f32 --no-mtp (pre-tokenizer forced to llama-bpe, as
    gen_converted_fixtures.convert: the converter refuses unknown tokenizers)."""
    code = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {llama_cpp_dir!r})\n"
        f"sys.path.insert(1, {os.path.join(llama_cpp_dir, 'gguf-py')!r})\n"
        "from conversion import base\n"
        "base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'llama-bpe'\n"
        f"sys.argv = ['convert_hf_to_gguf.py', '--outtype', 'f32', '--no-mtp', '--outfile', {out!r}, {src!r}]\n"
        f"runpy.run_path({os.path.join(llama_cpp_dir, 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"convert_hf_to_gguf.py failed on {src}:\n{r.stderr[-3000:]}")


def llamacpp_refs(llama_cpp, perplexity, path, seq):
    """llama-cpp-python's outputs on `path` (f32 KV cache, no flash attention): logits at
    every position of `seq` (exact f32), its 32 greedy ids from PROMPT with margins, and
    perplexity over `seq` in windows of PPL_CTX."""
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False, flash_attn=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    exact = lambda row: [float(str(np.float32(x))) for x in row]
    llm.reset()
    llm.eval(seq)
    seq_logits = [exact(llm.scores[i]) for i in range(len(seq))]
    llm.reset()
    gen = []
    for tok in llm.generate(PROMPT, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        gen.append(int(tok))
        if len(gen) == N_NEW:
            break
    llm.reset()
    llm.eval(PROMPT + gen[:-1])
    margins = []
    for j in range(len(gen)):
        row = np.sort(np.array(llm.scores[len(PROMPT) - 1 + j], dtype=np.float64))
        margins.append(round(float(row[-1] - row[-2]), 5))
    ppl, count = perplexity(llm, seq, PPL_CTX, bos=None)
    return {"kv_cache": "f32", "flash_attn": False, "prompt_ids": PROMPT, "greedy_ids": gen, "greedy_margins": margins,
            "sequence_ids": seq, "sequence_logits": seq_logits,
            "perplexity": {"token_ids": seq, "n_ctx": PPL_CTX, "bos": None, "scored_tokens": count, "ppl": ppl}}


def stage_gguf(a):
    import llama_cpp
    import gen_rope_freqs_fixture as rf
    from gen_llamacpp_refs import perplexity
    rf.no_extra_buffers(llama_cpp)
    d = os.path.join(OUT, NAME)
    out = os.path.join(OUT, NAME + ".gguf")
    convert(a.llama_cpp, d, out)
    with open(os.path.join(d, "reference.json")) as f:
        ref = json.load(f)
    ppl_refs = llamacpp_refs(llama_cpp, perplexity, out, ref["sequence_ids"])
    refs = {"generator": "tools/gen_qwen3next_gguf_fixtures.py", "llama_cpp_python": llama_cpp.__version__,
            **ppl_refs}
    with open(os.path.join(OUT, NAME + ".llamacpp.json"), "w") as f:
        json.dump(refs, f)
    print(f"{NAME}.gguf: {os.path.getsize(out)} bytes, llama.cpp greedy {refs['greedy_ids'][:8]}..., "
          f"min margin {min(refs['greedy_margins'])}, HF greedy {ref['greedy_ids'][:8]}..., "
          f"ppl {refs['perplexity']['ppl']:.4f}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("--stage", choices=["all", "hf", "gguf"], default="all")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if a.stage in ("all", "hf"):
        stage_hf(a)
    if a.stage in ("all", "gguf"):
        stage_gguf(a)


if __name__ == "__main__":
    main()
