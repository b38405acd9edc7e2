"""Draft trees from the CLI (docs/parts/speculative.md, "Draft trees"): `spool run
--draft-tree N` with prompt lookup and with a self-draft emits exactly the plain greedy
ids on stories260K, SmolLM2 (RAM KV, spilling disk KV, ggml numerics) and a streamed
synthetic model; `spool batch` with lookup trees equals plain; bad tree flags fail
clearly."""
import json

import pytest

from conftest import run
from test_budget_property import write_synthetic
from test_speculative import REPEAT, run_json, same_ids


@pytest.mark.parametrize("drafter", [["--lookup", "--draft-tree", "16"], ["--draft", "self", "--draft-tree", "24"],
                                     ["--draft", "self:q4_0", "--draft-tree", "64"]])
def test_trees_keep_the_ids_on_stories(spool_bin, stories, drafter, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOOL_HOME", str(tmp_path / "home"))  # the self-draft copies
    args = ["Once upon a time, there was a little girl. Once upon a time", "-n", "90", "--ignore-eos", "--temp", "0"]
    s = same_ids(spool_bin, stories, args, drafter)
    assert s["drafted_tokens"] > 0 and s["accepted_tokens"] > 0
    assert s["tokens_per_weight_pass"] > (2.0 if "self" in drafter[1] else 1.0)


@pytest.mark.parametrize("kv", [["--kv-window", "0"], ["--ctx", "1024", "--kv-window", "256"],
                                ["--kv-window", "0", "--numerics", "ggml", "--kv-type", "f32"]])
def test_lookup_trees_keep_the_ids_on_smollm2(spool_bin, smollm2, kv):
    prompt = " ".join([REPEAT] * 12)
    s = same_ids(spool_bin, smollm2, [prompt, "-n", "40", "--temp", "0", *kv], ["--lookup", "--draft-tree", "32"])
    assert s["accepted_tokens"] > 0 and s["tokens_per_weight_pass"] > 1


def test_lookup_trees_keep_the_ids_on_a_streamed_model(spool_bin, tmp_path):
    model = tmp_path / "synthetic"
    write_synthetic(model)
    ids = ",".join(str(i) for i in [5, 9, 300, 41, 7, 5, 9, 301, 42, 7, 5, 9, 300, 41, 8, 5, 9])
    args = ["--prompt-ids", ids, "-n", "40", "--mem-budget", "150M"]
    plain = run_json(spool_bin, str(model), *args)
    assert plain["stats"]["plan"]["streamed_groups"], "the budget should stream some groups"
    s = same_ids(spool_bin, str(model), args, ["--lookup", "--draft-tree", "16"])
    assert s["drafted_tokens"] > 0


def test_batch_with_lookup_trees_equals_without(spool_bin, smollm2, tmp_path):
    outs = []
    for name, spec in [("plain", False), ("tree", {"lookup": True, "draft_tree": 16})]:
        lines = [json.dumps({"custom_id": f"j{i}", "method": "POST", "url": "/v1/completions",
                             "body": {"prompt": f"{REPEAT} ({i})", "max_tokens": 24, "temperature": 0,
                                      "speculative": spec}}) for i in range(3)]
        inp, out = tmp_path / f"{name}.in.jsonl", tmp_path / f"{name}.jsonl"
        inp.write_text("\n".join(lines) + "\n")
        r = run(spool_bin, "batch", smollm2, "--in", str(inp), "--out", str(out), "--threads", "2", "--batch", "2",
                timeout=300)
        assert r.returncode == 0, r.stderr
        assert ("speculative:" in r.stderr) == (name == "tree")
        recs = sorted((json.loads(l) for l in out.read_text().splitlines()), key=lambda x: x["custom_id"])
        outs.append([x["response"]["body"]["choices"][0]["text"] for x in recs])
    assert outs[0] == outs[1]


def test_bad_tree_flags_fail_clearly(spool_bin, stories):
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--lookup", "--draft-tree", "65")
    assert r.returncode != 0 and "--draft-tree" in r.stderr, r.stderr
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--draft-tree", "8")
    assert r.returncode != 0 and "needs a drafter" in r.stderr, r.stderr
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--draft", stories, "--draft-sample", "--draft-tree", "8")
    assert r.returncode != 0 and "chains" in r.stderr, r.stderr
