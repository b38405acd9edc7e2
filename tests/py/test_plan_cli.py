"""One plan (issue 19, item 2): `spool show --plan --json` prints exactly the plan that
`spool run --stats --json` reports and runs with, for the same flags; --kv-window is
honoured by both; the workloads of serve/batch/perplexity are planned from the same
shared flags."""
import json
import os

import pytest

from conftest import run

# The measured baseline (process RSS when planning) differs by a few pages between two
# processes; the engine takes a fixed one from this variable so that plans compare exactly.
FIXED_BASELINE = str(40 << 20)

COMBOS = [
    ["--ctx", "8192", "--kv-window", "256", "--mem-budget", "400M"],
    ["--ctx", "2048", "--kv-window", "256", "--mem-budget", "200M"],
    ["--ctx", "2048", "--kv-window", "0", "--mem-budget", "250M"],
    ["--ctx", "4096", "--mem-budget", "300M", "--prefill-chunk", "64", "--kv-type", "f32"],
    ["--ctx", "1024", "--mem-budget", "1G", "--threads", "1"],
]


def show_plan(spool_bin, model, *flags, env=None):
    r = run(spool_bin, "show", model, "--plan", "--json", *flags, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def run_plan(spool_bin, model, *flags, env=None):
    r = run(spool_bin, "run", model, "--prompt-ids", "1,2,3", "-n", "2", "--stats", "--json", *flags, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["stats"]["plan"]


@pytest.mark.parametrize("flags", COMBOS, ids=lambda f: " ".join(f))
def test_show_plan_equals_run_plan(spool_bin, smollm2, flags):
    env = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=FIXED_BASELINE)
    flags = [*flags, "--disk-bw", "1G"]
    shown = show_plan(spool_bin, smollm2, *flags, env=env)
    used = run_plan(spool_bin, smollm2, *flags, env=env)
    assert shown == used
    assert shown["planned_bytes"] <= shown["budget_bytes"]


def test_kv_window_frees_budget_for_weights(spool_bin, smollm2):
    env = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=FIXED_BASELINE)
    common = ["--ctx", "8192", "--mem-budget", "350M", "--disk-bw", "1G"]
    all_ram = show_plan(spool_bin, smollm2, *common, "--kv-window", "0", env=env)
    window = show_plan(spool_bin, smollm2, *common, "--kv-window", "256", env=env)
    assert not all_ram["kv_on_disk"] and window["kv_on_disk"]
    # SmolLM2: 30 layers x 3 KV heads x 64 x 2 (K, V) x 2 bytes = 23040 bytes per token.
    assert all_ram["kv_bytes"] == 8192 * 23040
    # The window (one page of 256 tokens per layer) + the disk store's read-ahead ring:
    # as many pages (K + V slots, 2 x 256 x 192 x 2 bytes) as fit in 8 MiB.
    page = 2 * 256 * 192 * 2
    assert window["kv_bytes"] == 256 * 23040 + (8 << 20) // page * page
    assert window["resident_bytes"] > all_ram["resident_bytes"]
    assert len(window["streamed_groups"]) < len(all_ram["streamed_groups"])


def test_measured_baselines_agree(spool_bin, smollm2):
    """Without the fixed baseline: both processes measure about the same RSS, and every
    term that does not depend on it is identical."""
    flags = ["--ctx", "2048", "--kv-window", "256", "--mem-budget", "200M", "--disk-bw", "1G"]
    shown = show_plan(spool_bin, smollm2, *flags)
    used = run_plan(spool_bin, smollm2, *flags)
    assert abs(shown["baseline_bytes"] - used["baseline_bytes"]) <= 2 << 20
    for k in ("budget_bytes", "reserve_bytes", "activation_bytes", "kv_bytes", "ctx", "kv_window", "sequences",
              "prefill_rows", "threads", "ring_slot_bytes"):
        assert shown[k] == used[k], k


def test_measured_disk_speed_is_reported_as_measured(spool_bin, smollm2):
    flags = ["--ctx", "2048", "--kv-window", "256", "--mem-budget", "200M"]
    shown = show_plan(spool_bin, smollm2, *flags)
    used = run_plan(spool_bin, smollm2, *flags)
    for p in (shown, used):
        assert p["streamed_groups"] and p["disk_measured"] and p["disk_bytes_per_s"] > 0
        assert p["predicted_decode_tokens_per_s"] > 0


def test_workloads_plan_from_the_same_flags(spool_bin, smollm2):
    env = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=FIXED_BASELINE)
    common = ["--ctx", "2048", "--kv-window", "256", "--mem-budget", "1G", "--prefill-chunk", "128", "--disk-bw", "1G"]
    run_ = show_plan(spool_bin, smollm2, *common, env=env)
    serve = show_plan(spool_bin, smollm2, *common, "--for", "serve", "--parallel", "3", "--cache-entries", "2", env=env)
    batch = show_plan(spool_bin, smollm2, *common, "--for", "batch", "--parallel", "5", env=env)
    ppl = show_plan(spool_bin, smollm2, "--for", "perplexity", "--mem-budget", "1G", "--disk-bw", "1G", env=env)
    assert run_["sequences"] == 1 and run_["prefill_rows"] == 128
    # serve: --parallel active sequences + --cache-entries finished ones keep a KV cache;
    # the scheduler's steps carry up to 4 prefill chunks.
    assert serve["sequences"] == 5 and serve["kv_bytes"] == 5 * run_["kv_bytes"] and serve["prefill_rows"] == 512
    assert batch["sequences"] == 5 and batch["prefill_rows"] == 512
    # perplexity: ctx 512 by default and a logit row per position.
    assert ppl["ctx"] == 512 and ppl["activation_bytes"] > run_["activation_bytes"]


def test_show_plan_refuses_what_run_refuses(spool_bin, smollm2):
    for cmd in (["show", smollm2, "--plan"], ["run", smollm2, "--prompt-ids", "1", "-n", "1"]):
        r = run(spool_bin, *cmd, "--ctx", "100000", "--mem-budget", "2G")
        assert r.returncode == 1 and "exceeds the model's maximum" in r.stderr, r.stderr
        r = run(spool_bin, *cmd, "--ctx", "8192", "--kv-window", "0", "--mem-budget", "150M")
        assert r.returncode == 1 and "too small" in r.stderr and "--kv-window" in r.stderr, r.stderr
    r = run(spool_bin, "show", smollm2, "--plan", "--for", "nonsense")
    assert r.returncode == 1 and "--for" in r.stderr
