#!/usr/bin/env python3
"""Converts the Qwen2-MoE and Qwen3-MoE HF fixtures to GGUF (f32, llama.cpp's names).

Writes tests/fixtures/models/<name>.gguf from tests/fixtures/models/<name>/ (written by
tools/gen_moe_fixtures.py): the same weights under llama.cpp's tensor names and layout
(token_embd, blk.N.attn_*, ffn_gate_inp [E, D], ffn_{gate,up,down}_exps stacked 3-D,
ffn_*_shexp, ffn_gate_inp_shexp [D]) and metadata keys (<arch>.expert_count,
expert_used_count, expert_feed_forward_length, expert_shared_feed_forward_length).
Qwen uses NEOX rope, so q/k need no permutation. A dense layer (mlp_only_layers,
decoder_sparse_step) keeps ffn_gate/up/down; llama.cpp's own converter cannot express
those, spool reads a layer as MoE when it has ffn_gate_inp.

This is spool's own converter, written from llama.cpp's documented names: it proves that
spool reads the GGUF layout, not that it matches llama.cpp's converter byte for byte.
Needs `pip install gguf safetensors numpy`; not run in CI.
"""
import json
import os
import sys

import gguf
import numpy as np
from safetensors.numpy import load_file

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
MODELS = [("qwen3-moe-fused-f32", "qwen3moe"), ("qwen2-moe-shared-f32", "qwen2moe")]


def per_expert(st, l, proj, n_expert):
    """[E, rows, cols] stacked from either layout."""
    base = f"model.layers.{l}.mlp.experts."
    if base + "gate_up_proj" in st:
        gu = st[base + "gate_up_proj"]
        f = gu.shape[1] // 2
        return {"gate": gu[:, :f], "up": gu[:, f:], "down": st[base + "down_proj"]}[proj]
    return np.stack([st[f"{base}{e}.{proj}_proj.weight"] for e in range(n_expert)])


def convert(name, arch):
    src = os.path.join(FIX, name)
    cfg = json.load(open(os.path.join(src, "config.json")))
    st = {k: v.astype(np.float32) for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    n_expert = cfg.get("num_experts", cfg.get("num_local_experts"))
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    out = os.path.join(FIX, name + ".gguf")
    w = gguf.GGUFWriter(out, arch)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_expert_count(n_expert)
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    if "shared_expert_intermediate_size" in cfg:
        w.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])
    t = {"token_embd.weight": st["model.embed_tokens.weight"], "output_norm.weight": st["model.norm.weight"],
         "output.weight": st["lm_head.weight"]}
    attn = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
            "q_norm": "attn_q_norm", "k_norm": "attn_k_norm"}
    for l in range(cfg["num_hidden_layers"]):
        hb, gb = f"model.layers.{l}.", f"blk.{l}."
        t[gb + "attn_norm.weight"] = st[hb + "input_layernorm.weight"]
        t[gb + "ffn_norm.weight"] = st[hb + "post_attention_layernorm.weight"]
        for k, v in st.items():
            if k.startswith(hb + "self_attn."):
                mod, kind = k[len(hb + "self_attn."):].split(".")
                t[f"{gb}{attn[mod]}.{kind}"] = v
        if hb + "mlp.gate.weight" in st:
            t[gb + "ffn_gate_inp.weight"] = st[hb + "mlp.gate.weight"]
            for proj in ("gate", "up", "down"):
                t[f"{gb}ffn_{proj}_exps.weight"] = np.ascontiguousarray(per_expert(st, l, proj, n_expert))
            if hb + "mlp.shared_expert_gate.weight" in st:
                for proj in ("gate", "up", "down"):
                    t[f"{gb}ffn_{proj}_shexp.weight"] = st[f"{hb}mlp.shared_expert.{proj}_proj.weight"]
                t[gb + "ffn_gate_inp_shexp.weight"] = st[hb + "mlp.shared_expert_gate.weight"].reshape(-1)
        else:
            for proj in ("gate", "up", "down"):
                t[f"{gb}ffn_{proj}.weight"] = st[f"{hb}mlp.{proj}_proj.weight"]
    for k in sorted(t):
        w.add_tensor(k, np.ascontiguousarray(t[k]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out}: {len(t)} tensors, {os.path.getsize(out)} bytes", file=sys.stderr)


if __name__ == "__main__":
    for name, arch in MODELS:
        convert(name, arch)
