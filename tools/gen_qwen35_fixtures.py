#!/usr/bin/env python3
"""Writes tiny random-weight Qwen3.5 / Qwen3.5-MoE models (hybrid Gated DeltaNet + gated
attention, as Qwen3-Next, with Qwen3.5's checkpoint layout: ungrouped in_proj_qkv /
in_proj_z / in_proj_b / in_proj_a, interleaved M-RoPE sections) and transformers' outputs.

Pinned: transformers 5.25.0 (the script refuses others; its torch fallback path:
torch_chunk_gated_delta_rule, chunk 64, for a forward over many tokens,
torch_recurrent_gated_delta_rule for cached decode), torch on CPU in float32.

Models (appended to tests/fixtures/models/index.json, so tests/models/hf_parity_test.cc
runs them; each has `sequence_logits`: transformers' logits over SEQ_LEN ids — prompt +
greedy + fixed ids — from one forward, its chunked delta rule over two chunks; for MoE
the seed is the first whose every routing decision over those SEQ_LEN tokens wins by
MIN_ROUTE_GAP):
  - qwen35-f32: Qwen3_5ForCausalLM (dense SwiGLU MLP in every layer), hidden 64,
    4 layers (0-2 Gated DeltaNet, 3 gated full attention), 2 key / 4 value heads (dk 16,
    dv 8: grouped value heads), conv kernel 4, 4 attention heads / 2 KV heads of 16,
    partial_rotary_factor 0.5 (8 rotated dims), mrope_section [2, 1, 1] interleaved;
  - qwen35moe-f32: Qwen3_5MoeForCausalLM (every layer MoE: 4 experts top-2, renormalised,
    + a sigmoid-gated shared expert; save_pretrained writes the experts one tensor per
    expert and projection, mlp.experts.{e}.{gate,up,down}_proj), dk = dv = 16
    (so that llama.cpp, which assumes dv = dk, can load its GGUF conversion);
  - qwen35-dv16-f32: qwen35-f32 with dv = dk = 16 (llama.cpp's qwen35 loader sizes value
    heads as the key head dim, so only this dense variant's GGUF conversion loads there:
    tools/gen_qwen35_gguf_fixtures.py, the llama.cpp and Q8_0 comparisons);
  - qwen35-mm-f32: Qwen3_5ForConditionalGeneration (text_config as qwen35-f32, tied
    embeddings, a one-block vision tower) written by save_pretrained
    (model.language_model.*, model.visual.*); the reference is the text-only forward.
Text-only positions: transformers builds position ids [4, batch, seq] all equal to the
token position (text, t, h, w), so every M-RoPE section rotates by the same angle.
Norms get random weights (zero-centred: 0.2·N, applied as 1 + w; the DeltaNet's output
norm 1 + 0.2·N, applied as w), A_log / dt_bias 0.5·N, routers N(0, 0.32). Seeds: the first whose every
greedy step wins by MIN_MARGIN and (MoE) every routing decision by MIN_ROUTE_GAP (ROUTE_GAP per fixture).

Not run in CI: `python3 tools/gen_qwen35_fixtures.py [NAME ...]`.
"""
import json
import os
import shutil
import sys

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_hf_fixtures import reference_record, MIN_MARGIN, OUT, PROMPT, greedy  # noqa: E402
from gen_moe_fixtures import MIN_ROUTE_GAP  # noqa: E402

TRANSFORMERS_VERSION = "5.25.0"
SEQ_LEN = 80  # > 64: the chunked delta rule runs two chunks
# qwen35moe-f32 makes 320 routing decisions (80 tokens × 4 MoE layers, top-2 of 4) with
# router logits of spread ~3, so near-ties are common: no seed below 49 had all of them win
# by gen_moe_fixtures' MIN_ROUTE_GAP (2e-3), none of the first 2 by 2e-4. This fixture asks
# for 2e-5: f32 summation-order differences move router probabilities by ~1e-6 (the final
# logits agree within 2e-4·(1 + |x|)), and an earlier draft with a gap of 2.7e-5 routed as
# transformers does. A flipped route would show as a logits mismatch, not a false pass.
ROUTE_GAP = {"qwen35moe-f32": 2e-5}

ROPE = dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[2, 1, 1],
            mrope_interleaved=True)
TEXT = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            vocab_size=256, max_position_embeddings=512, rms_norm_eps=1e-6, rope_parameters=ROPE,
            linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=8, linear_num_key_heads=2,
            linear_num_value_heads=4, full_attention_interval=4, bos_token_id=1, eos_token_id=2,
            initializer_range=0.08)
DENSE = dict(TEXT, intermediate_size=48, tie_word_embeddings=False)
MOE = dict(TEXT, linear_value_head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
           shared_expert_intermediate_size=32, tie_word_embeddings=False)
VISION = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=4, temporal_patch_size=2,
              spatial_merge_size=2, out_hidden_size=64, num_position_embeddings=16)

MODELS = [
    # name, class, text config kwargs
    ("qwen35-f32", "Qwen3_5ForCausalLM", DENSE),
    ("qwen35moe-f32", "Qwen3_5MoeForCausalLM", MOE),
    ("qwen35-mm-f32", "Qwen3_5ForConditionalGeneration", dict(DENSE, tie_word_embeddings=True)),
    ("qwen35-dv16-f32", "Qwen3_5ForCausalLM", dict(DENSE, linear_value_head_dim=16)),
]


