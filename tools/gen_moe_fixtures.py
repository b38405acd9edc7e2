#!/usr/bin/env python3
"""Writes tiny random-weight mixture-of-experts HF models and transformers' outputs.

The MoE sibling of tools/gen_hf_fixtures.py (same outputs, same reference.json fields,
same greedy-margin rule; the models are appended to tests/fixtures/models/index.json so
that tests/models/hf_parity_test.cc runs them). One model per MoE architecture:
  - qwen3-moe: 8 experts top-2, norm_topk_prob, layer 1 dense (mlp_only_layers), stored
    in the fused 3-D layout transformers 5 keeps in memory (experts.gate_up_proj);
  - qwen2-moe: shared expert + sigmoid gate, decoder_sparse_step 2 (layers 0, 2 dense);
  - mixtral: block_sparse_moe.experts.{e}.w1/w2/w3 as save_pretrained writes them;
  - olmoe: q/k RMSNorm over the whole projection, no renormalisation;
  - qwen3-moe-f32 and qwen2-moe-all-f32: every layer sparse (decoder_sparse_step 1, no
    mlp_only_layers), per-expert tensors; the shapes llama.cpp's convert_hf_to_gguf.py and
    loader accept (llama.cpp's qwen2moe/qwen3moe require every layer to be MoE), converted
    by tools/gen_converted_fixtures.py (the qwen2 one keeps the shared expert);
  - olmoe-mha-f32: OLMoE without GQA (llama.cpp's olmoe sizes attn_k_norm by n_embd, so
    it cannot load the GQA olmoe-f32) and with OLMoE's rms_norm_eps 1e-5 (the converter
    writes 1e-5 for every OLMoE), converted likewise.
Per-expert checkpoints are written by save_pretrained itself (5.x converts its fused
experts back to one tensor per expert on save).

Seeds are also chosen so that every routing decision has a margin: the k-th and
(k+1)-th router probabilities of every token in every MoE layer differ by at least
MIN_ROUTE_GAP, so that float-level differences cannot swap an expert.

Not run in CI (needs torch + transformers): `python3 tools/gen_moe_fixtures.py [NAME ...]`
(only the named models; all when none are named).
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_hf_fixtures import reference_record, MIN_MARGIN, OUT, PROMPT, build, greedy  # noqa: E402

MIN_ROUTE_GAP = 2e-3

COMMON = dict(hidden_size=48, num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
              max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=False)

MODELS = [
    # name, class, config kwargs, storage dtype, fused experts
    ("qwen3-moe-fused-f32", "Qwen3MoeForCausalLM",
     dict(COMMON, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=3, head_dim=16,
          num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[1],
          decoder_sparse_step=1, rope_theta=1000000.0, use_sliding_window=False), torch.float32, True),
    ("qwen2-moe-shared-f32", "Qwen2MoeForCausalLM",
     dict(COMMON, intermediate_size=64, moe_intermediate_size=24, shared_expert_intermediate_size=40,
          num_hidden_layers=4, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
          decoder_sparse_step=2, mlp_only_layers=[], rope_theta=1000000.0, use_sliding_window=False),
     torch.float32, False),
    ("mixtral-bf16", "MixtralForCausalLM",
     dict(COMMON, intermediate_size=32, num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2,
          rope_theta=1000000.0, sliding_window=None), torch.bfloat16, False),
    ("olmoe-f32", "OlmoeForCausalLM",
     dict(COMMON, intermediate_size=24, num_hidden_layers=2, num_experts=8, num_experts_per_tok=2,
          norm_topk_prob=False, rope_theta=10000.0, clip_qkv=None, pad_token_id=0), torch.float32, False),
    ("qwen3-moe-f32", "Qwen3MoeForCausalLM",
     dict(COMMON, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=2, head_dim=16,
          num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[],
          decoder_sparse_step=1, rope_theta=1000000.0, use_sliding_window=False), torch.float32, False),
    ("qwen2-moe-all-f32", "Qwen2MoeForCausalLM",
     dict(COMMON, intermediate_size=64, moe_intermediate_size=24, shared_expert_intermediate_size=40,
          num_hidden_layers=2, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
          decoder_sparse_step=1, mlp_only_layers=[], rope_theta=1000000.0, use_sliding_window=False),
     torch.float32, False),
    ("olmoe-mha-f32", "OlmoeForCausalLM",
     # rms_norm_eps 1e-5: OLMoE's own, which llama.cpp's converter writes whatever config.json says
     dict(COMMON, num_key_value_heads=4, rms_norm_eps=1e-5, intermediate_size=24, num_hidden_layers=2, num_experts=8,
          num_experts_per_tok=2, norm_topk_prob=False, rope_theta=10000.0, clip_qkv=None, pad_token_id=0),
     torch.float32, False),
]


def route_gap(model):
    """Smallest gap between the k-th and (k+1)-th router probability over every token
    of the prompt + greedy continuation in every MoE layer."""
    gaps = []
    hooks = []
    for mod in model.modules():
        if type(mod).__name__.endswith("TopKRouter"):
            def hook(m, args, out):
                probs = torch.softmax(out[0].float(), dim=-1)
                top = torch.topk(probs, m.top_k + 1, dim=-1).values
                gaps.append(float((top[:, -2] - top[:, -1]).min()))
            hooks.append(mod.register_forward_hook(hook))
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=32)
        model(out)
    for h in hooks:
        h.remove()
    return min(gaps)


def save(model, name, dtype, fused, seed):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if fused:
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(d)
        state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    else:
        model.to(dtype).save_pretrained(d)
        model.to(torch.float32)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
    return d


def main():
    index_path = os.path.join(OUT, "index.json")
    with open(index_path) as f:
        index = json.load(f)["models"]
    only = sys.argv[1:]
    for name, cls_name, kwargs, dtype, fused in MODELS:
        if only and name not in only:
            continue
        for seed in range(1, 400):
            model = build(cls_name, kwargs, seed, dtype)
            logits, new, margin = greedy(model)
            if margin < MIN_MARGIN:
                continue
            gap = route_gap(model)
            if gap >= MIN_ROUTE_GAP:
                break
        d = save(model, name, dtype, fused, seed)
        ref = {
            **reference_record("tools/gen_moe_fixtures.py", cls_name, dtype, seed, logits, new, margin),
            "min_route_gap": gap,
            "fused_experts": fused,
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
