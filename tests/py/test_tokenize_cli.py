"""CLI tests of `spool tokenize` / `spool detokenize` (env SPOOL_BIN: the binary).

Expected ids come from llama.cpp's vocabulary test vectors (../shared/data/vocab,
produced with Hugging Face tokenizers) and from the committed HF parity fixtures.
"""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = os.path.join(os.path.dirname(ROOT), "shared", "data", "vocab")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SPM = os.path.join(VOCAB, "ggml-vocab-llama-spm.gguf")
LLAMA3 = os.path.join(VOCAB, "ggml-vocab-llama-bpe.rebuilt.gguf")


def spool(*args, input_bytes=None):
    binary = os.environ.get("SPOOL_BIN", os.path.join(ROOT, "build", "bin", "spool"))
    return subprocess.run([binary, *args], capture_output=True, input=input_bytes, timeout=120)


def vectors(gguf):
    with open(gguf + ".inp", encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")[:-1]
    with open(gguf + ".out", encoding="utf-8") as f:
        ids = [[int(x) for x in line.split()] for line in f.read().split("\n")]
    return list(zip(texts, ids))


def tokenize_json(model, *args):
    r = spool("tokenize", model, "--json", *args)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)["ids"]


@pytest.mark.skipif(not os.path.exists(SPM), reason="shared vocab data not present")
def test_tokenize_matches_reference_vectors():
    cases = [c for c in vectors(SPM) if c[0] and "\n" not in c[0]][:12]
    assert cases
    for text, ids in cases:
        assert tokenize_json(SPM, "--text", text) == ids, text


@pytest.mark.skipif(not os.path.exists(SPM), reason="shared vocab data not present")
def test_flags_default_off_and_add_special():
    assert tokenize_json(SPM, "--text", "Hello world") == [15043, 3186]
    assert tokenize_json(SPM, "--text", "Hello world", "--add-special") == [1, 15043, 3186]


@pytest.mark.skipif(not os.path.exists(LLAMA3), reason="shared vocab data not present")
def test_parse_special():
    plain = tokenize_json(LLAMA3, "--text", "<|begin_of_text|>Hi")
    special = tokenize_json(LLAMA3, "--text", "<|begin_of_text|>Hi", "--parse-special")
    assert special[0] == 128000 and len(special) == 2
    assert 128000 not in plain and len(plain) > 2


@pytest.mark.skipif(not os.path.exists(LLAMA3), reason="shared vocab data not present")
def test_file_and_detokenize_round_trip(tmp_path):
    text = "Streaming 🦙 détokenisation, 你好!\n  indented"
    path = tmp_path / "in.txt"
    path.write_text(text, encoding="utf-8")
    ids = tokenize_json(LLAMA3, "--file", str(path))
    r = spool("detokenize", LLAMA3, "--ids", ",".join(map(str, ids)), "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["text"] == text


def test_tokenizer_json_fixture():
    exp = json.load(open(os.path.join(FIXTURES, "spm_legacy.expected.json"), encoding="utf-8"))
    corpus = json.load(open(os.path.join(FIXTURES, "corpus.json"), encoding="utf-8"))["strings"]
    model = os.path.join(FIXTURES, "spm_legacy.tokenizer.json")
    for i in [5, 20, 100, 200]:
        assert tokenize_json(model, "--text", corpus[i]) == exp["plain"][i], corpus[i]


@pytest.mark.skipif(not os.path.exists(SPM), reason="shared vocab data not present")
def test_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xc3\x28 bad")
    r = spool("tokenize", SPM, "--file", str(bad))
    assert r.returncode == 1 and b"not valid UTF-8" in r.stderr
    r = spool("detokenize", SPM, "--ids", "1,999999")
    assert r.returncode == 1 and b"out of range" in r.stderr
    r = spool("detokenize", SPM, "--ids", "1,x")
    assert r.returncode == 2
    r = spool("tokenize", SPM)
    assert r.returncode == 2
    r = spool("tokenize", str(tmp_path / "missing.gguf"), "--text", "x")
    assert r.returncode == 1 and b"missing.gguf" in r.stderr
