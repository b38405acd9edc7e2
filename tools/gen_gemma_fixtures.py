#!/usr/bin/env python3
"""Writes tiny random-weight Gemma 2 / Gemma 3 HF models and transformers' outputs.

The Gemma sibling of tools/gen_hf_fixtures.py (same reference.json fields, same
greedy-margin rule; the models are appended to tests/fixtures/models/index.json so that
tests/models/hf_parity_test.cc runs them). Each model has sliding-window layers whose
window is far shorter than the prompt + continuation (42 tokens), so the mask, the
local/global RoPE and the page skipping are all exercised:
  - gemma3-swa-bf16: Gemma3ForCausalLM, 6 layers (5 sliding : 1 global, from
    sliding_window_pattern), window 4, local θ 10K, global θ 1M with linear scaling ×8,
    q/k norm, query_pre_attn_scalar 24 (≠ head_dim), tied embeddings, bf16 storage:
    √96 = 9.798 rounds to 9.8125 in bf16, and the reference uses the rounded scale, as
    transformers running the checkpoint in its dtype does (embed_scale.to(weight.dtype));
  - gemma2-softcap-f32: Gemma2ForCausalLM, 4 layers alternating sliding (layer 0) and
    global, window 6, attention soft-capping 2.0 and final soft-capping 5.0 (small, so
    that tanh bends the random model's scores and logits), f32 storage;
  - gemma3-mm-text-bf16: Gemma3ForConditionalGeneration (Gemma3Config: text_config as
    gemma3-swa-bf16's but 4 sliding : 1 global over 5 layers, window 5, untied embeddings,
    and a one-layer SigLIP vision tower + projector), written by save_pretrained
    (`language_model.model.*`, `language_model.lm_head.weight`, `vision_tower.*`,
    `multi_modal_projector.*`); the reference is the text-only forward (no pixel values).
Both run with attn_implementation="eager" (transformers' reference attention).

Seeds are chosen as in gen_hf_fixtures.py (greedy margin) and so that the continuation
has at least MIN_DISTINCT different ids.

Besides the fixed prompt's logits, reference.json holds `sequence_ids` (prompt + greedy
continuation) and `sequence_logits` (transformers' logits at every position of it), so
that the decode path is checked against transformers at positions up to 10× the window.

Not run in CI (needs torch + transformers): `python3 tools/gen_gemma_fixtures.py [NAME...]`
(only the named fixtures when names are given).
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_hf_fixtures import reference_record, MIN_MARGIN, OUT, PROMPT, greedy  # noqa: E402

MIN_DISTINCT = 10  # distinct ids in the 32-token greedy continuation

MODELS = [
    # name, class, config kwargs, storage dtype
    ("gemma3-swa-bf16", "Gemma3ForCausalLM",
     dict(hidden_size=96, intermediate_size=160, num_hidden_layers=6, num_attention_heads=4,
          num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24, vocab_size=320,
          max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=4, sliding_window_pattern=6,
          rope_theta=1000000.0, rope_local_base_freq=10000.0,
          rope_scaling=dict(rope_type="linear", factor=8.0), tie_word_embeddings=True,
          hidden_activation="gelu_pytorch_tanh", pad_token_id=0), torch.bfloat16),
    ("gemma3-mm-text-bf16", "Gemma3ForConditionalGeneration",
     dict(hidden_size=96, intermediate_size=160, num_hidden_layers=5, num_attention_heads=4,
          num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24, vocab_size=320,
          max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=5, sliding_window_pattern=5,
          rope_theta=1000000.0, rope_local_base_freq=10000.0,
          rope_scaling=dict(rope_type="linear", factor=8.0), tie_word_embeddings=False,
          hidden_activation="gelu_pytorch_tanh", pad_token_id=0), torch.bfloat16),
    ("gemma2-softcap-f32", "Gemma2ForCausalLM",
     dict(hidden_size=80, intermediate_size=144, num_hidden_layers=4, num_attention_heads=4,
          num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, vocab_size=288,
          max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=6, rope_theta=10000.0,
          attn_logit_softcapping=2.0, final_logit_softcapping=5.0, tie_word_embeddings=True,
          hidden_activation="gelu_pytorch_tanh", pad_token_id=0), torch.float32),
]


def build(cls_name, kwargs, seed, dtype):
    torch.manual_seed(seed)
    if cls_name == "Gemma3ForConditionalGeneration":
        text = transformers.Gemma3TextConfig(bos_token_id=2, eos_token_id=1, initializer_range=0.08, **kwargs)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      image_size=28, patch_size=14)
        cfg = transformers.Gemma3Config(text_config=text.to_dict(), vision_config=vision, mm_tokens_per_image=4,
                                        initializer_range=0.08,
                                        tie_word_embeddings=kwargs["tie_word_embeddings"])
        cfg.text_config._attn_implementation = "eager"
    else:
        cfg_name = {"Gemma3ForCausalLM": "Gemma3TextConfig", "Gemma2ForCausalLM": "Gemma2Config"}[cls_name]
        cfg = getattr(transformers, cfg_name)(bos_token_id=2, eos_token_id=1, initializer_range=0.08, **kwargs)
    cfg._attn_implementation = "eager"
    model = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():
        # Random norms (stored as w, applied as 1 + w), so a missing "+ 1" or a missing
        # norm is caught.
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(0.2 * torch.randn_like(p))
        # Smaller embeddings: with √hidden scaling and tied embeddings, random rows at
        # the initializer's scale dominate the residual stream and the model just repeats
        # its input token, which would prove little about attention.
        emb = model.get_input_embeddings()
        emb.weight.mul_(0.25)
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
        # transformers in the checkpoint's dtype multiplies by embed_scale.to(dtype).
        emb.embed_scale.fill_(float(torch.tensor(kwargs["hidden_size"] ** 0.5).to(dtype).float()))
    return model


def sequence_logits(model, new):
    ids = torch.tensor([PROMPT + new[:-1]])
    with torch.no_grad():
        return model(ids).logits[0].float()


def main():
    index_path = os.path.join(OUT, "index.json")
    with open(index_path) as f:
        index = json.load(f)["models"]
    only = sys.argv[1:]  # fixture names to (re)write; all when none are given
    for name, cls_name, kwargs, dtype in MODELS:
        if only and name not in only:
            continue
        for seed in range(1, 400):
            model = build(cls_name, kwargs, seed, dtype)
            logits, new, margin = greedy(model)
            # A continuation that repeats one token proves little about the window.
            if margin >= MIN_MARGIN and len(set(new)) >= MIN_DISTINCT:
                break
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        model.config.architectures = [cls_name]
        seq = sequence_logits(model, new)
        embed_scale = float(model.get_input_embeddings().embed_scale)
        if cls_name == "Gemma3ForConditionalGeneration":
            # The names save_pretrained writes (language_model.model.*, vision_tower.*).
            model.to(dtype).save_pretrained(d)
        else:
            model.config.save_pretrained(d)
            state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
            state.pop("lm_head.weight", None)  # tied
            save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        ref = {
            **reference_record("tools/gen_gemma_fixtures.py", cls_name, dtype, seed, logits, new, margin),
            "sequence_ids": PROMPT + new[:-1],
            "sequence_logits": [[round(float(x), 6) for x in row] for row in seq],
            "embed_scale": embed_scale,
        }
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f)
        if name not in index:
            index.append(name)
        print(f"{name}: seed {seed}, min margin {margin:.4f}, greedy {new[:8]}...", file=sys.stderr)
    with open(index_path, "w") as f:
        json.dump({"models": index}, f, indent=1)


if __name__ == "__main__":
    main()
