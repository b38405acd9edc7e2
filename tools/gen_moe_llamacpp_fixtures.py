#!/usr/bin/env python3
"""Mixture-of-experts GGUFs made by llama.cpp's own tools, and llama.cpp's outputs on them
(issue 13's GGUF proof; tests/models/converted_moe_test.cc).

Stage `quant` writes tests/fixtures/moe_quant/: two small random MoE models (built as the
transformers fixtures are, tools/gen_moe_fixtures.py: the seed gives every greedy step a
margin and every routing decision a gap), converted to f32 GGUF by convert_hf_to_gguf.py
(in a temporary folder, not committed) and quantised by llama.cpp's quantiser
(llama_cpp.llama_model_quantize, `pure`: every matrix in the one type; 1-D tensors and
the router `ffn_gate_inp` stay f32 as llama.cpp keeps them):
  - qwen2moe-h64-<type>.gguf, type in q4_0 q4_1 q5_0 q5_1 q8_0 mxfp4: Qwen2-MoE with its shared
    expert (gate, up, down and the [1, n_embd] shared gate quantised too), hidden 64,
    expert and shared intermediate 64 (multiples of the 32-element blocks), 2 layers;
  - qwen3moe-h256-<type>.gguf, type in q4_k q5_k q6_k: Qwen3-MoE, hidden 256, expert
    intermediate 256 (K-quant rows are 256-element super-blocks), 1 layer (about 1 MB a
    file).
Stage `f16` writes tests/fixtures/converted/qwen3-moe-f16.gguf (the qwen3-moe-f32 fixture
through the converter with --outtype f16: f16 expert tensors).
Stage `refs` records llama-cpp-python's outputs on every MoE GGUF (the converted
fixtures of tools/gen_converted_fixtures.py and the ones above) into each folder's
llamacpp_refs.json: prompt ids, every prompt logit (exact f32), 32 greedy ids with
margins (tools/gen_rope_freqs_fixture.py's llamacpp_refs), and perplexity over a fixed
token sequence (story.txt's first characters tokenised by the GGUF's own tokenizer;
windows of 32, BOS first, tools/gen_llamacpp_refs.py's perplexity).

Not run in CI. Needs torch, transformers, tokenizers, llama-cpp-python and the llama.cpp
source tree of its sdist:
  PYTHONPATH=llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=<dir of libllama.so> \\
    python3 tools/gen_moe_llamacpp_fixtures.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONVERTED = os.path.join(ROOT, "tests", "fixtures", "converted")
QUANT = os.path.join(ROOT, "tests", "fixtures", "moe_quant")
# The converted MoE fixtures (tools/gen_converted_fixtures.py) plus the f16 one.
CONVERTED_MOE = ["qwen3-moe-f32", "qwen3-moe-f16", "qwen2-moe-all-f32", "mixtral-bf16", "olmoe-mha-f32"]
PROMPT = "Once upon a time, a quick fox"
PPL_CTX = 32
PPL_CHARS = 600

COMMON = dict(vocab_size=320, max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=False,
              rope_theta=1000000.0, use_sliding_window=False, num_experts=4, num_experts_per_tok=2,
              decoder_sparse_step=1, mlp_only_layers=[])
QUANT_MODELS = [
    # name, class, config, llama.cpp file types (llama_ftype: 2 Q4_0, 3 Q4_1, 8 Q5_0, 9 Q5_1,
    # 7 Q8_0, 38 MXFP4_MOE, 14 Q4_K_S, 16 Q5_K_S, 18 Q6_K; with `pure` every matrix gets the
    # base type)
    ("qwen2moe-h64", "Qwen2MoeForCausalLM",
     dict(COMMON, hidden_size=64, intermediate_size=64, moe_intermediate_size=64, shared_expert_intermediate_size=64,
          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, norm_topk_prob=False),
     {"q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q8_0": 7, "mxfp4": 38}),
    ("qwen3moe-h256", "Qwen3MoeForCausalLM",
     dict(COMMON, hidden_size=256, intermediate_size=256, moe_intermediate_size=256, num_hidden_layers=1,
          num_attention_heads=4, num_key_value_heads=2, head_dim=64, norm_topk_prob=True),
     {"q4_k": 14, "q5_k": 16, "q6_k": 18}),
]


def llama_cpp_dir_on_path(llama_cpp_dir):
    sys.path.insert(0, os.path.join(llama_cpp_dir, "gguf-py"))


def stage_quant(a):
    import torch
    import gen_converted_fixtures as conv
    import gen_moe_fixtures as moe
    from gen_hf_fixtures import MIN_MARGIN, build, greedy
    import llama_cpp
    os.makedirs(QUANT, exist_ok=True)
    for name, cls_name, cfg, types in QUANT_MODELS:
        for seed in range(1, 400):
            model = build(cls_name, cfg, seed, torch.float32)
            _, _, margin = greedy(model)
            if margin < MIN_MARGIN:
                continue
            gap = moe.route_gap(model)
            if gap >= moe.MIN_ROUTE_GAP:
                break
        print(f"{name}: seed {seed}, transformers margin {margin:.4f}, route gap {gap:.4f}", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, name)
            model.save_pretrained(d)
            conv.write_tokenizer(d, cfg["vocab_size"])
            f32 = os.path.join(tmp, name + "-f32.gguf")
            conv.convert(a.llama_cpp, d, "f32", f32)
            for t, ftype in types.items():
                out = os.path.join(QUANT, f"{name}-{t}.gguf")
                p = llama_cpp.llama_model_quantize_default_params()
                p.ftype = ftype
                p.pure = True
                p.nthread = 2
                rc = llama_cpp.llama_model_quantize(f32.encode(), out.encode(), p)
                assert rc == 0, f"llama_model_quantize {t}: {rc}"
                print(f"  {os.path.basename(out)}: {os.path.getsize(out)} bytes", file=sys.stderr)


def stage_f16(a):
    import gen_converted_fixtures as conv
    src = os.path.join(conv.MODELS, "qwen3-moe-f32")
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "qwen3-moe-f16")
        shutil.copytree(src, d)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        conv.write_tokenizer(d, cfg["vocab_size"], conv.CHAT_TEMPLATES["qwen3-moe-f16"])
        conv.convert(a.llama_cpp, d, "f16", os.path.join(CONVERTED, "qwen3-moe-f16.gguf"))


def refs_for(paths, out_json):
    import llama_cpp
    import gen_rope_freqs_fixture as rf
    from gen_llamacpp_refs import perplexity
    rf.PROMPTS = [PROMPT]
    text = open(os.path.join(ROOT, "..", "shared", "data", "refs", "story.txt")).read()[:PPL_CHARS]
    models = {}
    for path in paths:
        r = rf.llamacpp_refs(path)
        llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False,
                              flash_attn=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
        toks = llm.tokenize(text.encode(), add_bos=False, special=False)
        toks = toks[:len(toks) // PPL_CTX * PPL_CTX]
        ppl, count = perplexity(llm, toks, PPL_CTX, bos=llm.token_bos())
        r["perplexity"] = {"token_ids": toks, "n_ctx": PPL_CTX, "bos": llm.token_bos(), "scored_tokens": count,
                           "ppl": ppl}
        c = r["cases"][0]
        print(f"{os.path.basename(path)}: {len(c['prompt_ids'])} prompt ids, greedy {c['generated_ids'][:6]}..., "
              f"min margin {min(c['greedy_margins'])}, ppl {ppl:.4f} over {count} tokens", file=sys.stderr)
        models[os.path.basename(path)] = r
    refs = {"generator": "tools/gen_moe_llamacpp_fixtures.py", "llama_cpp_python": llama_cpp.__version__,
            "kv_cache": "f32", "flash_attn": False, "models": models}
    with open(out_json, "w") as f:
        json.dump(refs, f)


def stage_refs(a):
    import llama_cpp
    import gen_rope_freqs_fixture as rf
    rf.no_extra_buffers(llama_cpp)
    refs_for([os.path.join(CONVERTED, n + ".gguf") for n in CONVERTED_MOE], os.path.join(CONVERTED, "llamacpp_refs.json"))
    quant = [os.path.join(QUANT, f"{name}-{t}.gguf") for name, _, _, types in QUANT_MODELS for t in types]
    refs_for(quant, os.path.join(QUANT, "llamacpp_refs.json"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("--stage", choices=["all", "quant", "f16", "refs"], default="all")
    a = ap.parse_args()
    if a.stage in ("all", "quant"):
        stage_quant(a)
    if a.stage in ("all", "f16"):
        stage_f16(a)
    if a.stage in ("all", "refs"):
        stage_refs(a)


if __name__ == "__main__":
    main()
