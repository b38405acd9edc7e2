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


@pytest.mark.parametrize("kv", [["--kv-window", "0"], ["--ctx", "1024", "--kv-window", "256"],
                                ["--kv-window", "0", "--numerics", "ggml", "--kv-type", "f32"]])
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


def test_session_continued_with_lookup_equals_one_plain_run(spool_bin, stories, tmp_path):
    """A session saved after a speculative run (drafts rolled back) continues exactly."""
    import os
    env = dict(os.environ, SPOOL_HOME=str(tmp_path / "home"))

    def gen(prompt, *extra):
        r = run(spool_bin, "run", stories, prompt, "--temp", "0", "--json", "--ignore-eos", *extra, env=env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    prompt = "Once upon a time, there was a girl. Once upon a time, there was a"
    whole = gen(prompt, "-n", "40")
    a = gen(prompt, "-n", "20", "--session", "s", "--lookup")
    b = gen("", "-n", "20", "--session", "s", "--lookup")
    assert a["ids"] + b["ids"] == whole["ids"]
    assert a["stats"]["speculative"]["drafted_tokens"] > 0
    # The saved sequence held exactly the fed tokens: only the pending one was fed.
    assert b["stats"]["prompt_tokens_reused"] == len(a["prompt_ids"]) + 19


def test_serve_per_request_speculative_and_metrics(smollm2):
    from server_util import LiveServer
    s = LiveServer("--threads", "2", "--parallel", "2", model=smollm2)
    try:
        s.wait_ready()
        body = {"messages": [{"role": "user", "content": "Repeat exactly: " + REPEAT}], "max_tokens": 40,
                "temperature": 0}
        st, plain = s.request("POST", "/v1/chat/completions", body)
        assert st == 200, plain
        st, spec = s.request("POST", "/v1/chat/completions", {**body, "speculative": {"lookup": True, "max_draft": 6}})
        assert st == 200, spec
        assert spec["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
        st, spec2 = s.request("POST", "/v1/chat/completions", {**body, "speculative": True})
        assert st == 200 and spec2["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
        st, err = s.request("POST", "/v1/chat/completions", {**body, "speculative": {"draft": True}})
        assert st == 400 and "draft model" in err["error"]["message"], err
        st, err = s.request("POST", "/v1/chat/completions", {**body, "speculative": {"lookahead": 3}})
        assert st == 400 and err["error"]["param"] == "speculative.lookahead", err
        st, err = s.request("POST", "/v1/chat/completions", {**body, "speculative": "yes"})
        assert st == 400, err
        # Ollama: the same top-level field.
        st, ol = s.request("POST", "/api/generate", {"prompt": "Repeat exactly: " + REPEAT, "stream": False,
                                                       "speculative": {"lookup": True},
                                                       "options": {"temperature": 0, "num_predict": 20}})
        assert st == 200, ol
        st, metrics = s.request("GET", "/metrics")
        values = {l.split()[0]: float(l.split()[1]) for l in metrics.splitlines() if l and not l.startswith("#")}
        assert values["spool_speculative_drafted_tokens_total"] > 0
        assert 0 < values["spool_speculative_accepted_tokens_total"] <= values["spool_speculative_drafted_tokens_total"]
        assert values["spool_decode_tokens_per_weight_pass"] > 1
    finally:
        s.stop()


def test_serve_default_lookup_keeps_the_text(smollm2):
    from server_util import LiveServer
    body = {"prompt": REPEAT, "max_tokens": 30, "temperature": 0}
    texts = []
    for extra in [[], ["--lookup"]]:
        s = LiveServer("--threads", "2", *extra, model=smollm2)
        try:
            s.wait_ready()
            st, r = s.request("POST", "/v1/completions", body)
            assert st == 200, r
            texts.append(r["choices"][0]["text"])
            st, metrics = s.request("GET", "/metrics")
            drafted = [l for l in metrics.splitlines() if l.startswith("spool_speculative_drafted_tokens_total")]
            assert (float(drafted[0].split()[1]) > 0) == bool(extra)
        finally:
            s.stop()
    assert texts[0] == texts[1]


def test_batch_with_lookup_equals_without(spool_bin, smollm2, tmp_path):
    lines = []
    for i in range(4):
        body = {"prompt": f"{REPEAT} ({i})", "max_tokens": 24, "temperature": 0}
        if i == 3:
            body["speculative"] = False  # a job may opt out
        lines.append(json.dumps({"custom_id": f"j{i}", "method": "POST", "url": "/v1/completions", "body": body}))
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    outs = []
    for name, extra in [("plain", []), ("lookup", ["--lookup"])]:
        out = tmp_path / f"{name}.jsonl"
        r = run(spool_bin, "batch", smollm2, "--in", str(inp), "--out", str(out), "--threads", "2", "--batch", "2",
                *extra, timeout=300)
        assert r.returncode == 0, r.stderr
        if extra:
            assert "speculative:" in r.stderr
        recs = sorted((json.loads(l) for l in out.read_text().splitlines()), key=lambda x: x["custom_id"])
        outs.append([x["response"]["body"]["choices"][0]["text"] for x in recs])
    assert outs[0] == outs[1]


def test_draft_self_keeps_the_ids_and_is_made_once(spool_bin, stories, tmp_path):
    import os
    env = dict(os.environ, SPOOL_HOME=str(tmp_path / "home"))
    args = ["Once upon a time", "-n", "60", "--temp", "0", "--ignore-eos", "--json"]
    plain = run(spool_bin, "run", stories, *args, env=env)
    first = run(spool_bin, "run", stories, *args, "--draft", "self", env=env)
    second = run(spool_bin, "run", stories, *args, "--draft", "self", env=env)
    for r in (plain, first, second):
        assert r.returncode == 0, r.stderr
    p, a, b = (json.loads(r.stdout) for r in (plain, first, second))
    assert a["ids"] == p["ids"] and b["ids"] == p["ids"]
    sa, sb = a["stats"]["speculative"], b["stats"]["speculative"]
    assert sa["self_draft_built"] and not sb["self_draft_built"]
    assert sa["accepted_tokens"] > sa["drafted_tokens"] // 2  # a Q8_0 copy mostly agrees
    assert len(list((tmp_path / "home" / "drafts").glob("*-q8_0.spd"))) == 1
    r = run(spool_bin, "run", stories, *args, "--draft", "self:q3", env=env)
    assert r.returncode != 0 and "self:q4_0" in r.stderr


def test_draft_sample_is_reproducible(spool_bin, stories):
    args = ["Once upon a time", "-n", "40", "--temp", "1", "--seed", "5", "--ignore-eos", "--draft", stories,
            "--draft-sample"]
    a, b = run_json(spool_bin, stories, *args), run_json(spool_bin, stories, *args)
    assert a["ids"] == b["ids"]
    assert a["stats"]["speculative"]["drafted_tokens"] > 0
    r = run(spool_bin, "run", stories, "Hi", "--lookup", "--draft-sample")
    assert r.returncode != 0 and "--draft-sample needs --draft" in r.stderr
