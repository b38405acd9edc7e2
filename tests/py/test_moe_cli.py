"""Mixture of experts from the command line: the expert cache in `show --plan`, `run
--json`'s counters (a cache smaller than the experts gives the resident run's ids), and
`run --trace-routing`."""
import json
import os

from conftest import ROOT, run

MOE = str(ROOT / "tests" / "fixtures" / "models" / "qwen3-moe-fused-f32")
DENSE = str(ROOT / "tests" / "fixtures" / "models" / "llama-mha-f32")
# A fixed baseline, so that the budget below plans the same cache on every machine.
ENV = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=str(20 << 20))
COMMON = ["-t", "2", "-c", "64", "--temp", "0"]


def run_json(*args, env=ENV):
    r = run(*args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_small_expert_cache_matches_resident_and_counts(spool_bin):
    prompt = ["--prompt-ids", "1,2,3,4,5,6,7,8", "-n", "8"]
    resident = run_json(spool_bin, "run", MOE, *prompt, *COMMON, "--json")
    st = resident["stats"]
    assert st["plan"]["experts_resident"] is True
    assert st["expert_cache_misses"] == 0 and st["expert_bytes_read"] == 0
    assert st["expert_cache_hits"] > 0
    small = run_json(spool_bin, "run", MOE, *prompt, *COMMON, "--json", "--mem-budget", "78M")
    ss = small["stats"]
    assert ss["plan"]["experts_resident"] is False, ss["plan"]
    assert 2 <= ss["plan"]["expert_cache_slots"] < ss["plan"]["experts_total"]
    assert small["ids"] == resident["ids"]
    assert ss["expert_cache_misses"] > 0 and ss["expert_bytes_read"] > 0
    # Same routing, so the same lookups however the cache is sized.
    assert ss["expert_cache_hits"] + ss["expert_cache_misses"] == st["expert_cache_hits"]
    assert ss["experts_per_token"] == st["experts_per_token"] > 0
    lru = run_json(spool_bin, "run", MOE, *prompt, *COMMON, "--json", "--mem-budget", "78M", "--expert-eviction", "lru")
    assert lru["ids"] == resident["ids"]
    fs = lru["stats"]  # the default is freq
    assert fs["expert_cache_hits"] + fs["expert_cache_misses"] == st["expert_cache_hits"]
    r = run(spool_bin, "run", MOE, *prompt, "--expert-eviction", "lfu")
    assert r.returncode != 0 and "--expert-eviction must be lru or freq" in r.stderr


def test_show_plan_prints_the_expert_cache(spool_bin):
    r = run(spool_bin, "show", MOE, "--plan", "--mem-budget", "78M", "-t", "2", "-c", "64", env=ENV)
    assert r.returncode == 0, r.stderr
    assert "expert cache" in r.stdout and "of 16 routed experts;" in r.stdout, r.stdout
    r = run(spool_bin, "show", MOE, "--plan", "--mem-budget", "70M", "-t", "2", "-c", "64", env=ENV)
    assert r.returncode != 0
    assert "expert cache 2 x" in r.stderr and "never hits" in r.stderr, r.stderr


def test_trace_routing_writes_one_line_per_token_and_layer(spool_bin, tmp_path):
    trace = tmp_path / "routing.jsonl"
    out = run_json(spool_bin, "run", MOE, "--prompt-ids", "5,6,7,8", "-n", "3", *COMMON, "--json",
                   "--trace-routing", str(trace))
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    fed = 4 + len(out["ids"]) - 1  # the last generated token is not fed back
    moe_layers = 2                  # qwen3-moe fixture: layer 1 is dense (mlp_only_layers)
    assert len(lines) == fed * moe_layers
    assert sorted({(x["pos"], x["layer"]) for x in lines}) == sorted(
        (p, l) for p in range(fed) for l in {x["layer"] for x in lines})
    for x in lines:
        assert len(x["experts"]) == 2 and len(set(x["experts"])) == 2
        assert all(0 <= e < 8 for e in x["experts"])
        assert abs(sum(x["weights"]) - 1) < 1e-5  # renormalised top-k
    # The same run traces the same routing.
    trace2 = tmp_path / "again.jsonl"
    run_json(spool_bin, "run", MOE, "--prompt-ids", "5,6,7,8", "-n", "3", *COMMON, "--json", "--trace-routing",
             str(trace2))
    assert trace2.read_text() == trace.read_text()


def test_trace_routing_errors(spool_bin, tmp_path):
    r = run(spool_bin, "run", DENSE, "--prompt-ids", "1", "-n", "1", "--trace-routing", str(tmp_path / "x"))
    assert r.returncode != 0 and "not a mixture-of-experts model" in r.stderr
    r = run(spool_bin, "run", MOE, "--prompt-ids", "1", "-n", "1", "--trace-routing", str(tmp_path / "no" / "x"))
    assert r.returncode != 0 and "cannot open for writing" in r.stderr


def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name + " not in /metrics")


def test_server_metrics_export_expert_cache_counters():
    from server_util import LiveServer
    # A budget whose serve plan (4 sequences, larger steps) holds 6-7 of the 16 experts.
    s = LiveServer("-t", "2", "-c", "64", "--mem-budget", "81.4M", model=MOE, env={"SPOOL_TEST_PLAN_BASELINE": str(20 << 20)})
    try:
        s.wait_ready()
        body = {"model": "qwen3-moe-fused-f32", "prompt": [1, 2, 3, 4, 5], "max_tokens": 4, "temperature": 0}
        status, out = s.request("POST", "/v1/completions", body)
        assert status == 200, out
        _, text = s.request("GET", "/metrics")
        hits = _metric(text, "spool_expert_cache_hits_total")
        misses = _metric(text, "spool_expert_cache_misses_total")
        assert misses > 0 and hits + misses > 0
        assert _metric(text, "spool_weight_expert_bytes_read_total") > 0
        assert _metric(text, "spool_weight_dense_bytes_read_total") >= 0
    finally:
        s.stop()
