#!/usr/bin/env python3
"""Writes the yarn fixture: a tiny random Llama-shaped model with YaRN rope scaling
(factor 4, original context 32, so that the long prompt runs past the original context
and the ramp between interpolated and extrapolated frequencies is exercised) as an HF
folder, the same model converted by llama.cpp's convert_hf_to_gguf.py (which writes
`llama.rope.scaling.type = yarn`, `.factor`, `.original_context_length`,
`.yarn_beta_fast/slow`), and both references:

  tests/fixtures/yarn/hf/                 config.json, model.safetensors (f32), tokenizer,
                                          reference.json (transformers, f32 compute)
  tests/fixtures/yarn/llama-yarn-f32.gguf    convert_hf_to_gguf.py --outtype f32
  tests/fixtures/yarn/llama-yarn-q8_0.gguf   convert_hf_to_gguf.py --outtype q8_0
  tests/fixtures/yarn/llamacpp_refs.json     llama-cpp-python on each GGUF (as
                                          tools/gen_rope_freqs_fixture.py records them)

Everything but the model shape, prompts and output paths is tools/gen_rope_freqs_fixture.py
(same seed search, converter invocation, llama.cpp settings); run it the same way:
  PYTHONPATH=llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=<dir of libllama.so> \\
    python3 tools/gen_yarn_fixture.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp

Shape: 2 layers, hidden 64, 2 heads of 32 (GQA 2:1), ffn 128, rope_theta 10000, yarn
factor 4 over an original context of 32 (max_position_embeddings 128 = 4 x 32), beta_fast
32, beta_slow 1 (the defaults, written explicitly so that the converter stores them): the
correction range is [0, 3] (of 16 frequencies), so frequency 0 is extrapolated, 1 and 2
blended, the rest interpolated; attention factor 0.1 ln 4 + 1. Kept small: the fixture
(both GGUFs, the HF folder and every prompt logit of the references) is about 3 MB.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_rope_freqs_fixture as base  # noqa: E402

base.GENERATOR = "tools/gen_yarn_fixture.py"
base.OUT = os.path.join(base.ROOT, "tests", "fixtures", "yarn")
base.HF = os.path.join(base.OUT, "hf")
base.GGUFS = {"f32": os.path.join(base.OUT, "llama-yarn-f32.gguf"),
              "q8_0": os.path.join(base.OUT, "llama-yarn-q8_0.gguf")}
# One prompt of 35 tokens (the fixture tokenizer's vocabulary is small), longer than the
# original context of 32; the 32 greedy tokens run on to position 66. One prompt keeps the
# fixture small: every prompt logit is recorded.
base.PROMPTS = ["The quick brown fox jumps over the lazy dog. Once upon a time, there was"]
base.CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=1, head_dim=32, tie_word_embeddings=True, rope_theta=10000.0,
                   rms_norm_eps=1e-5, max_position_embeddings=128, bos_token_id=0, eos_token_id=1,
                   rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32,
                                     beta_fast=32.0, beta_slow=1.0))



def use_qwen2(out_dir):
    """`--qwen2 DIR`: the same recipe on a Qwen2-shaped model (neox rope, QKV biases) into
    DIR instead of the fixture (not committed: the fixture budget is spent; the by-hand
    check recorded in docs/testing.md swaps it in for tests/fixtures/yarn). The vocabulary
    is padded by 13 rows because the converter's Qwen2 vocab wants more rows than tokens."""
    import torch
    import transformers
    base.OUT = out_dir
    base.HF = os.path.join(out_dir, "hf")
    base.GGUFS = {"f32": os.path.join(out_dir, "llama-yarn-f32.gguf"),
                  "q8_0": os.path.join(out_dir, "llama-yarn-q8_0.gguf")}
    cfg = {k: v for k, v in base.CONFIG.items() if k != "head_dim"}  # Qwen2: hidden / heads

    def build(seed, vocab_size):
        torch.manual_seed(seed)
        c = transformers.Qwen2Config(vocab_size=vocab_size + 13, initializer_range=0.25,
                                     architectures=["Qwen2ForCausalLM"], **cfg)
        m = transformers.Qwen2ForCausalLM(c).eval()
        with torch.no_grad():
            for name, p in m.named_parameters():
                if p.dim() == 1:  # random norms and biases
                    p.copy_((1.0 if "norm" in name else 0.0) + 0.2 * torch.randn_like(p))
        return m

    base.build = build


if __name__ == "__main__":
    if "--qwen2" in sys.argv:
        i = sys.argv.index("--qwen2")
        use_qwen2(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    base.main()
