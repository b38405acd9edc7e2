#!/usr/bin/env python3
"""Random-weight Llama models with real shapes, for weight-streaming benchmarks.

  tools/gen_synthetic_model.py --shape llama-3.2-1b --format gguf --out bench/out/llama-3.2-1b-bf16.gguf
  tools/gen_synthetic_model.py --shape llama-3.1-8b --format safetensors --out bench/out/llama-3.1-8b-bf16/

Shapes are the published configs of meta-llama/Llama-3.2-1B (tied embeddings) and
meta-llama/Llama-3.1-8B (untied): same tensor names, dtypes (bf16) and sizes, so
I/O and compute cost what the real models cost. The weights are random (normal,
std 0.02) and the outputs meaningless: for speed measurements only.

GGUF output carries the real Llama-3 vocabulary (copied from the shared test data's
ggml-vocab-llama-bpe.rebuilt.gguf when present) so that llama.cpp and spool both load
it, and llama3 rope scaling the way llama.cpp's convert_hf_to_gguf.py stores it: no
rope.scaling.* keys, a `rope_freqs.weight` f32 tensor of head_dim/2 frequency divisors
(first in the file, as the converter writes it), plus attention.key_length/value_length.
safetensors output is an HF folder (config.json with the llama3 `rope_scaling`, 5 GB
shards) without a tokenizer: run it with --prompt-ids.

Memory: one tensor at a time (at most the 1 GB embedding table), never the model.

MoE shapes (`--shape qwen3-30b-a3b`, `--shape qwen3-30b-a3b-l12` = its first 12 of 48
layers, `--format gguf` only) are written as GGUF arch `qwen3moe` with llama.cpp's
names: ffn_gate_inp [E, D] (f32, as llama.cpp's quantizer leaves it), the 3-D expert
stacks ffn_{gate,up}_exps [E, F, D] and ffn_down_exps [E, D, F], per-head attn_q_norm /
attn_k_norm. Every matrix (embedding, attention, experts, output) is Q4_0 (random
zero-mean nibbles, f16 block scales 0.0045 so values have std ≈ 0.02); norms f32. Real
Qwen3-30B-A3B quantised by llama.cpp to Q4_0 keeps output in Q6_K and its vocabulary is
151,936; here output is Q4_0 and the vocabulary is Llama-3's 128,256 (the only
tokenizer in the shared data), so the file is ≈ 0.1 GB smaller than the real one.

`--shape olmoe-1b-7b` is OLMoE-1B-7B (16 layers, hidden 2048, 16 heads of 128, 64
experts of ffn 1024, top-8) as GGUF arch `olmoe`: every matrix bf16, q/k norms over the
whole projection ([2048]), Llama-3's vocabulary instead of OLMoE's 50,304.

`--shape gpt-oss-20b` is openai/gpt-oss-20b's shape (24 layers, hidden 2880, 64 heads / 8
KV heads of 64, 32 experts of ffn 2880, top-4; even layers slide over 128 keys; yarn ×32
over 4096; q/k/v/o biases, attention sinks, router and expert biases) as GGUF arch
`gpt-oss` with llama.cpp's names (attn_sinks, post_attention_norm as the FFN norm,
ffn_*_exps.bias): experts MXFP4 (GGUF blocks: random E2M1 codes, E8M0 exponent byte 120 so
weights have std ≈ 0.023, as the released checkpoint keeps them), every other matrix bf16,
norms/biases/sinks/router f32. The vocabulary has the real size, 201,088 (so token_embd and
output cost what they cost in the real file): Llama-3's 128,256 tokens followed by
`[PAD<i>]` tokens of type UNUSED, as llama.cpp's converter pads a vocabulary shorter than
vocab_size. --residual-scale also scales attn_output.bias and ffn_down_exps.bias (they
write into the residual stream too); MXFP4 scales are powers of two, so the expert part of
S is rounded to one (0.002 -> 2^-9). File ≈ 13.8 GB: 10.2 GB of MXFP4 experts, 3.6 GB
of bf16 (what llama.cpp's converter writes from the bf16 checkpoint with its default
--outtype auto; 2.3 GB of it token_embd and output).
`--shape gpt-oss-tiny` is the same with 2 layers, hidden 256, 8 experts of 256, top-4.

`--shape qwen3next-80b-a3b` is Qwen3-Next-80B-A3B's shape (transformers 5.25.0's
Qwen3NextConfig defaults, which its docstring gives as Qwen/Qwen3-Next-80B-A3B-Instruct's:
48 layers, hidden 2048, 3 Gated DeltaNet : 1 gated full attention per 4 layers, DeltaNet
16 key heads / 32 value heads of 128, conv kernel 4, attention 16 heads / 2 KV heads of
256 with partial RoPE 0.25, every layer MoE with 512 experts of 512, top-10, plus a
sigmoid-gated shared expert of 512; vocabulary 151,936) as GGUF arch `qwen3next` the way
llama.cpp's convert_hf_to_gguf.py writes it (tensor names and keys as
tools/gen_qwen3next_gguf_fixtures.py's converted fixture: attn_qkv + attn_gate split,
ssm_ba, ssm_conv1d [C, K], ssm_a = -A, ssm_dt.bias, ssm_norm, attn_q carrying the output
gate, ffn_*_exps / ffn_*_shexp / ffn_gate_inp_shexp, norms stored as 1 + w: here 1).
Every matrix Q4_0 (as `llama-quantize Q4_0` would leave them, except that it keeps output
in Q6_K), router, shared-expert gate, conv, A, dt_bias and norms f32. A = U(0, 16) as
transformers initialises it, dt_bias 1. Vocabulary: Llama-3's tokens padded with [PAD<i>]
to 151,936, with Qwen3's chat template (../shared/data/chat-templates/Qwen-Qwen3-0.6B.jinja,
which Qwen3-Next uses) so that chat front ends render prompts. All 48 layers in Q4_0 are
43.5 GB of experts; `--layers N` writes the first N layers (N a multiple of 4 keeps the
3 : 1 pattern), so each layer costs what it costs in the real model.
--residual-scale scales ssm_out, attn_output, ffn_down_exps and ffn_down_shexp.

`--residual-scale S` (default 1) multiplies attn_output and ffn_down_exps, the matrices
that write into the residual stream, by S. With S = 1, random-weight attention adds a
vector shared by all positions (it averages the values) that soon outweighs each token's
embedding, and every layer past the first few routes every token to the same experts
(measured on the 12-layer shape: 24 distinct experts of 128 at layer 9 over 39
positions). With S small the residual stream stays close to the token's own embedding
and each layer routes each token independently (S = 0.003 on 12 layers: 112-121 distinct,
7.5 of 8 experts new at every position): the expert cache's worst case, with no temporal
locality; real models lie between. bench/moe/run.py uses 0.0015 for 48 layers, 0.003 for 16.

`--router-zipf A` (default 0: plain N(0, 0.02) router rows, which route almost
uniformly) skews expert popularity: in every layer, row e of ffn_gate_inp is multiplied
by (1 + rank_l(e))^-A, rank_l a random permutation of 0..E-1 per layer. A router logit
is then ~ N(0, s_e^2 |x|^2 0.02^2), so experts with larger rows win top-k more often;
the resulting popularity is Zipf-like, not exactly Zipf(A): measure it with
`spool run --trace-routing`.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

SHAPES = {
    "llama-3.2-1b": dict(n_layer=16, n_embd=2048, n_ff=8192, n_head=32, n_head_kv=8, n_vocab=128256, tied=True,
                         ctx=131072, rope_theta=500000.0, rms_eps=1e-5,
                         rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=8192)),
    "llama-3.1-8b": dict(n_layer=32, n_embd=4096, n_ff=14336, n_head=32, n_head_kv=8, n_vocab=128256, tied=False,
                         ctx=131072, rope_theta=500000.0, rms_eps=1e-5,
                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=8192)),
    # Gemma-3-12B's text model (hidden 3840, 16 heads and 8 KV heads of 256, ffn 15360,
    # vocabulary 262,208, tied, window 1024, 5 sliding : 1 global) with its first 6 of 48
    # layers (5 sliding + 1 global); "-dense": the same with every layer global (a dense
    # model of the same size, for the sliding-window KV benchmark).
    "gemma-3-12b-l6": dict(gemma=True, n_layer=6, n_embd=3840, n_ff=15360, n_head=16, n_head_kv=8, head_dim=256,
                           n_vocab=262208, tied=True, ctx=131072, rms_eps=1e-6, window=1024,
                           sliding_window_pattern=6),
    "gemma-3-12b-l6-dense": dict(gemma=True, dense=True, n_layer=6, n_embd=3840, n_ff=15360, n_head=16, n_head_kv=8,
                                 head_dim=256, n_vocab=262208, tied=True, ctx=131072, rms_eps=1e-6, window=1024,
                                 sliding_window_pattern=6),
    # Qwen/Qwen3-30B-A3B config.json (vocabulary: see the docstring).
    "qwen3-30b-a3b": dict(moe=True, n_layer=48, n_embd=2048, n_head=32, n_head_kv=4, head_dim=128, n_expert=128,
                          n_expert_used=8, n_ff_exp=768, n_vocab=128256, ctx=40960, rope_theta=1000000.0,
                          rms_eps=1e-6),
    "qwen3-30b-a3b-l12": dict(moe=True, n_layer=12, n_embd=2048, n_head=32, n_head_kv=4, head_dim=128, n_expert=128,
                              n_expert_used=8, n_ff_exp=768, n_vocab=128256, ctx=40960, rope_theta=1000000.0,
                              rms_eps=1e-6),
    # allenai/OLMoE-1B-7B-0924 config.json: bf16, q/k RMSNorm over the whole projection,
    # no top-k renormalisation (vocabulary: Llama-3's, see the docstring; the real one has 50,304).
    "olmoe-1b-7b": dict(moe=True, arch="olmoe", dtype="bf16", n_layer=16, n_embd=2048, n_head=16, n_head_kv=16,
                        head_dim=128, n_expert=64, n_expert_used=8, n_ff_exp=1024, n_ff=1024, n_vocab=128256,
                        ctx=4096, rope_theta=10000.0, rms_eps=1e-5),
    "olmoe-tiny": dict(moe=True, arch="olmoe", dtype="bf16", n_layer=2, n_embd=256, n_head=4, n_head_kv=4, head_dim=64,
                       n_expert=16, n_expert_used=4, n_ff_exp=128, n_ff=128, n_vocab=128256, ctx=4096,
                       rope_theta=10000.0, rms_eps=1e-5),
    "qwen3moe-tiny": dict(moe=True, n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_expert=16,
                          n_expert_used=4, n_ff_exp=128, n_vocab=128256, ctx=4096, rope_theta=1000000.0, rms_eps=1e-6),
    # openai/gpt-oss-20b config.json (vocabulary: Llama-3's tokens padded to its 201,088, see the docstring).
    "gpt-oss-20b": dict(moe=True, arch="gpt-oss", dtype="mxfp4", n_layer=24, n_embd=2880, n_head=64, n_head_kv=8,
                        head_dim=64, n_expert=32, n_expert_used=4, n_ff_exp=2880, n_ff=2880, n_vocab=201088,
                        ctx=131072, rope_theta=150000.0, rms_eps=1e-5, window=128, yarn_factor=32.0, yarn_orig=4096),
    "gpt-oss-tiny": dict(moe=True, arch="gpt-oss", dtype="mxfp4", n_layer=2, n_embd=256, n_head=4, n_head_kv=2,
                         head_dim=64, n_expert=8, n_expert_used=4, n_ff_exp=256, n_ff=256, n_vocab=201088,
                         ctx=131072, rope_theta=150000.0, rms_eps=1e-5, window=128, yarn_factor=32.0, yarn_orig=4096),
    # transformers 5.25.0 Qwen3NextConfig() defaults = Qwen3-Next-80B-A3B (see the docstring).
    "qwen3next-80b-a3b": dict(moe=True, arch="qwen3next", n_layer=48, n_embd=2048, n_head=16, n_head_kv=2,
                              head_dim=256, rope_frac=0.25, n_expert=512, n_expert_used=10, n_ff_exp=512,
                              n_ff_shexp=512, n_ff=5632, n_vocab=151936, ctx=262144, rope_theta=10000.0,
                              rms_eps=1e-6, full_attn_interval=4, lin_k_heads=16, lin_v_heads=32, lin_k_dim=128,
                              lin_v_dim=128, conv_kernel=4),
    # Small shape for quick checks of this script.
    "tiny": dict(n_layer=2, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_vocab=128256, tied=True, ctx=4096,
                 rope_theta=500000.0, rms_eps=1e-5,
                 rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                   original_max_position_embeddings=8192)),
}

VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "vocab",
                     "ggml-vocab-llama-bpe.rebuilt.gguf")


class RandomBF16:
    """bf16 bit patterns of N(0, 0.02) values: a 64 MiB pool read cyclically from a random start."""

    def __init__(self, seed, std=0.02):
        rng = np.random.default_rng(seed)
        f = (rng.standard_normal(32 << 20, dtype=np.float32) * np.float32(std)).astype(np.float32)
        self.pool = (f.view(np.uint32) >> 16).astype(np.uint16)
        self.rng = rng

    def tensor(self, n):
        s = int(self.rng.integers(0, len(self.pool)))
        rolled = np.concatenate([self.pool[s:], self.pool[:s]])
        return np.resize(rolled, n)


def tensors(cfg, hf):
    """(name, shape [n_out, n_in] or [n], is_norm) in file order."""
    D, F, L = cfg["n_embd"], cfg["n_ff"], cfg["n_layer"]
    hd = D // cfg["n_head"]
    KV = hd * cfg["n_head_kv"]
    out = []
    if cfg.get("gemma"):  # Gemma3ForCausalLM names (HF only)
        hd, QD = cfg["head_dim"], cfg["head_dim"] * cfg["n_head"]
        KV = hd * cfg["n_head_kv"]
        out.append(("model.embed_tokens.weight", [cfg["n_vocab"], D], False))
        for l in range(L):
            p = f"model.layers.{l}."
            out += [(p + "input_layernorm.weight", [D], True),
                    (p + "self_attn.q_proj.weight", [QD, D], False),
                    (p + "self_attn.k_proj.weight", [KV, D], False),
                    (p + "self_attn.v_proj.weight", [KV, D], False),
                    (p + "self_attn.q_norm.weight", [hd], True),
                    (p + "self_attn.k_norm.weight", [hd], True),
                    (p + "self_attn.o_proj.weight", [D, QD], False),
                    (p + "post_attention_layernorm.weight", [D], True),
                    (p + "pre_feedforward_layernorm.weight", [D], True),
                    (p + "mlp.gate_proj.weight", [F, D], False),
                    (p + "mlp.up_proj.weight", [F, D], False),
                    (p + "mlp.down_proj.weight", [D, F], False),
                    (p + "post_feedforward_layernorm.weight", [D], True)]
        out.append(("model.norm.weight", [D], True))
        return out
    if hf:
        out.append(("model.embed_tokens.weight", [cfg["n_vocab"], D], False))
        for l in range(L):
            p = f"model.layers.{l}."
            out += [(p + "input_layernorm.weight", [D], True),
                    (p + "self_attn.q_proj.weight", [D, D], False),
                    (p + "self_attn.k_proj.weight", [KV, D], False),
                    (p + "self_attn.v_proj.weight", [KV, D], False),
                    (p + "self_attn.o_proj.weight", [D, D], False),
                    (p + "post_attention_layernorm.weight", [D], True),
                    (p + "mlp.gate_proj.weight", [F, D], False),
                    (p + "mlp.up_proj.weight", [F, D], False),
                    (p + "mlp.down_proj.weight", [D, F], False)]
        out.append(("model.norm.weight", [D], True))
        if not cfg["tied"]:
            out.append(("lm_head.weight", [cfg["n_vocab"], D], False))
    else:
        out.append(("token_embd.weight", [cfg["n_vocab"], D], False))
        for l in range(L):
            p = f"blk.{l}."
            out += [(p + "attn_norm.weight", [D], True),
                    (p + "attn_q.weight", [D, D], False),
                    (p + "attn_k.weight", [KV, D], False),
                    (p + "attn_v.weight", [KV, D], False),
                    (p + "attn_output.weight", [D, D], False),
                    (p + "ffn_norm.weight", [D], True),
                    (p + "ffn_gate.weight", [F, D], False),
                    (p + "ffn_up.weight", [F, D], False),
                    (p + "ffn_down.weight", [D, F], False)]
        out.append(("output_norm.weight", [D], True))
        if not cfg["tied"]:
            out.append(("output.weight", [cfg["n_vocab"], D], False))
    return out


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def data_for(gen, shape, is_norm):
    if is_norm:
        return np.ones(numel(shape), dtype=np.float32)  # norms in f32 (as llama.cpp writes them)
    return gen.tensor(numel(shape))


def llama3_rope_factors(cfg):
    """The `rope_freqs.weight` values llama.cpp's converter writes for llama3 rope
    scaling (LlamaModel.generate_extra_tensors): per frequency 1 (short wavelengths),
    `factor` (long ones) or 1/((1-smooth)/factor + smooth) between; f32 arithmetic."""
    rs = cfg["rope_scaling"]
    dim = cfg["n_embd"] // cfg["n_head"]
    f32 = np.float32
    freqs = f32(1.0) / np.power(f32(cfg["rope_theta"]), np.arange(0, dim, 2, dtype=f32) / f32(dim))
    factor, low, high = f32(rs["factor"]), f32(rs["low_freq_factor"]), f32(rs["high_freq_factor"])
    old_ctx = f32(rs["original_max_position_embeddings"])
    out = []
    for freq in freqs:
        wavelen = f32(2 * np.pi) / freq
        if wavelen < old_ctx / high:
            out.append(f32(1))
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(f32(1) / ((f32(1) - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(cfg, out, seed):
    import gguf
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("synthetic-" + cfg["name"])
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    w.add_feed_forward_length(cfg["n_ff"])
    w.add_head_count(cfg["n_head"])
    w.add_head_count_kv(cfg["n_head_kv"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_eps"])
    w.add_rope_dimension_count(cfg["n_embd"] // cfg["n_head"])
    w.add_key_length(cfg["n_embd"] // cfg["n_head"])
    w.add_value_length(cfg["n_embd"] // cfg["n_head"])
    w.add_vocab_size(cfg["n_vocab"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    add_vocab(w)
    tlist = tensors(cfg, hf=False)
    rope_factors = llama3_rope_factors(cfg) if cfg.get("rope_scaling") else None
    if rope_factors is not None:
        w.add_tensor_info("rope_freqs.weight", [len(rope_factors)], np.dtype(np.float32), rope_factors.nbytes)
    for name, shape, is_norm in tlist:
        if is_norm:
            w.add_tensor_info(name, shape, np.dtype(np.float32), numel(shape) * 4)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.uint16), numel(shape) * 2, raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    if rope_factors is not None:
        w.write_tensor_data(rope_factors)
    gen = RandomBF16(seed)
    for i, (name, shape, is_norm) in enumerate(tlist):
        w.write_tensor_data(data_for(gen, shape, is_norm))
        print(f"\r{i + 1}/{len(tlist)} tensors", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.close()


def add_vocab(w, n_vocab=None):
    """Copies the Llama-3 tokenizer metadata (tokens, types, merges, special ids); with
    n_vocab larger than its 128,256 tokens, pads with [PAD<i>] UNUSED tokens as llama.cpp's
    converter does."""
    if not os.path.exists(VOCAB):
        print(f"warning: {VOCAB} not found: GGUF written without a tokenizer", file=sys.stderr)
        return
    import gguf
    r = gguf.GGUFReader(VOCAB)
    f = r.fields

    def strings(key):
        fld = f[key]
        return [bytes(fld.parts[i]).decode("utf-8") for i in fld.data]

    def scalar(key):
        fld = f[key]
        return fld.parts[fld.data[0]][0]

    w.add_tokenizer_model(bytes(f["tokenizer.ggml.model"].parts[f["tokenizer.ggml.model"].data[0]]).decode())
    if "tokenizer.ggml.pre" in f:
        w.add_tokenizer_pre(bytes(f["tokenizer.ggml.pre"].parts[f["tokenizer.ggml.pre"].data[0]]).decode())
    tokens = strings("tokenizer.ggml.tokens")
    types = f["tokenizer.ggml.token_type"]
    types = [int(types.parts[i][0]) for i in types.data]
    if n_vocab is not None and n_vocab > len(tokens):
        tokens += [f"[PAD{i}]" for i in range(len(tokens), n_vocab)]
        types += [int(gguf.TokenType.UNUSED)] * (n_vocab - len(types))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(strings("tokenizer.ggml.merges"))
    for key, fn in (("tokenizer.ggml.bos_token_id", w.add_bos_token_id), ("tokenizer.ggml.eos_token_id", w.add_eos_token_id)):
        if key in f:
            fn(int(scalar(key)))


def write_safetensors(cfg, out, seed, shard_bytes=5 << 30):
    os.makedirs(out, exist_ok=True)
    tlist = tensors(cfg, hf=True)
    shards, cur, size = [], [], 0
    for t in tlist:
        nb = numel(t[1]) * (4 if t[2] else 2)
        if cur and size + nb > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += nb
    shards.append(cur)
    gen = RandomBF16(seed)
    weight_map = {}
    for si, shard in enumerate(shards):
        fname = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for name, shape, is_norm in shard:
            nb = numel(shape) * (4 if is_norm else 2)
            header[name] = {"dtype": "F32" if is_norm else "BF16", "shape": shape, "data_offsets": [off, off + nb]}
            off += nb
            weight_map[name] = fname
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(os.path.join(out, fname), "wb") as fo:
            fo.write(struct.pack("<Q", len(h)))
            fo.write(h)
            for name, shape, is_norm in shard:
                data_for(gen, shape, is_norm).tofile(fo)
        print(f"{fname}: {len(shard)} tensors", file=sys.stderr)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as fo:
        json.dump({"metadata": {}, "weight_map": weight_map}, fo, indent=1)
    if cfg.get("gemma"):
        L, pat = cfg["n_layer"], cfg["sliding_window_pattern"]
        config = {
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": cfg["n_embd"],
            "intermediate_size": cfg["n_ff"], "num_hidden_layers": L, "num_attention_heads": cfg["n_head"],
            "num_key_value_heads": cfg["n_head_kv"], "head_dim": cfg["head_dim"],
            "query_pre_attn_scalar": cfg["head_dim"], "vocab_size": cfg["n_vocab"],
            "max_position_embeddings": cfg["ctx"], "rms_norm_eps": cfg["rms_eps"], "sliding_window": cfg["window"],
            "layer_types": ["full_attention" if cfg.get("dense") or (l + 1) % pat == 0 else "sliding_attention"
                            for l in range(L)],
            "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
            "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
            "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "bfloat16",
        }
        with open(os.path.join(out, "config.json"), "w") as fo:
            json.dump(config, fo, indent=1)
        return
    hd = cfg["n_embd"] // cfg["n_head"]
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": cfg["n_embd"],
        "intermediate_size": cfg["n_ff"], "num_hidden_layers": cfg["n_layer"], "num_attention_heads": cfg["n_head"],
        "num_key_value_heads": cfg["n_head_kv"], "head_dim": hd, "vocab_size": cfg["n_vocab"],
        "max_position_embeddings": cfg["ctx"], "rms_norm_eps": cfg["rms_eps"], "rope_theta": cfg["rope_theta"],
        "tie_word_embeddings": cfg["tied"], "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
    }
    if cfg.get("rope_scaling"):
        config["rope_scaling"] = cfg["rope_scaling"]
    with open(os.path.join(out, "config.json"), "w") as fo:
        json.dump(config, fo, indent=1)


Q4_0_BLOCK = 32  # weights per block; 18 bytes: f16 scale + 16 bytes of nibbles


class RandomQ4_0:
    """Q4_0 blocks with random nibbles and scale 0.0045 (uniform weights -7..7 have std
    4.3: weights std ≈ 0.02): a 64 MiB pool of blocks read cyclically from a random start."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        n = (64 << 20) // 18
        blocks = np.empty((n, 18), dtype=np.uint8)
        blocks[:, 0:2] = np.full(n, 0.0045, dtype=np.float16).view(np.uint8).reshape(n, 2)
        # Nibbles 1..15 (weights -7..7 times the scale): zero mean. Nibbles 0..15 would have
        # mean -0.5: every matrix would add a common direction that grows along the layers
        # until every token routes to the same experts.
        lo = self.rng.integers(1, 16, size=(n, 16), dtype=np.uint8)
        hi = self.rng.integers(1, 16, size=(n, 16), dtype=np.uint8)
        blocks[:, 2:] = lo | (hi << 4)
        self.pool = blocks

    def tensor(self, n_weights, scale=1.0):
        """n_weights Q4_0 weights as bytes; `scale` multiplies the block scales (std 0.02 × scale)."""
        assert n_weights % Q4_0_BLOCK == 0
        nb = n_weights // Q4_0_BLOCK
        s = int(self.rng.integers(0, len(self.pool)))
        rolled = np.concatenate([self.pool[s:], self.pool[:s]])
        blocks = np.resize(rolled, (nb, 18))
        if scale != 1.0:
            blocks[:, 0:2] = np.full(nb, 0.0045 * scale, dtype=np.float16).view(np.uint8).reshape(nb, 2)
        return blocks.reshape(-1)


