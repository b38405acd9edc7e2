#!/usr/bin/env python3
"""Writes tiny random-weight Hugging Face models and transformers' outputs for them.

For every supported architecture this builds a small model (2-4 layers, odd sizes, GQA,
tied and untied embeddings, the variant flags each architecture has), saves it as an HF
folder (config.json + safetensors, one of them sharded, weights in f32/bf16/f16), and
records with transformers (float32 compute):
  - logits for a fixed prompt of token ids (every position),
  - a 32-token greedy continuation (model.generate, do_sample=False).
Outputs: tests/fixtures/models/<name>/ and tests/fixtures/models/<name>/reference.json.

Not run in CI (needs torch + transformers): `python3 tools/gen_hf_fixtures.py`.
The seed of each model is chosen so that every greedy step has a clear margin between
the best and second-best logit (>= MIN_MARGIN), so that an implementation that is
correct within float tolerance must reproduce the ids exactly.
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
PROMPT = [1, 17, 42, 99, 7, 250, 3, 64, 128, 11]
N_NEW = 32
MIN_MARGIN = 2e-3

MODELS = [
    # name, class, config kwargs, storage dtype, shards
    ("llama-mha-f32", "LlamaForCausalLM",
     dict(hidden_size=64, intermediate_size=136, num_hidden_layers=3, num_attention_heads=4,
          num_key_value_heads=4, vocab_size=320, tie_word_embeddings=False, rope_theta=10000.0,
          rms_norm_eps=1e-5, max_position_embeddings=256), torch.float32, 1),
    ("llama-gqa-tied-bf16", "LlamaForCausalLM",
     dict(hidden_size=96, intermediate_size=200, num_hidden_layers=2, num_attention_heads=6,
          num_key_value_heads=2, vocab_size=384, tie_word_embeddings=True, rope_theta=500000.0,
          rms_norm_eps=1e-6, max_position_embeddings=256), torch.bfloat16, 1),
    ("llama3-scaled-sharded-bf16", "LlamaForCausalLM",
     dict(hidden_size=96, intermediate_size=176, num_hidden_layers=3, num_attention_heads=6,
          num_key_value_heads=2, vocab_size=300, tie_word_embeddings=False, rope_theta=500000.0,
          rms_norm_eps=1e-5, max_position_embeddings=1024,
          rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                            high_freq_factor=4.0, original_max_position_embeddings=64)),
     torch.bfloat16, 2),
    ("mistral-gqa-f16", "MistralForCausalLM",
     dict(hidden_size=80, intermediate_size=144, num_hidden_layers=2, num_attention_heads=5,
          num_key_value_heads=1, vocab_size=288, tie_word_embeddings=False, rope_theta=1000000.0,
          rms_norm_eps=1e-5, max_position_embeddings=256, sliding_window=None), torch.float16, 1),
    ("qwen2-bias-tied-f32", "Qwen2ForCausalLM",
     dict(hidden_size=64, intermediate_size=120, num_hidden_layers=3, num_attention_heads=4,
          num_key_value_heads=2, vocab_size=352, tie_word_embeddings=True, rope_theta=1000000.0,
          rms_norm_eps=1e-6, max_position_embeddings=256, use_sliding_window=False), torch.float32, 1),
    ("qwen3-qknorm-bf16", "Qwen3ForCausalLM",
     dict(hidden_size=64, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
          num_key_value_heads=2, head_dim=32, vocab_size=320, tie_word_embeddings=False,
          rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
          use_sliding_window=False), torch.bfloat16, 1),
]


def build(cls_name, kwargs, seed, dtype):
    torch.manual_seed(seed)
    cfg_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))
    cfg = cfg_cls(bos_token_id=1, eos_token_id=2, initializer_range=0.08, **kwargs)
    model = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():
        # Random norms and biases too, so that a missing weight multiply is caught.
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name else 0.1 * torch.randn_like(p))
        # Round every weight to the storage dtype so that the f32 reference sees exactly
        # the values we store.
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return model


def greedy(model):
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
        out = model.generate(ids, max_new_tokens=N_NEW, do_sample=False, eos_token_id=None,
                             pad_token_id=0, min_new_tokens=N_NEW)
        new = out[0, len(PROMPT):].tolist()
        # Margin of every greedy decision (recomputed on the full sequence).
        full = model(out[:, :-1]).logits[0].float()
    margins = []
    for t in range(len(PROMPT) - 1, full.shape[0]):
        top = torch.topk(full[t], 2).values
        margins.append(float(top[0] - top[1]))
    return logits, new, min(margins)


def save(model, name, dtype, shards, seed):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.config.save_pretrained(d)
    state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    names = sorted(state)
    if shards == 1:
        save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    else:
        per = (len(names) + shards - 1) // shards
        weight_map = {}
        total = 0
        for i in range(shards):
            part = names[i * per:(i + 1) * per]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: state[k] for k in part}, os.path.join(d, fname), metadata={"format": "pt"})
            for k in part:
                weight_map[k] = fname
                total += state[k].numel() * state[k].element_size()
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return d



def reference_record(generator, cls_name, dtype, seed, logits, new, margin):
    """The reference.json fields every fixture generator writes (tests read them by name)."""
    return {
        "generator": generator,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "architecture": cls_name,
        "storage_dtype": str(dtype).replace("torch.", ""),
        "compute_dtype": "float32",
        "seed": seed,
        "prompt_ids": PROMPT,
        "logits": [[round(float(x), 6) for x in row] for row in logits],
        "greedy_ids": new,
        "min_greedy_margin": margin,
    }

def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for name, cls_name, kwargs, dtype, shards in MODELS:
        for seed in range(1, 200):
            model = build(cls_name, kwargs, seed, dtype)
            logits, new, margin = greedy(model)
            if margin >= MIN_MARGIN:
                break
        d = save(model, name, dtype, shards, seed)
        ref = reference_record("tools/gen_hf_fixtures.py", cls_name, dtype, seed, logits, new, margin)
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f)
        index.append(name)
        print(f"{name}: seed {seed}, min margin {margin:.4f}, greedy {new[:8]}...", file=sys.stderr)
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"models": index}, f, indent=1)


if __name__ == "__main__":
    main()
