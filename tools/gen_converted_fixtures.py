#!/usr/bin/env python3
"""Converts the transformers fixtures in tests/fixtures/models (tools/gen_hf_fixtures.py:
Llama MHA / GQA-tied / llama3-scaled, Mistral, Qwen2 with bias, Qwen3 with q/k norm;
tools/gen_moe_fixtures.py: the mixture-of-experts ones llama.cpp accepts, see CONVERTED) to
GGUF with llama.cpp's own convert_hf_to_gguf.py, so that spool's GGUF reader is tested on
what the real converter writes for each architecture (docs/parts/formats.md, converter
audit). Output: tests/fixtures/converted/<name>.gguf, in the fixture's storage dtype
(f32 → f32, bf16 → bf16, f16 → f16; norms stay f32 as the converter keeps them).
tests/models/converted_gguf_test.cc checks each against the fixture's transformers
reference.json.

Not run in CI. Needs torch, transformers, tokenizers and llama.cpp's source tree (the
llama-cpp-python sdist's vendor/llama.cpp):
  python3 tools/gen_converted_fixtures.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp

The fixtures have no tokenizer and the converter needs one: a 260-token byte-level BPE is
trained here (smaller than every fixture's vocabulary; the converter pads the rest) and
the converter is told its pre-tokenizer is "llama-bpe" (it refuses unknown ones). The
tests feed token ids, so the vocabulary only has to exist. `architectures`, which
gen_hf_fixtures.py's config.json lacks, is added from the fixture's reference.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "converted")
OUTTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


# Chat templates of the MoE families (../shared/data/chat-templates), stored in the GGUF as
# tokenizer.chat_template (tests/chat/chat_template_load_test.cc renders them from the file):
# Qwen3-MoE uses Qwen3's template, Qwen2-MoE the Qwen2.5 ChatML one, Mixtral a Mistral one.
# None is available for OLMoE.
CHAT_TEMPLATES = {"qwen3-moe-f32": "Qwen-Qwen3-0.6B", "qwen3-moe-f16": "Qwen-Qwen3-0.6B",
                  "qwen2-moe-all-f32": "Qwen-Qwen2.5-7B-Instruct",
                  "mixtral-bf16": "mistralai-Mistral-Nemo-Instruct-2407"}
TEMPLATES = os.path.join(ROOT, "..", "shared", "data", "chat-templates")


def write_tokenizer(d, vocab_size, chat_template=None):
    """A byte-level BPE. Models with more than 260 rows get the full byte alphabet (260
    tokens); smaller ones (the MoE fixtures: 256) an alphabet of printable ASCII, space and
    newline only plus merges, 200 tokens: the converter requires every token id to be a row
    of the embedding table. Text outside that alphabet cannot be tokenised (the tests feed
    prompts of plain ASCII)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    size = 260
    if vocab_size <= 260:
        byte_char = bytes_to_unicode()
        alphabet = [byte_char[b] for b in list(range(32, 127)) + [10]]
        size = 200
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=alphabet, limit_alphabet=len(alphabet), show_progress=False)
    tok.train_from_iterator(["Once upon a time there was a little fox."] * 4, trainer)
    tok.save(os.path.join(d, "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>"}
    if chat_template:
        with open(os.path.join(TEMPLATES, chat_template + ".jinja"), encoding="utf-8") as f:
            config["chat_template"] = f.read()
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)


def bytes_to_unicode():
    """GPT-2's byte → printable character map (what the ByteLevel pre-tokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def convert(llama_cpp_dir, src, outtype, out):
    code = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {llama_cpp_dir!r})\n"
        f"sys.path.insert(1, {os.path.join(llama_cpp_dir, 'gguf-py')!r})\n"
        "from conversion import base\n"
        "base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'llama-bpe'\n"
        f"sys.argv = ['convert_hf_to_gguf.py', '--outtype', {outtype!r}, '--outfile', {out!r}, {src!r}]\n"
        f"runpy.run_path({os.path.join(llama_cpp_dir, 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"convert_hf_to_gguf.py failed on {src}:\n{r.stderr[-3000:]}")


# The fixtures converted. Not qwen3-moe-fused-f32 and qwen2-moe-shared-f32: they have
# dense layers between the sparse ones (mlp_only_layers, decoder_sparse_step 2), which
# llama.cpp's qwen2moe/qwen3moe cannot represent (its loader requires every layer's
# ffn_gate_inp); qwen3-moe-f32 and qwen2-moe-all-f32 are their all-sparse twins. Mixtral
# converts to architecture `llama` with experts, OLMoE to `olmoe` (olmoe-mha-f32: llama.cpp's
# olmoe cannot load the GQA olmoe-f32, its attn_k_norm is sized by n_embd).
CONVERTED = ["llama-mha-f32", "llama-gqa-tied-bf16", "llama3-scaled-sharded-bf16", "mistral-gqa-f16",
             "qwen2-bias-tied-f32", "qwen3-qknorm-bf16",
             "qwen3-moe-f32", "qwen2-moe-all-f32", "mixtral-bf16", "olmoe-mha-f32"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    ap.add_argument("names", nargs="*", help="fixtures to convert (default: all of CONVERTED)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in a.names or CONVERTED:
        src = os.path.join(MODELS, name)
        with open(os.path.join(src, "reference.json")) as f:
            ref = json.load(f)
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, name)
            shutil.copytree(src, d)
            with open(os.path.join(d, "config.json")) as f:
                cfg = json.load(f)
            cfg["architectures"] = [ref["architecture"]]
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=1)
            write_tokenizer(d, cfg["vocab_size"], CHAT_TEMPLATES.get(name))
            out = os.path.join(OUT, name + ".gguf")
            convert(a.llama_cpp, d, OUTTYPE[ref["storage_dtype"]], out)
        print(f"{name}: {os.path.getsize(out)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
