#!/usr/bin/env python3
"""Writes tiny random-weight Qwen3-Next models (hybrid Gated DeltaNet + gated attention,
MoE with a sigmoid-gated shared expert) and transformers' outputs.

Pinned: transformers 5.25.0 (its torch fallback path: torch_chunk_gated_delta_rule for a
forward over many tokens, chunk size 64; torch_recurrent_gated_delta_rule for cached
decode; causal_conv1d_fn / causal_conv1d_update), torch on CPU in float32. The script
refuses other transformers versions, so that a regenerated fixture means the same thing.

Models (appended to tests/fixtures/models/index.json, so tests/models/hf_parity_test.cc
runs them):
  - qwen3next-f32: hidden 64, 4 layers (layers 0-2 Gated DeltaNet, layer 3 full gated
    attention), 2 key heads / 4 value heads (dk 16, dv 8: grouped value heads), conv
    kernel 4, 8 experts top-2 + shared expert, layer 2 dense (mlp_only_layers), written
    by save_pretrained (one tensor per expert);
  - qwen3next-fused-f32: the same shapes, every layer MoE, experts stored in the fused
    3-D layout (mlp.experts.gate_up_proj / down_proj).
Beside prompt + greedy (reference.json's usual fields), `sequence_logits` holds
transformers' logits over 150 tokens (prompt + greedy + fixed ids) from one forward: its
chunked delta rule over three 64-token chunks.

Not run in CI: `python3 tools/gen_qwen3next_fixtures.py [NAME ...]`.
"""
import json
import os
import sys

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_hf_fixtures import reference_record, MIN_MARGIN, OUT, PROMPT, build, greedy  # noqa: E402
from gen_moe_fixtures import MIN_ROUTE_GAP, route_gap, save  # noqa: E402

TRANSFORMERS_VERSION = "5.25.0"
SEQ_LEN = 150

COMMON = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=512,
              rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0, partial_rotary_factor=0.25,
              linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=8,
              linear_num_key_heads=2, linear_num_value_heads=4, num_experts=8, num_experts_per_tok=2,
              moe_intermediate_size=24, shared_expert_intermediate_size=40, norm_topk_prob=True,
              decoder_sparse_step=1, full_attention_interval=4)

MODELS = [
    # name, config kwargs, storage dtype, fused experts
    ("qwen3next-f32", dict(COMMON, mlp_only_layers=[2]), torch.float32, False),
    ("qwen3next-fused-f32", dict(COMMON, mlp_only_layers=[]), torch.float32, True),
]


def sequence(new):
    ids = PROMPT + new
    x = 12345
    while len(ids) < SEQ_LEN:
        x = (x * 1103515245 + 12345) % (1 << 31)
        ids.append(3 + x % 250)
    return ids


def main():
    if transformers.__version__ != TRANSFORMERS_VERSION:
        sys.exit(f"transformers {transformers.__version__}: this generator is pinned to {TRANSFORMERS_VERSION}")
    index_path = os.path.join(OUT, "index.json")
    with open(index_path) as f:
        index = json.load(f)["models"]
    only = sys.argv[1:]
    for name, kwargs, dtype, fused in MODELS:
        if only and name not in only:
            continue
        cls_name = "Qwen3NextForCausalLM"
        for seed in range(1, 400):
            model = build(cls_name, kwargs, seed, dtype)
            logits, new, margin = greedy(model)
            if margin < MIN_MARGIN:
                continue
            gap = route_gap(model)
            if gap >= MIN_ROUTE_GAP:
                break
        ids = sequence(new)
        with torch.no_grad():
            seq_logits = model(torch.tensor([ids])).logits[0].float()
        d = save(model, name, dtype, fused, seed)
        ref = {
            **reference_record("tools/gen_qwen3next_fixtures.py", cls_name, dtype, seed, logits, new, margin),
            "min_route_gap": gap,
            "fused_experts": fused,
            "sequence_ids": ids,
            "sequence_logits": [[round(float(x), 6) for x in row] for row in seq_logits],
        }
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f)
        if name not in index:
            index.append(name)
        print(f"{name}: seed {seed}, min margin {margin:.4f}, route gap {gap:.4f}, greedy {new[:8]}...",
              file=sys.stderr)
    with open(index_path, "w") as f:
        json.dump({"models": index}, f, indent=1)


if __name__ == "__main__":
    main()