def build(cls_name, kwargs, seed):
    torch.manual_seed(seed)
    if cls_name == "Qwen3_5ForConditionalGeneration":
        text = transformers.Qwen3_5TextConfig(**kwargs)
        cfg = transformers.Qwen3_5Config(text_config=text.to_dict(), vision_config=VISION,
                                         tie_word_embeddings=kwargs["tie_word_embeddings"])
    elif cls_name == "Qwen3_5MoeForCausalLM":
        cfg = transformers.Qwen3_5MoeTextConfig(**kwargs)
    else:
        cfg = transformers.Qwen3_5TextConfig(**kwargs)
    model = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1 or "visual" in name:
                continue
            if "linear_attn.norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))  # applied as w
            elif "norm" in name:
                p.copy_(0.2 * torch.randn_like(p))  # applied as 1 + w
            else:  # A_log, dt_bias
                p.copy_(0.5 * torch.randn_like(p))
        # Router logits ×4 (weights N(0, 0.32)): with (1 + w) norms near 1 the routers' top-k
        # gaps are otherwise too small for any seed to pass MIN_ROUTE_GAP.
        for name, p in model.named_parameters():
            if name.endswith("mlp.gate.weight"):
                p.mul_(4.0)
    return model


def sequence_forward(model, ids):
    """Logits over `ids` from one forward, and the smallest gap between the k-th and
    (k+1)-th router probability of every token in every MoE layer (None without MoE)."""
    gaps, hooks = [], []
    for mod in model.modules():
        if type(mod).__name__.endswith("TopKRouter"):
            def hook(m, args, out):
                probs = torch.softmax(out[0].float(), dim=-1)
                top = torch.topk(probs, m.top_k + 1, dim=-1).values
                gaps.append(float((top[:, -2] - top[:, -1]).min()))
            hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    for h in hooks:
        h.remove()
    return logits, (min(gaps) if gaps else None)


class _SmallRouteGap(Exception):
    pass


class reject_small_route_gaps:
    """While active, a router decision that wins by less than min_gap (less a slack
    of 1e-5 for the cached decode path's rounding) raises _SmallRouteGap: a seed search
    shortcut only — sequence_forward's gap over all SEQ_LEN positions decides."""

    def __init__(self, model, min_gap):
        self.model, self.hooks, self.min_gap = model, [], min_gap

    def __enter__(self):
        for mod in self.model.modules():
            if type(mod).__name__.endswith("TopKRouter"):
                def hook(m, args, out):
                    probs = torch.softmax(out[0].float(), dim=-1)
                    top = torch.topk(probs, m.top_k + 1, dim=-1).values
                    if float((top[:, -2] - top[:, -1]).min()) < self.min_gap - 1e-5:
                        raise _SmallRouteGap()
                self.hooks.append(mod.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()
        return False


def sequence(new):
    ids = PROMPT + new
    x = 12345
    while len(ids) < SEQ_LEN:
        x = (x * 1103515245 + 12345) % (1 << 31)
        ids.append(3 + x % 250)
    return ids[:SEQ_LEN]


def save(model, name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(d)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    return d


def main():
    if transformers.__version__ != TRANSFORMERS_VERSION:
        sys.exit(f"transformers {transformers.__version__}: this generator is pinned to {TRANSFORMERS_VERSION}")
    index_path = os.path.join(OUT, "index.json")
    with open(index_path) as f:
        index = json.load(f)["models"]
    only = sys.argv[1:]
    for name, cls_name, kwargs in MODELS:
        if only and name not in only:
            continue
        min_gap = ROUTE_GAP.get(name, MIN_ROUTE_GAP)
        for seed in range(1, 400):
            model = build(cls_name, kwargs, seed)
            try:
                with reject_small_route_gaps(model, min_gap):
                    logits, new, margin = greedy(model)
            except _SmallRouteGap:
                print(f"{name}: seed {seed}: a route gap below {min_gap} in the prompt or greedy run",
                      file=sys.stderr)
                continue
            if margin < MIN_MARGIN:
                print(f"{name}: seed {seed}: greedy margin {margin:.2e}", file=sys.stderr)
                continue
            ids = sequence(new)
            seq_logits, gap = sequence_forward(model, ids)
            print(f"{name}: seed {seed}: route gap over the sequence {gap}", file=sys.stderr)
            if gap is None or gap >= min_gap:
                break
        else:
            sys.exit(f"{name}: no seed below 400 has greedy margins >= {MIN_MARGIN} and route gaps >= {min_gap}")
        d = save(model, name)
        ref = {
            **reference_record("tools/gen_qwen35_fixtures.py", cls_name, torch.float32, seed, logits, new, margin),
            "sequence_ids": ids,
            "sequence_logits": [[round(float(x), 6) for x in row] for row in seq_logits],
        }
        if gap is not None:
            ref["min_route_gap"] = gap
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f)
        if name not in index:
            index.append(name)
        print(f"{name}: seed {seed}, min margin {margin:.4f}, route gap {gap}, greedy {new[:8]}...", file=sys.stderr)
    with open(index_path, "w") as f:
        json.dump({"models": index}, f, indent=1)


if __name__ == "__main__":
    main()
