#!/usr/bin/env python3
"""gpt-oss fixtures (issue 14): a tiny random GptOssForCausalLM with MXFP4 experts, its
transformers outputs, llama.cpp's conversion of it and llama.cpp's outputs, and an
MXFP4 code-point table in both layouts.

Stage `hf` writes tests/fixtures/gptoss/gptoss-h64-mxfp4/ (an HF folder as the released
gpt-oss checkpoints are laid out):
  hidden 64, 4 layers (layer_types: even sliding, odd full), sliding_window 6, 4 heads /
  2 KV heads of 16, attention biases, random sinks (N(0, 1): large enough to move the
  softmax), 8 experts top-4 of intermediate 64, random router/expert biases, random
  RMSNorm weights (1 + 0.2·N), yarn RoPE (factor 4 over an original 64 positions,
  truncate false, as gpt-oss's config says), swiglu_limit 7 / alpha 1.702 (clamping
  reached: gate_up is scaled ×3 and the seed is chosen so that some gate and some up
  values exceed the limit; reference.json counts them).
  Experts are quantised to MXFP4 here (per 32 inputs: E8M0 scale 2^ceil(log2(amax/6)),
  nearest E2M1 value, ties to the lower magnitude) and written as
  `mlp.experts.{gate_up,down}_proj_{blocks,scales}` (+ `_bias`), OpenAI's layout; the
  model's own expert weights are replaced by the dequantised values BEFORE transformers
  computes the references, so the reference is exact for the weights spool reads.
  reference.json: prompt logits, 32 greedy ids, and logits at every position of prompt +
  continuation (42 positions, 7× the window), transformers 5 in f32, eager attention; and
  `sequence_logits_q8_0_expert_inputs`: the same with the inputs of both expert matmuls
  rounded as spool's/llama.cpp's Q8_0 activation quantiser rounds them before its
  integer MXFP4 dot (transformers' eager expert loop otherwise unchanged), the reference
  that isolates spool's arithmetic from that rounding.
Stage `gguf` converts that folder with llama.cpp's convert_hf_to_gguf.py (f32 non-expert
weights; the converter repacks the MXFP4 experts to GGUF's layout without requantising)
to tests/fixtures/gptoss/gptoss-h64-mxfp4.gguf, and records llama-cpp-python's logits
for the same token ids (prompt and prompt + the HF greedy continuation) and its own 32
greedy ids into gptoss-h64-mxfp4.llamacpp.json (f32 KV cache, no flash attention).
Stage `mxfp4` writes tests/fixtures/gptoss/mxfp4_codes.json: every (exponent 0..255,
code 0..15) pair, in the HF split layout and in the GGUF layout (made by llama.cpp's
converter's own repacking, GptOssModel.transform_nibble_layout), with gguf-py's
dequantised values (gguf.quants.dequantize) as f32 bit patterns.

Not run in CI. Needs torch, transformers, tokenizers, llama-cpp-python and its sdist:
  PYTHONPATH=/tmp/gguf_work/llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=/tmp/gguf_work/lllib \\
    python3 tools/gen_gptoss_fixtures.py --llama-cpp /tmp/gguf_work/llama_cpp_python-0.3.36/vendor/llama.cpp
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "gptoss")
NAME = "gptoss-h64-mxfp4"
PROMPT = [1, 17, 42, 99, 7, 250, 3, 64, 128, 11]
N_NEW = 32
# spool (as llama.cpp) multiplies MXFP4 weights with Q8_0-requantised activations, which
# transformers does not: every greedy step must win by more than that noise.
MIN_MARGIN = 0.02
GATE_UP_SCALE = 3.0  # gate/up pre-activations of std ≈ 2: the ±7 clamp is reached (counted below)
FP4 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float64)

CONFIG = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, vocab_size=320, max_position_embeddings=256,
              rms_norm_eps=1e-5, sliding_window=6, num_local_experts=8, num_experts_per_tok=4,
              layer_types=["sliding_attention", "full_attention"] * 2, tie_word_embeddings=False,
              attention_bias=True, swiglu_limit=7.0, swiglu_alpha=1.702,
              rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, beta_fast=32.0, beta_slow=1.0,
                                   truncate=False, original_max_position_embeddings=64),
              bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.08)


def quantize_mxfp4(w):
    """w [..., n] (n % 32 == 0) → codes [..., n] (0..15), exps [..., n/32] (E8M0), dequantised."""
    shape = w.shape
    b = w.reshape(-1, 32).astype(np.float64)
    amax = np.abs(b).max(1)
    s = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-38) / 6.0)), -127.0)
    s = np.clip(s, -127, 127)
    scaled = b / np.exp2(s)[:, None]
    idx = np.abs(np.abs(scaled)[..., None] - FP4).argmin(-1)
    neg = (scaled < 0) & (idx > 0)
    codes = (idx + 8 * neg).astype(np.uint8)
    deq = np.where(neg, -1.0, 1.0) * FP4[idx] * np.exp2(s)[:, None]
    exps = (s + 127).astype(np.uint8)
    return codes.reshape(shape), exps.reshape(shape[:-1] + (shape[-1] // 32,)), deq.reshape(shape).astype(np.float32)


def pack_hf(codes):
    """codes [..., n] → OpenAI blocks [..., n/32, 16]: byte j = code[2j] | code[2j+1] << 4."""
    c = codes.reshape(codes.shape[:-1] + (codes.shape[-1] // 32, 32))
    return (c[..., 0::2] | (c[..., 1::2] << 4)).astype(np.uint8)


def build(seed):
    import torch
    import transformers
    torch.manual_seed(seed)
    cfg = transformers.GptOssConfig(**CONFIG)
    cfg._attn_implementation = "eager"
    model = transformers.GptOssForCausalLM(cfg).eval()
    quant = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("sinks"):
                p.copy_(torch.randn_like(p))
            elif p.dim() == 1 or name.endswith("_bias"):
                p.copy_(0.1 * torch.randn_like(p))
        for l, layer in enumerate(model.model.layers):
            ex = layer.mlp.experts
            ex.gate_up_proj.mul_(GATE_UP_SCALE)  # reach the ±7 clamp sometimes
            # transformers holds gate_up_proj [E, D, 2F] and down_proj [E, F, D] (x @ W); the
            # checkpoint stores the rows [E, 2F, D] / [E, D, F].
            gu = ex.gate_up_proj.transpose(1, 2).float().numpy()
            dn = ex.down_proj.transpose(1, 2).float().numpy()
            gc, ge, gd = quantize_mxfp4(gu)
            dc, de, dd = quantize_mxfp4(dn)
            ex.gate_up_proj.copy_(torch.from_numpy(gd).transpose(1, 2))
            ex.down_proj.copy_(torch.from_numpy(dd).transpose(1, 2))
            quant[l] = (pack_hf(gc), ge, pack_hf(dc), de)
    return model, quant


CLAMPED = [0, 0]  # gate values above the limit, up values outside ±limit (during greedy())


def count_clamps():
    import transformers.models.gpt_oss.modeling_gpt_oss as m
    orig = m.GptOssExperts._apply_gate

    def apply_gate(self, gate_up):
        CLAMPED[0] += int((gate_up[..., ::2] > self.limit).sum())
        CLAMPED[1] += int((gate_up[..., 1::2].abs() > self.limit).sum())
        return orig(self, gate_up)

    m.GptOssExperts._apply_gate = apply_gate


def q8_0(x):
    """x rounded as spool's (and llama.cpp's) Q8_0 activation quantiser does before an
    integer block dot: per 32 values d = amax / 127 (stored f16), q = round-half-even(x · 127 / amax)."""
    import torch
    b = x.reshape(-1, 32).float()
    amax = b.abs().amax(1, keepdim=True)
    d = amax / 127.0
    inv = torch.where(amax != 0, 127.0 / amax, torch.zeros_like(amax))
    return (torch.round(b * inv) * d.half().float()).reshape(x.shape)


def q8_experts_forward(self, hidden_states, router_indices=None, routing_weights=None):
    """transformers' eager GptOssExperts.forward with both expert matmuls' inputs rounded by
    q8_0 (the MXFP4 kernels' activation rounding), so that only f32 summation order separates
    it from spool's integer path."""
    import torch
    next_states = torch.zeros_like(hidden_states)
    for t in range(hidden_states.shape[0]):
        for k in range(router_indices.shape[1]):
            e = int(router_indices[t, k])
            gate_up = q8_0(hidden_states[t:t + 1]) @ self.gate_up_proj[e] + self.gate_up_proj_bias[e]
            out = q8_0(self._apply_gate(gate_up)) @ self.down_proj[e] + self.down_proj_bias[e]
            next_states[t] += (out * routing_weights[t, k])[0]
    return next_states


def q8_sequence_logits(model, ids):
    import torch
    import transformers.models.gpt_oss.modeling_gpt_oss as m
    orig = m.GptOssExperts.forward
    m.GptOssExperts.forward = q8_experts_forward
    try:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float()
    finally:
        m.GptOssExperts.forward = orig


def greedy(model):
    import torch
    CLAMPED[0] = CLAMPED[1] = 0
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
    return logits, new, min(margins), full


def stage_hf(a):
    import torch
    import transformers
    from safetensors.torch import save_file
    import gen_converted_fixtures as conv
    count_clamps()
    for seed in range(1, 400):
        model, quant = build(seed)
        logits, new, margin, full = greedy(model)
        print(f"seed {seed}: min margin {margin:.4f}, {len(set(new))} distinct, clamped {CLAMPED}", file=sys.stderr)
        if margin >= MIN_MARGIN and len(set(new)) >= 10 and min(CLAMPED) > 0:
            break
    d = os.path.join(OUT, NAME)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.config.architectures = ["GptOssForCausalLM"]
    model.config.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": None}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj"):
            continue
        state[k] = v.float().contiguous()
    for l, (gb, ge, db, de) in quant.items():
        p = f"model.layers.{l}.mlp.experts."
        state[p + "gate_up_proj_blocks"] = torch.from_numpy(gb)
        state[p + "gate_up_proj_scales"] = torch.from_numpy(ge)
        state[p + "down_proj_blocks"] = torch.from_numpy(db)
        state[p + "down_proj_scales"] = torch.from_numpy(de)
    save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    conv.write_tokenizer(d, CONFIG["vocab_size"])
    ref = {
        "generator": "tools/gen_gptoss_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "architecture": "GptOssForCausalLM",
        "storage_dtype": "float32 (experts MXFP4)",
        "compute_dtype": "float32",
        "seed": seed,
        "prompt_ids": PROMPT,
        "logits": [[round(float(x), 6) for x in row] for row in logits],
        "greedy_ids": new,
        "min_greedy_margin": margin,
        "clamped_gate_up_values": list(CLAMPED),
        "sequence_ids": PROMPT + new[:-1],
        "sequence_logits": [[round(float(x), 6) for x in row] for row in full],
        # The same positions with the expert matmuls' inputs rounded as Q8_0 (q8_0 above).
        "sequence_logits_q8_0_expert_inputs": [[round(float(x), 6) for x in row]
                                               for row in q8_sequence_logits(model, PROMPT + new[:-1])],
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"{NAME}: seed {seed}, min margin {margin:.4f}, clamped {CLAMPED}, greedy {new[:8]}...", file=sys.stderr)


