"""Speculative decoding in the CLI (docs/parts/speculative.md): `spool run --lookup` and
`--draft MODEL` emit exactly the ids of plain decoding (greedy and seeded sampling) on
stories260K, the default SmolLM2 model (RAM KV and disk KV) and a synthetic streamed
model; --json reports drafted/accepted tokens and tokens per weight pass; bad drafter
choices fail with a clear message; `show --plan --draft` counts the draft model."""
import json

import pytest

from conftest import run
from test_budget_property import write_synthetic

REPEAT = ("The key is under the red mat. The key is under the red mat. The key is under the red mat. "
          "Where is the key? The key is under the")


def run_json(spool_bin, *args):
    r = run(spool_bin, "run", *args, "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def same_ids(spool_bin, model, args, drafter):
    plain = run_json(spool_bin, model, *args)
    spec = run_json(spool_bin, model, *args, *drafter)
    assert spec["ids"] == plain["ids"]
    assert spec["text"] == plain["text"]
    s = spec["stats"]["speculative"]
    assert plain["stats"]["speculative"]["drafter"] == "none"
    assert plain["stats"]["speculative"]["tokens_per_weight_pass"] == 1.0
    assert s["accepted_tokens"] <= s["drafted_tokens"]
    return s


@pytest.mark.parametrize("sampling", [["--temp", "0"], ["--temp", "0.9", "--seed", "7"]])
def test_lookup_and_draft_keep_the_ids_on_stories(spool_bin, stories, sampling):
    args = ["Once upon a time, there was a little girl. Once upon a time", "-n", "100", "--ignore-eos", *sampling]
    s = same_ids(spool_bin, stories, args, ["--lookup"])
    assert s["drafter"] == "lookup" and s["drafted_tokens"] > 0
    # stories260K drafting for itself: every greedy draft is accepted.
    s = same_ids(spool_bin, stories, args, ["--draft", stories, "--draft-max", "6"])
    assert s["drafter"] == "model" and s["drafted_tokens"] > 0
    if not sampling:
        assert s["accepted_tokens"] == s["drafted_tokens"]
        assert s["tokens_per_weight_pass"] > 3


@pytest.mark.parametrize("kv", [["--kv-window", "0"], ["--ctx", "1024", "--kv-window", "256"]])
def test_lookup_keeps_the_ids_on_smollm2(spool_bin, smollm2, kv):
    # With --kv-window 256 the 400-odd prompt tokens spill pages to disk.
    prompt = " ".join([REPEAT] * 12)
    s = same_ids(spool_bin, smollm2, [prompt, "-n", "48", "--temp", "0", *kv], ["--lookup"])
    spilled = run_json(spool_bin, smollm2, prompt, "-n", "2", *kv)["stats"]["kv_disk_bytes"]
    assert (spilled > 0) == (kv[1] != "0")
    assert s["accepted_tokens"] > 0
    assert s["tokens_per_weight_pass"] > 1


def test_lookup_keeps_the_ids_on_a_streamed_model(spool_bin, tmp_path):
    model = tmp_path / "synthetic"
    write_synthetic(model)
    ids = ",".join(str(i) for i in [5, 9, 300, 41, 7, 5, 9, 300, 41, 7, 5, 9, 300])
    args = ["--prompt-ids", ids, "-n", "40", "--mem-budget", "150M"]
    plain = run_json(spool_bin, str(model), *args)
    assert plain["stats"]["plan"]["streamed_groups"], "the budget should stream some groups"
    s = same_ids(spool_bin, str(model), args, ["--lookup"])
    assert s["drafted_tokens"] > 0


def test_bad_drafter_choices_fail_clearly(spool_bin, stories, smollm2):
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--draft", smollm2)
    assert r.returncode != 0 and "vocabulary" in r.stderr, r.stderr
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--draft", stories, "--lookup")
    assert r.returncode != 0 and "exclude each other" in r.stderr, r.stderr
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--lookup", "--draft-max", "0")
    assert r.returncode != 0 and "--draft-max" in r.stderr, r.stderr
    r = run(spool_bin, "run", stories, "Hi", "-n", "4", "--draft", "/nonexistent/model.gguf")
    assert r.returncode != 0 and "nonexistent" in r.stderr, r.stderr


def test_show_plan_counts_the_draft_model(spool_bin, stories):
    r = run(spool_bin, "show", stories, "--plan", "--json", "--draft", stories)
    assert r.returncode == 0, r.stderr
    with_draft = json.loads(r.stdout)
    r = run(spool_bin, "show", stories, "--plan", "--json")
    without = json.loads(r.stdout)
    assert without["draft_bytes"] == 0
    assert with_draft["draft_bytes"] > 0
    r = run(spool_bin, "show", stories, "--plan", "--draft", stories)
    assert "draft model" in r.stdout
