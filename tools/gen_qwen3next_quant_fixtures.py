#!/usr/bin/env python3
"""Well-conditioned quantised Qwen3-Next GGUF fixtures (issue 15): spool against llama.cpp
on files llama.cpp's own quantiser wrote (tests/models/qwen3next_gguf_test.cc,
`Qwen3NextQuantGguf`).

Why not the h64 fixture of tools/gen_qwen3next_gguf_fixtures.py (its quantised files were removed): that tiny
random model amplifies any perturbation by orders of magnitude — llama.cpp's own logits
on its Q8_0 file and on an f32 file holding exactly the dequantised Q8_0 weights differ by
up to 1.6 (|Δ| / (1 + |logit|)), which is llama.cpp's activation quantisation (Q8
activations against Q8_0 weights) alone. No comparison of two engines that quantise
activations with different f32 rounding upstream can be tight there. This model (weights
4x smaller, hidden 4x larger) responds far less to rounding, and its hidden size (256)
lets Q4_K_M hold real K-quant blocks; llama.cpp's own gap to its f32 run of the
unquantised model is recorded per file in the json as `llamacpp_self_gap`, the scale the
test's bound is set against:
hidden 256, 2 layers (0: Gated DeltaNet, 1: gated full attention; full_attention_interval
2), 2 key / 4 value heads of 64 (llama.cpp needs dk = dv), conv kernel 4, 4 experts top-2
(moe_intermediate 64) + a sigmoid-gated shared expert (64) in both layers, 4 attention
heads / 2 KV heads of 64, partial RoPE 0.25, vocab 256, weights N(0, INIT²) (INIT 0.02,
against the h64 model's 0.08), norms 1 + 0.1·N (h64: 0.2), A_log / dt_bias N(0, 0.5²). The
seed is the first whose every routing decision (transformers, f32, prompt + greedy
continuation) wins by gen_moe_fixtures.MIN_ROUTE_GAP: seed 0 (route gap 0.0021). Measured
by this script (2026-12-06): llama.cpp's own gap to its f32 run 0.318 (Q8_0) and 1.7
(Q4_K_M) — still far above weight rounding (a near-tie routing decision or an activation
rounding flip moves a logit by much more than the weights moved), but spool agrees with
llama.cpp 30-60x more closely than that (tests/models/qwen3next_gguf_test.cc).

Steps: transformers' model → save_pretrained (temporary folder, with
gen_converted_fixtures.write_tokenizer's byte-level BPE) → llama.cpp's
convert_hf_to_gguf.py --outtype f32 (temporary) → llama_cpp.llama_model_quantize with its
default rules to Q8_0 and Q4_K_M → tests/fixtures/qwen3next/qwen3next-h256-{q8_0,q4_k_m}.gguf;
llama-cpp-python's outputs on each (tools/gen_qwen3next_gguf_fixtures.llamacpp_refs: logits
at 80 positions, 32 greedy ids with margins, perplexity), the type of every tensor, and
llama.cpp's own gap to the f32 file, into qwen3next-h256-quant.llamacpp.json. Only the
quantised files are committed (the f32 model is 4.6 MB; its arithmetic is proven by the
h64 fixture's f32 tests).

Pinned: transformers 5.25.0 (refused otherwise), llama-cpp-python 0.3.36 (its sdist's
vendor/llama.cpp for the converter and gguf-py), numpy 2.x, torch 2.x. Not run in CI:
  PYTHONPATH=<sdist>/vendor/llama.cpp/gguf-py \\
    python3 tools/gen_qwen3next_quant_fixtures.py --llama-cpp <sdist>/vendor/llama.cpp
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_qwen3next_gguf_fixtures as base  # noqa: E402  (convert, llamacpp_refs, PROMPT, N_NEW)

OUT = base.OUT
NAME = "qwen3next-h256"
INIT = 0.02
CONFIG = dict(hidden_size=256, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=64, vocab_size=256, max_position_embeddings=256,
              rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0, partial_rotary_factor=0.25,
              linear_conv_kernel_dim=4, linear_key_head_dim=64, linear_value_head_dim=64,
              linear_num_key_heads=2, linear_num_value_heads=4, num_experts=4, num_experts_per_tok=2,
              moe_intermediate_size=64, shared_expert_intermediate_size=64, norm_topk_prob=True,
              decoder_sparse_step=1, mlp_only_layers=[], full_attention_interval=2,
              bos_token_id=1, eos_token_id=2, initializer_range=INIT)
# llama.cpp file types (llama_ftype values), quantised with llama.cpp's default tensor-type
# rules (not `pure`): rows of 64 columns cannot hold K-quant blocks, so those tensors fall
# back (llama_tensor_get_type: q4_K -> q5_0, q6_K -> q8_0); the json records every type.
QUANT_TYPES = {"q8_0": 7, "q4_k_m": 15}


def build(seed):
    import torch
    import transformers
    torch.manual_seed(seed)
    model = transformers.Qwen3NextForCausalLM(transformers.Qwen3NextConfig(**CONFIG)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1:
                continue
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:  # A_log, dt_bias
                p.copy_(0.5 * torch.randn_like(p))
    return model


def logits_of(llama_cpp, path, seq):
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False, flash_attn=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    llm.reset()
    llm.eval(seq)
    return np.array([llm.scores[i] for i in range(len(seq))], dtype=np.float64)


def rel(a, b):
    return float(np.max(np.abs(a - b) / (1 + np.abs(b))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("--seed", type=int, default=0, help="first seed to try")
    a = ap.parse_args()
    import torch
    import transformers
    import llama_cpp
    import gguf
    import gen_converted_fixtures as conv
    import gen_rope_freqs_fixture as rf
    from gen_llamacpp_refs import perplexity
    from gen_moe_fixtures import MIN_ROUTE_GAP, route_gap
    if transformers.__version__ != base.TRANSFORMERS_VERSION:
        sys.exit(f"transformers {transformers.__version__}: this generator is pinned to {base.TRANSFORMERS_VERSION}")
    rf.no_extra_buffers(llama_cpp)
    for seed in range(a.seed, a.seed + 400):
        model = build(seed)
        gap = route_gap(model)
        print(f"seed {seed}: route gap {gap:.4f}", file=sys.stderr, flush=True)
        if gap >= MIN_ROUTE_GAP:
            break
    ids = torch.tensor([base.PROMPT])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=base.N_NEW, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=base.N_NEW)
    seq = base.sequence(out[0, len(base.PROMPT):].tolist())
    tmp = tempfile.mkdtemp(prefix="q3n-h256-")
    try:
        hf = os.path.join(tmp, NAME)
        model.config.architectures = ["Qwen3NextForCausalLM"]
        model.save_pretrained(hf)
        conv.write_tokenizer(hf, CONFIG["vocab_size"], "Qwen-Qwen3-0.6B")
        f32 = os.path.join(tmp, NAME + ".gguf")
        base.convert(a.llama_cpp, hf, f32)
        f32_logits = logits_of(llama_cpp, f32, seq)
        refs = {"generator": "tools/gen_qwen3next_quant_fixtures.py", "llama_cpp_python": llama_cpp.__version__,
                "transformers_version": transformers.__version__, "torch_version": torch.__version__,
                "seed": seed, "min_route_gap": gap, "config": CONFIG, "files": {}}
        for t, ftype in QUANT_TYPES.items():
            out_path = os.path.join(OUT, f"{NAME}-{t}.gguf")
            p = llama_cpp.llama_model_quantize_default_params()
            p.ftype = ftype
            p.nthread = 2
            rc = llama_cpp.llama_model_quantize(f32.encode(), out_path.encode(), p)
            assert rc == 0, f"llama_model_quantize {t}: {rc}"
            types = {}
            for tensor in gguf.GGUFReader(out_path).tensors:
                types.setdefault(tensor.tensor_type.name, []).append(tensor.name)
            r = base.llamacpp_refs(llama_cpp, perplexity, out_path, seq)
            # llama.cpp's own distance from its f32 run of the unquantised model: the scale
            # of quantisation noise on this model, against which spool's bound is set.
            r["llamacpp_self_gap"] = rel(np.array(r["sequence_logits"]), f32_logits)
            r["tensor_types"] = {k: len(v) for k, v in sorted(types.items())}
            r["tensor_types_by_name"] = {k: sorted(v) for k, v in sorted(types.items())}
            refs["files"][os.path.basename(out_path)] = r
            print(f"{os.path.basename(out_path)}: {os.path.getsize(out_path)} bytes, types {r['tensor_types']}, "
                  f"llama.cpp vs its f32 run {r['llamacpp_self_gap']:.3g}, greedy {r['greedy_ids'][:8]}..., "
                  f"min margin {min(r['greedy_margins'])}, ppl {r['perplexity']['ppl']:.4f}", file=sys.stderr)
        print(f"seed {seed}, route gap {gap:.4f}, f32 logit range {f32_logits.min():.3f}..{f32_logits.max():.3f}",
              file=sys.stderr)
        with open(os.path.join(OUT, NAME + "-quant.llamacpp.json"), "w") as f:
            json.dump(refs, f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
