#!/usr/bin/env python3
"""Converts every transformers fixture in tests/fixtures/models (tools/gen_hf_fixtures.py:
Llama MHA / GQA-tied / llama3-scaled, Mistral, Qwen2 with bias, Qwen3 with q/k norm) to
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


def write_tokenizer(d):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=260, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["Once upon a time there was a little fox."] * 4, trainer)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>"}, f)


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
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (the sdist's vendor/llama.cpp)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(MODELS, "index.json")) as f:
        names = json.load(f)["models"]
    for name in names:
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
            write_tokenizer(d)
            out = os.path.join(OUT, name + ".gguf")
            convert(a.llama_cpp, d, OUTTYPE[ref["storage_dtype"]], out)
        print(f"{name}: {os.path.getsize(out)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
