"""`spool run`, `show` and `perplexity` driven as a user would, including bad input."""
import json
import pathlib
import shutil

from conftest import SHARED, run


def test_run_greedy_json_matches_llamacpp_reference(spool_bin, stories):
    ref = json.loads((SHARED / "refs" / "generate-stories260K.json").read_text())
    case = ref["cases"][0]
    r = run(spool_bin, "run", stories, case["prompt"], "--temp", "0", "-n", "100", "--ctx", "128", "--json",
            "--kv-type", "f32")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["prompt_ids"] == case["prompt_ids"]
    assert out["ids"] == case["generated_ids"]
    assert out["text"] == case["generated_text"]
    assert out["stats"]["peak_rss_bytes"] > 0


def test_run_streams_text_and_stats(spool_bin, stories):
    r = run(spool_bin, "run", stories, "Once upon a time", "--temp", "0", "-n", "20", "--ctx", "128", "--stats")
    assert r.returncode == 0, r.stderr
    assert "there was a little girl" in r.stdout
    assert "time to first token" in r.stderr and "decode" in r.stderr and "peak RSS" in r.stderr


def test_run_seed_is_deterministic(spool_bin, stories):
    args = ["run", stories, "Once", "--temp", "1.0", "-n", "30", "--ctx", "128", "--json"]
    a = json.loads(run(spool_bin, *args, "--seed", "7").stdout)["ids"]
    b = json.loads(run(spool_bin, *args, "--seed", "7").stdout)["ids"]
    c = json.loads(run(spool_bin, *args, "--seed", "8").stdout)["ids"]
    assert a == b
    assert a != c


def test_show_describes_model(spool_bin, stories):
    r = run(spool_bin, "show", stories)
    assert r.returncode == 0, r.stderr
    assert "llama" in r.stdout and "layers         5" in r.stdout and "vocabulary     512" in r.stdout


def test_perplexity_last_line(spool_bin, stories):
    r = run(spool_bin, "perplexity", stories, "--file", str(SHARED / "refs" / "story.txt"), "--ctx", "128",
            "--kv-type", "f32")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("ppl ")
    want = json.loads((SHARED / "refs" / "perplexity.json").read_text())["runs"][0]["ppl_with_f32_kv_cache"]
    assert abs(float(last.split()[1]) - want) <= 1e-3 * want


# ---- bad input: a clear error naming the problem, non-zero exit, no crash ----

def assert_clean_failure(r, *needles):
    assert r.returncode in (1, 2), (r.returncode, r.stderr)  # not a signal (negative) or abort (134)
    assert r.stderr.startswith("spool: "), r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_missing_model(spool_bin, tmp_path):
    r = run(spool_bin, "run", str(tmp_path / "nope.gguf"), "hi")
    assert_clean_failure(r, "nope.gguf")


def test_truncated_model(spool_bin, stories, tmp_path):
    data = pathlib.Path(stories).read_bytes()
    for cut in (10, 200, 5000, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.gguf"
        p.write_bytes(data[:cut])
        r = run(spool_bin, "run", str(p), "hi", "-n", "2")
        assert_clean_failure(r, str(p))


def test_unknown_architecture(spool_bin, stories, tmp_path):
    data = pathlib.Path(stories).read_bytes()
    i = data.index(b"general.architecture")
    j = data.index(b"llama", i)
    p = tmp_path / "arch.gguf"
    p.write_bytes(data[:j] + b"zzzzz" + data[j + 5:])
    r = run(spool_bin, "run", str(p), "hi")
    assert_clean_failure(r, "zzzzz", "not supported")


def test_not_a_model(spool_bin, tmp_path):
    p = tmp_path / "text.gguf"
    p.write_text("hello, I am not a model\n" * 10)
    assert_clean_failure(run(spool_bin, "run", str(p), "hi"), str(p))


def test_hf_folder_missing_tensor(spool_bin, tmp_path):
    src = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "models" / "llama-mha-f32"
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["num_hidden_layers"] = 4
    (dst / "config.json").write_text(json.dumps(cfg))
    assert_clean_failure(run(spool_bin, "run", str(dst), "--prompt-ids", "1,2"), "missing tensor")


def test_prompt_longer_than_context(spool_bin, stories):
    r = run(spool_bin, "run", stories, "Once upon a time " * 60, "--ctx", "64", "-n", "4")
    assert_clean_failure(r, "context")


def test_context_above_model_maximum(spool_bin, stories):
    assert_clean_failure(run(spool_bin, "run", stories, "hi", "--ctx", "100000"), "maximum")


def test_token_id_out_of_range(spool_bin, stories):
    assert_clean_failure(run(spool_bin, "run", stories, "--prompt-ids", "1,99999"), "99999")


def test_prompt_ids_from_a_file_equal_the_same_ids_inline(spool_bin, stories, tmp_path):
    ids = [1, 403, 407, 261, 378, 109, 276, 260]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, ids[:3])) + "\n" + ",".join(map(str, ids[3:])) + ",\n")
    common = ["-n", "8", "--temp", "0", "--ctx", "64", "--json"]
    inline = run(spool_bin, "run", stories, "--prompt-ids", ",".join(map(str, ids)), *common)
    from_file = run(spool_bin, "run", stories, "--prompt-ids", "@" + str(ids_file), *common)
    assert inline.returncode == 0 and from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["prompt_ids"] == ids
    assert json.loads(from_file.stdout)["ids"] == json.loads(inline.stdout)["ids"]


def test_prompt_ids_file_missing_or_malformed(spool_bin, stories, tmp_path):
    assert_clean_failure(run(spool_bin, "run", stories, "--prompt-ids", "@" + str(tmp_path / "nope.txt")), "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 x3\n")
    r = run(spool_bin, "run", stories, "--prompt-ids", "@" + str(bad))
    assert_clean_failure(r, "x3")
    assert "bad.txt" in r.stderr


def test_bad_flags(spool_bin, stories):
    assert run(spool_bin, "run", stories, "hi", "--bogus").returncode == 2
    assert run(spool_bin, "run", stories, "hi", "-n", "abc").returncode == 2
    assert_clean_failure(run(spool_bin, "run", stories, "hi", "--top-p", "3"), "top_p")
    assert_clean_failure(run(spool_bin, "run", stories, "hi", "--kv-type", "q4"), "kv-type")
    assert run(spool_bin, "bogus-command").returncode == 2


def test_run_numerics_ggml_equals_llamacpp_on_smollm2(spool_bin, smollm2):
    """`--numerics ggml --kv-type f32`: the default model's 64-token greedy continuation is
    llama-cpp-python's (f32 KV, fixture from tools/gen_llamacpp_refs.py), token for token."""
    model = smollm2
    ref = json.loads((pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "smollm2" / "llamacpp_refs.json").read_text())
    case = ref["cases"][1]
    r = run(spool_bin, "run", str(model), case["prompt"], "--temp", "0", "-n", str(ref["n_predict"]), "--json",
            "--kv-type", "f32", "--numerics", "ggml", "--ctx", "1024")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["prompt_ids"] == case["prompt_ids"]
    assert out["ids"] == case["generated_ids"]


def test_numerics_ggml_rejects_hf_models_and_bad_values(spool_bin, stories):
    r = run(spool_bin, "run", stories, "Hi", "-n", "1", "--numerics", "fast")
    assert r.returncode != 0 and "--numerics must be spool or ggml" in r.stderr
    hf = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "models" / "llama-mha-f32"
    r = run(spool_bin, "run", str(hf), "--prompt-ids", "1,2", "-n", "1", "--numerics", "ggml")
    assert r.returncode != 0 and "GGUF models only" in r.stderr