def stage_gguf(a):
    import gen_converted_fixtures as conv
    import llama_cpp
    import gen_rope_freqs_fixture as rf
    rf.no_extra_buffers(llama_cpp)
    d = os.path.join(OUT, NAME)
    out = os.path.join(OUT, NAME + ".gguf")
    conv.convert(a.llama_cpp, d, "f32", out)
    with open(os.path.join(d, "reference.json")) as f:
        ref = json.load(f)
    llm = llama_cpp.Llama(model_path=out, n_ctx=256, n_threads=2, logits_all=True, verbose=False, flash_attn=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    exact = lambda row: [float(str(np.float32(x))) for x in row]
    seq = ref["sequence_ids"]
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
    refs = {"generator": "tools/gen_gptoss_fixtures.py", "llama_cpp_python": llama_cpp.__version__,
            "kv_cache": "f32", "flash_attn": False, "prompt_ids": PROMPT, "greedy_ids": gen, "greedy_margins": margins,
            "sequence_ids": seq, "sequence_logits": seq_logits}
    with open(os.path.join(OUT, NAME + ".llamacpp.json"), "w") as f:
        json.dump(refs, f)
    print(f"{NAME}.gguf: {os.path.getsize(out)} bytes, llama.cpp greedy {gen[:8]}..., min margin {min(margins)}, "
          f"HF greedy {ref['greedy_ids'][:8]}...", file=sys.stderr)


def stage_mxfp4(a):
    import torch
    sys.path.insert(0, a.llama_cpp)
    sys.path.insert(1, os.path.join(a.llama_cpp, "gguf-py"))
    import gguf
    from conversion.gpt_oss import GptOssModel
    rng = np.random.default_rng(7)
    # 256 blocks: block b has exponent b and the codes 0..15 twice, shuffled per block.
    codes = np.stack([rng.permutation(np.concatenate([np.arange(16), np.arange(16)])) for _ in range(256)]).astype(np.uint8)
    exps = np.arange(256, dtype=np.uint8)
    hf_blocks = pack_hf(codes.reshape(1, -1))[0]                       # [256, 16]
    blocks_t = torch.from_numpy(hf_blocks.reshape(1, 1, 256, 16).copy())
    gguf_qs = GptOssModel.transform_nibble_layout(None, blocks_t).numpy().reshape(256, 16)
    gguf_bytes = np.concatenate([exps[:, None], gguf_qs], axis=1).astype(np.uint8)  # [256, 17]
    values = gguf.quants.dequantize(gguf_bytes.reshape(-1), gguf.GGMLQuantizationType.MXFP4).astype(np.float32)
    out = {"generator": "tools/gen_gptoss_fixtures.py (stage mxfp4)",
           "note": "block b: exponent b, codes 0..15 twice; gguf = llama.cpp converter's repacking; values = gguf-py",
           "hf_blocks": hf_blocks.reshape(-1).tolist(), "hf_scales": exps.tolist(),
           "gguf": gguf_bytes.reshape(-1).tolist(), "value_bits": values.view(np.uint32).tolist()}
    with open(os.path.join(OUT, "mxfp4_codes.json"), "w") as f:
        json.dump(out, f)
    print(f"mxfp4_codes.json: {values.size} values, {np.isfinite(values).sum()} finite", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True)
    ap.add_argument("--stage", choices=["all", "hf", "gguf", "mxfp4"], default="all")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if a.stage in ("all", "mxfp4"):
        stage_mxfp4(a)
    if a.stage in ("all", "hf"):
        stage_hf(a)
    if a.stage in ("all", "gguf"):
        stage_gguf(a)


if __name__ == "__main__":
    main()