MXFP4_BLOCK = 32  # weights per block; 17 bytes: E8M0 exponent + 16 bytes of E2M1 nibbles


class RandomMXFP4:
    """GGUF MXFP4 blocks with random E2M1 codes and exponent byte 120: GGML's doubled E2M1
    values (±0..12, std 5.85) × 2^(120 − 128) give weights of std ≈ 0.023. A 64 MiB pool."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        n = (64 << 20) // 17
        blocks = np.empty((n, 17), dtype=np.uint8)
        blocks[:, 0] = 120
        blocks[:, 1:] = self.rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        self.pool = blocks

    def tensor(self, n_weights, scale=1.0):
        assert n_weights % MXFP4_BLOCK == 0
        nb = n_weights // MXFP4_BLOCK
        s = int(self.rng.integers(0, len(self.pool)))
        blocks = np.resize(np.concatenate([self.pool[s:], self.pool[:s]]), (nb, 17))
        if scale != 1.0:  # a power of two closest to `scale` (E8M0 scales only)
            shift = int(round(np.log2(scale)))
            blocks[:, 0] = np.clip(120 + shift, 0, 255).astype(np.uint8)
        return blocks.reshape(-1)


def gptoss_tensors(cfg):
    """llama.cpp's gpt-oss layout (src/models/openai-moe.cpp): kinds as moe_tensors, plus
    bias (f32 vectors and [E, F] bias tables) and expert (MXFP4)."""
    D, E, F = cfg["n_embd"], cfg["n_expert"], cfg["n_ff_exp"]
    hd = cfg["head_dim"]
    Q, KV = hd * cfg["n_head"], hd * cfg["n_head_kv"]
    out = [("token_embd.weight", [cfg["n_vocab"], D], "matrix")]
    for l in range(cfg["n_layer"]):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", [D], "norm"),
                (p + "attn_q.weight", [Q, D], "matrix"), (p + "attn_q.bias", [Q], "bias"),
                (p + "attn_k.weight", [KV, D], "matrix"), (p + "attn_k.bias", [KV], "bias"),
                (p + "attn_v.weight", [KV, D], "matrix"), (p + "attn_v.bias", [KV], "bias"),
                (p + "attn_output.weight", [D, Q], "residual"), (p + "attn_output.bias", [D], "bias_residual"),
                (p + "attn_sinks.weight", [cfg["n_head"]], "bias"),
                (p + "post_attention_norm.weight", [D], "norm"),
                (p + "ffn_gate_inp.weight", [E, D], "router"), (p + "ffn_gate_inp.bias", [E], "bias"),
                (p + "ffn_gate_exps.weight", [E, F, D], "expert"), (p + "ffn_gate_exps.bias", [E, F], "bias"),
                (p + "ffn_up_exps.weight", [E, F, D], "expert"), (p + "ffn_up_exps.bias", [E, F], "bias"),
                (p + "ffn_down_exps.weight", [E, D, F], "expert_residual"),
                (p + "ffn_down_exps.bias", [E, D], "bias_residual")]
    out.append(("output_norm.weight", [D], "norm"))
    out.append(("output.weight", [cfg["n_vocab"], D], "matrix"))
    return out


def write_gptoss_gguf(cfg, out, seed, zipf, residual_scale):
    import gguf
    w = gguf.GGUFWriter(out, "gpt-oss")
    w.add_name("synthetic-" + cfg["name"] + (f"-zipf{zipf:g}" if zipf > 0 else "") +
               (f"-res{residual_scale:g}" if residual_scale != 1.0 else ""))
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    w.add_feed_forward_length(cfg["n_ff"])
    w.add_head_count(cfg["n_head"])
    w.add_head_count_kv(cfg["n_head_kv"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_eps"])
    w.add_expert_count(cfg["n_expert"])
    w.add_expert_used_count(cfg["n_expert_used"])
    w.add_expert_feed_forward_length(cfg["n_ff_exp"])
    w.add_sliding_window(cfg["window"])
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(cfg["yarn_factor"])
    w.add_rope_scaling_orig_ctx_len(cfg["yarn_orig"])
    w.add_vocab_size(cfg["n_vocab"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
    add_vocab(w, cfg["n_vocab"])
    tlist = gptoss_tensors(cfg)
    for name, shape, kind in tlist:
        if kind in ("norm", "router") or kind.startswith("bias"):
            w.add_tensor_info(name, shape, np.dtype(np.float32), numel(shape) * 4)
        elif kind.startswith("expert"):
            byte_shape = shape[:-1] + [shape[-1] // MXFP4_BLOCK * 17]
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), numel(byte_shape),
                              raw_dtype=gguf.GGMLQuantizationType.MXFP4)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.uint16), numel(shape) * 2, raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    gen, gen_res = RandomBF16(seed), RandomBF16(seed + 2, std=0.02 * residual_scale)
    experts = RandomMXFP4(seed + 3)
    rng = np.random.default_rng(seed + 1)
    for i, (name, shape, kind) in enumerate(tlist):
        if kind == "norm":
            w.write_tensor_data(np.ones(numel(shape), dtype=np.float32))
        elif kind.startswith("bias"):
            std = 0.02 * (residual_scale if kind == "bias_residual" else 1.0)
            w.write_tensor_data((rng.standard_normal(numel(shape), dtype=np.float32) * np.float32(std)))
        elif kind == "router":
            w.write_tensor_data(router_rows(rng, shape[0], shape[1], zipf).reshape(-1))
        elif kind.startswith("expert"):
            w.write_tensor_data(experts.tensor(numel(shape), residual_scale if kind == "expert_residual" else 1.0))
        else:
            w.write_tensor_data((gen_res if kind == "residual" else gen).tensor(numel(shape)))
        print(f"\r{i + 1}/{len(tlist)} tensors", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.close()


def moe_tensors(cfg):
    """(name, numpy-order shape, kind) in file order; kind: norm (f32), router (f32),
    matrix (the file's dtype), residual (a matrix that writes into the residual stream:
    attn_output and ffn_down_exps, scaled by --residual-scale)."""
    D, E, F = cfg["n_embd"], cfg["n_expert"], cfg["n_ff_exp"]
    hd = cfg["head_dim"]
    Q, KV = hd * cfg["n_head"], hd * cfg["n_head_kv"]
    # Qwen3-MoE normalises q and k per head; OLMoE over the whole projection.
    qn, kn = ([hd], [hd]) if cfg.get("arch", "qwen3moe") == "qwen3moe" else ([Q], [KV])
    out = [("token_embd.weight", [cfg["n_vocab"], D], "matrix")]
    for l in range(cfg["n_layer"]):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", [D], "norm"),
                (p + "attn_q.weight", [Q, D], "matrix"),
                (p + "attn_k.weight", [KV, D], "matrix"),
                (p + "attn_v.weight", [KV, D], "matrix"),
                (p + "attn_output.weight", [D, Q], "residual"),
                (p + "attn_q_norm.weight", qn, "norm"),
                (p + "attn_k_norm.weight", kn, "norm"),
                (p + "ffn_norm.weight", [D], "norm"),
                (p + "ffn_gate_inp.weight", [E, D], "router"),
                (p + "ffn_gate_exps.weight", [E, F, D], "matrix"),
                (p + "ffn_up_exps.weight", [E, F, D], "matrix"),
                (p + "ffn_down_exps.weight", [E, D, F], "residual")]
    out.append(("output_norm.weight", [D], "norm"))
    out.append(("output.weight", [cfg["n_vocab"], D], "matrix"))
    return out


def router_rows(rng, E, D, zipf):
    """[E, D] f32 router: N(0, 0.02) rows, row e scaled by (1 + rank(e))^-zipf."""
    w = rng.standard_normal((E, D), dtype=np.float32) * np.float32(0.02)
    if zipf > 0:
        rank = rng.permutation(E)
        w *= ((1.0 + rank) ** -zipf).astype(np.float32)[:, None]
    return w


def write_moe_gguf(cfg, out, seed, zipf, residual_scale):
    import gguf
    arch, bf16 = cfg.get("arch", "qwen3moe"), cfg.get("dtype", "q4_0") == "bf16"
    w = gguf.GGUFWriter(out, arch)
    w.add_name("synthetic-" + cfg["name"] + (f"-zipf{zipf:g}" if zipf > 0 else "") +
               (f"-res{residual_scale:g}" if residual_scale != 1.0 else ""))
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    # Qwen3-30B-A3B's (unused) dense intermediate_size; OLMoE's experts use this one.
    w.add_feed_forward_length(cfg.get("n_ff", 6144))
    w.add_head_count(cfg["n_head"])
    w.add_head_count_kv(cfg["n_head_kv"])
    if arch == "qwen3moe":
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
        w.add_expert_feed_forward_length(cfg["n_ff_exp"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_eps"])
    w.add_expert_count(cfg["n_expert"])
    w.add_expert_used_count(cfg["n_expert_used"])
    w.add_vocab_size(cfg["n_vocab"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if bf16 else gguf.LlamaFileType.MOSTLY_Q4_0)
    add_vocab(w)
    tlist = moe_tensors(cfg)
    for name, shape, kind in tlist:
        if kind in ("norm", "router"):
            w.add_tensor_info(name, shape, np.dtype(np.float32), numel(shape) * 4)
        elif bf16:
            w.add_tensor_info(name, shape, np.dtype(np.uint16), numel(shape) * 2, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            byte_shape = shape[:-1] + [shape[-1] // Q4_0_BLOCK * 18]
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), numel(byte_shape),
                              raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    if bf16:
        gen, gen_res = RandomBF16(seed), RandomBF16(seed + 2, std=0.02 * residual_scale)
        matrix = lambda n, kind: (gen_res if kind == "residual" else gen).tensor(n)  # noqa: E731
    else:
        gen = RandomQ4_0(seed)
        matrix = lambda n, kind: gen.tensor(n, residual_scale if kind == "residual" else 1.0)  # noqa: E731
    router_rng = np.random.default_rng(seed + 1)
    for i, (name, shape, kind) in enumerate(tlist):
        if kind == "norm":
            w.write_tensor_data(np.ones(numel(shape), dtype=np.float32))
        elif kind == "router":
            w.write_tensor_data(router_rows(router_rng, shape[0], shape[1], zipf).reshape(-1))
        else:
            w.write_tensor_data(matrix(numel(shape), kind))
        print(f"\r{i + 1}/{len(tlist)} tensors", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.close()


QWEN3_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                              "chat-templates", "Qwen-Qwen3-0.6B.jinja")


def qwen3next_tensors(cfg):
    """llama.cpp's qwen3next GGUF layout (numpy-order shapes); kinds as moe_tensors, plus
    f32 vectors ssm_a (A), ssm_dt (dt_bias), conv (f32 [C, K]) and router (f32, also the
    shared-expert gate [1, D])."""
    D, E, F, Fs = cfg["n_embd"], cfg["n_expert"], cfg["n_ff_exp"], cfg["n_ff_shexp"]
    hd = cfg["head_dim"]
    nk, nv, dk, dv = cfg["lin_k_heads"], cfg["lin_v_heads"], cfg["lin_k_dim"], cfg["lin_v_dim"]
    conv_dim = 2 * nk * dk + nv * dv
    out = [("token_embd.weight", [cfg["n_vocab"], D], "matrix")]
    for l in range(cfg["n_layer"]):
        p = f"blk.{l}."
        out.append((p + "attn_norm.weight", [D], "norm"))
        if (l + 1) % cfg["full_attn_interval"] != 0:  # Gated DeltaNet
            out += [(p + "ssm_a", [nv], "ssm_a"),
                    (p + "ssm_conv1d.weight", [conv_dim, cfg["conv_kernel"]], "conv"),
                    (p + "ssm_dt.bias", [nv], "ssm_dt"),
                    (p + "ssm_ba.weight", [2 * nv, D], "matrix"),
                    (p + "attn_qkv.weight", [conv_dim, D], "matrix"),
                    (p + "attn_gate.weight", [nv * dv, D], "matrix"),
                    (p + "ssm_norm.weight", [dv], "norm"),
                    (p + "ssm_out.weight", [D, nv * dv], "residual")]
        else:  # gated full attention: attn_q = per head [query, gate]
            out += [(p + "attn_q.weight", [2 * hd * cfg["n_head"], D], "matrix"),
                    (p + "attn_k.weight", [hd * cfg["n_head_kv"], D], "matrix"),
                    (p + "attn_v.weight", [hd * cfg["n_head_kv"], D], "matrix"),
                    (p + "attn_output.weight", [D, hd * cfg["n_head"]], "residual"),
                    (p + "attn_q_norm.weight", [hd], "norm"),
                    (p + "attn_k_norm.weight", [hd], "norm")]
        out += [(p + "post_attention_norm.weight", [D], "norm"),
                (p + "ffn_gate_inp.weight", [E, D], "router"),
                (p + "ffn_gate_exps.weight", [E, F, D], "matrix"),
                (p + "ffn_up_exps.weight", [E, F, D], "matrix"),
                (p + "ffn_down_exps.weight", [E, D, F], "residual"),
                (p + "ffn_gate_inp_shexp.weight", [1, D], "shexp_gate"),
                (p + "ffn_gate_shexp.weight", [Fs, D], "matrix"),
                (p + "ffn_up_shexp.weight", [Fs, D], "matrix"),
                (p + "ffn_down_shexp.weight", [D, Fs], "residual")]
    out.append(("output_norm.weight", [D], "norm"))
    out.append(("output.weight", [cfg["n_vocab"], D], "matrix"))
    return out


def write_qwen3next_gguf(cfg, out, seed, zipf, residual_scale):
    import gguf
    arch = "qwen3next"
    w = gguf.GGUFWriter(out, arch)
    w.add_name("synthetic-" + cfg["name"] + (f"-l{cfg['n_layer']}") + (f"-zipf{zipf:g}" if zipf > 0 else "") +
               (f"-res{residual_scale:g}" if residual_scale != 1.0 else ""))
    hd, nv, dv = cfg["head_dim"], cfg["lin_v_heads"], cfg["lin_v_dim"]
    w.add_block_count(cfg["n_layer"])
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_feed_forward_length(cfg["n_ff"])
    w.add_head_count(cfg["n_head"])
    w.add_head_count_kv(cfg["n_head_kv"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_eps"])
    w.add_expert_count(cfg["n_expert"])
    w.add_expert_used_count(cfg["n_expert_used"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_expert_feed_forward_length(cfg["n_ff_exp"])
    w.add_expert_shared_feed_forward_length(cfg["n_ff_shexp"])
    w.add_ssm_conv_kernel(cfg["conv_kernel"])
    w.add_ssm_state_size(cfg["lin_k_dim"])
    w.add_uint32(f"{arch}.ssm.group_count", cfg["lin_k_heads"])
    w.add_ssm_time_step_rank(nv)
    w.add_ssm_inner_size(nv * dv)
    w.add_array(f"{arch}.attention.recurrent_layers",
                [(l + 1) % cfg["full_attn_interval"] != 0 for l in range(cfg["n_layer"])])
    w.add_uint32(f"{arch}.full_attention_interval", cfg["full_attn_interval"])
    w.add_rope_dimension_count(int(hd * cfg["rope_frac"]))
    w.add_vocab_size(cfg["n_vocab"])
    add_vocab(w, cfg["n_vocab"])
    if os.path.exists(QWEN3_TEMPLATE):
        w.add_chat_template(open(QWEN3_TEMPLATE).read())
    tlist = qwen3next_tensors(cfg)
    for name, shape, kind in tlist:
        if kind == "matrix" or kind == "residual":
            byte_shape = shape[:-1] + [shape[-1] // Q4_0_BLOCK * 18]
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), numel(byte_shape),
                              raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), numel(shape) * 4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    gen = RandomQ4_0(seed)
    rng = np.random.default_rng(seed + 1)
    for i, (name, shape, kind) in enumerate(tlist):
        n = numel(shape)
        if kind == "norm" or kind == "ssm_dt":
            data = np.ones(n, dtype=np.float32)
        elif kind == "ssm_a":  # -A, A = U(0, 16) (transformers' init of exp(A_log))
            data = -rng.uniform(0.0, 16.0, n).astype(np.float32)
        elif kind == "conv":  # depthwise kernel: N(0, 1/K) so the conv keeps the scale
            data = (rng.standard_normal(n, dtype=np.float32) * np.float32(0.5))
        elif kind == "router":
            data = router_rows(rng, shape[0], shape[1], zipf).reshape(-1)
        elif kind == "shexp_gate":
            data = rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
        else:
            data = gen.tensor(n, residual_scale if kind == "residual" else 1.0)
        w.write_tensor_data(data)
        print(f"\r{i + 1}/{len(tlist)} tensors", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--format", choices=["gguf", "safetensors"], default="gguf")
    ap.add_argument("--out", required=True, help="GGUF file, or folder for safetensors")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--router-zipf", type=float, default=0.0,
                    help="MoE shapes: scale router row e by (1 + rank(e))^-A (see above); 0 = unskewed")
    ap.add_argument("--residual-scale", type=float, default=1.0,
                    help="MoE shapes: scale attn_output and ffn_down_exps by S (see above); 1 = unscaled")
    ap.add_argument("--layers", type=int, default=None,
                    help="qwen3next shapes: write only the first N layers (default: all)")
    a = ap.parse_args()
    cfg = dict(SHAPES[a.shape], name=a.shape)
    if a.layers is not None:
        if cfg.get("arch") != "qwen3next" or not 1 <= a.layers <= cfg["n_layer"]:
            sys.exit(f"--layers: qwen3next shapes only, 1..{cfg['n_layer']}")
        cfg["n_layer"] = a.layers
    if cfg.get("gemma") and a.format != "safetensors":
        sys.exit("Gemma shapes are written as safetensors (HF folders) only")
    if cfg.get("moe"):
        if a.format != "gguf":
            sys.exit("MoE shapes are written as GGUF only")
        if cfg.get("arch") == "qwen3next":
            write_qwen3next_gguf(cfg, a.out, a.seed, a.router_zipf, a.residual_scale)
        elif cfg.get("arch") == "gpt-oss":
            write_gptoss_gguf(cfg, a.out, a.seed, a.router_zipf, a.residual_scale)
        else:
            write_moe_gguf(cfg, a.out, a.seed, a.router_zipf, a.residual_scale)
    elif a.format == "gguf":
        write_gguf(cfg, a.out, a.seed)
    else:
        write_safetensors(cfg, a.out, a.seed)


if __name__ == "__main__":
    main()
