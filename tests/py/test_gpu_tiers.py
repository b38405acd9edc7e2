"""The GPU's three weight tiers and its KV window through the CLI (issue 17 item 3;
docs/parts/gpu.md "Three tiers"): `spool show --plan --device vulkan` lists which layers
VRAM, host RAM and the disk hold; `spool run --device vulkan` under a --vram-budget and a
--mem-budget that split the layers over all three tiers gives the CPU's greedy ids and
moves exactly the plan's bytes per pass; and a run whose VRAM KV window is 2 pages keeps
the older pages in the sequence's CPU cache, in RAM and on disk (--kv-window, --kv-dir),
with the CPU's ids. stories260K, so that lavapipe runs it in seconds. Skipped without a
Vulkan device."""
import json
import os

import pytest

from conftest import run

# The same measured baseline in `show --plan` and `run`, so that both plan alike.
ENV = dict(os.environ, SPOOL_TEST_PLAN_BASELINE=str(96 << 20))


@pytest.fixture(scope="module")
def vulkan(spool_bin):
    r = run(spool_bin, "show", "--devices")
    if r.returncode != 0 or "vulkan:0 " not in r.stdout:
        pytest.skip("no Vulkan device (install mesa-vulkan-drivers for lavapipe)")


def plan(spool_bin, model, *extra):
    r = run(spool_bin, "show", model, "--plan", "--json", "--device", "vulkan", "-t", "2", *extra, env=ENV)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def gen(spool_bin, model, *extra):
    r = run(spool_bin, "run", model, "Once upon a time", "--temp", "0", "--ignore-eos", "--json", "-t", "2", *extra,
            env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


COMMON = ["--ctx", "64", "--kv-type", "f32", "--prefill-chunk", "8"]


def test_three_tiers_plan_and_run_equal_cpu(spool_bin, stories, vulkan):
    # Sizes: the whole model in VRAM, then a VRAM budget for the fixed buffers, the ring
    # and one layer.
    whole = plan(spool_bin, stories, *COMMON)["vram"]
    largest = whole["largest_layer"]
    vram_budget = whole["fixed_bytes"] + 3 * largest
    p = plan(spool_bin, stories, *COMMON, "--vram-budget", str(vram_budget))
    assert p["vram"]["vram_layers"] == 1 and p["device_tiers"]["vram_groups"] == ["layer 0", "head"], p
    assert p["device_tiers"]["host_groups"] == ["layer 1", "layer 2", "layer 3", "layer 4"], p  # a large --mem-budget
    # A --mem-budget with room for the staging buffers and one of the four other layers.
    t = p["device_tiers"]
    group = t["largest_group_bytes"]
    mem = t["min_bytes"] + 3 * group + group // 2
    p = plan(spool_bin, stories, *COMMON, "--vram-budget", str(vram_budget), "--mem-budget", str(mem))
    t, v = p["device_tiers"], p["vram"]
    assert t["vram_groups"] == ["layer 0", "head"] and t["host_groups"] == ["layer 4"], t
    assert t["disk_groups"] == ["layer 1", "layer 2", "layer 3"] and t["staging_bytes"] == 2 * group, t
    assert v["layer_tiers"] == ["vram", "disk", "disk", "disk", "host"], v
    assert (v["vram_layers"], v["host_layers"], v["disk_layers"]) == (1, 1, 3)
    r = run(spool_bin, "show", stories, "--plan", "--device", "vulkan", "-t", "2", *COMMON, "--vram-budget", str(vram_budget),
            "--mem-budget", str(mem), env=ENV)
    assert r.returncode == 0, r.stderr
    assert "weights in VRAM" in r.stdout and "1/6: layers 4" in r.stdout and "3/6: layers 1-3" in r.stdout, r.stdout
    assert "weight tiers: VRAM 1 layers" in r.stdout, r.stdout

    cpu = gen(spool_bin, stories, *COMMON, "-n", "24")
    gpu = gen(spool_bin, stories, *COMMON, "-n", "24", "--device", "vulkan", "--vram-budget", str(vram_budget),
              "--mem-budget", str(mem))
    assert gpu["ids"] == cpu["ids"]
    g = gpu["stats"]["gpu"]["tiers"]
    assert (g["vram_layers"], g["host_layers"], g["disk_layers"]) == (1, 1, 3), g
    assert g["passes"] >= 24
    assert g["host_copy_bytes"] == g["passes"] * g["plan_host_copy_bytes_per_pass"] > 0, g
    assert g["disk_read_bytes"] == g["passes"] * g["plan_disk_bytes_per_pass"] > 0, g
    assert g["disk_copy_bytes"] == g["disk_read_bytes"], g
    assert g["read_path"], g
    # Every tier mix gives the same ids: all in VRAM, VRAM + host RAM (large --mem-budget).
    for extra in ([], ["--vram-budget", str(vram_budget)]):
        assert gen(spool_bin, stories, *COMMON, "-n", "24", "--device", "vulkan", *extra)["ids"] == cpu["ids"], extra


def test_too_small_mem_budget_on_the_gpu_is_a_clear_error(spool_bin, stories, vulkan):
    whole = plan(spool_bin, stories, *COMMON)["vram"]
    vram_budget = whole["fixed_bytes"] + 2 * whole["largest_layer"]  # every layer streams
    t = plan(spool_bin, stories, *COMMON, "--vram-budget", str(vram_budget))["device_tiers"]
    mem = t["min_bytes"] + 2 * t["largest_group_bytes"] - 1  # one byte short of the staging buffers
    r = run(spool_bin, "run", stories, "Once", "-n", "2", "-t", "2", "--device", "vulkan", *COMMON, "--vram-budget",
            str(vram_budget), "--mem-budget", str(mem), env=ENV)
    assert r.returncode != 0
    assert "is too small for" in r.stderr and "on the GPU" in r.stderr, r.stderr
    assert "2 staging buffers of the largest layer read from disk" in r.stderr, r.stderr


def test_vram_kv_window_needs_a_device(spool_bin, stories):
    r = run(spool_bin, "run", stories, "Once", "-n", "2", "--vram-kv-window", "32")
    assert r.returncode != 0 and "--vram-kv-window needs --device" in r.stderr, r.stderr


@pytest.mark.parametrize("host", ["ram", "disk"])
def test_kv_window_end_to_end_equals_cpu(spool_bin, stories, vulkan, tmp_path, host):
    # Pages of 16 tokens, 2 of them in VRAM; ~105 tokens (the trained context is 128): 5
    # pages leave VRAM for the sequence's CPU cache — in RAM, or (--kv-window 48) mostly
    # on disk under --kv-dir.
    common = ["--ctx", "128", "--kv-type", "f32", "--kv-page-tokens", "16", "--prefill-chunk", "8", "-n", "100",
              "--kv-dir", str(tmp_path), "--kv-window", "48" if host == "disk" else "0"]
    cpu = gen(spool_bin, stories, *common)
    gpu = gen(spool_bin, stories, *common, "--device", "vulkan", "--vram-kv-window", "32")
    assert gpu["ids"] == cpu["ids"]
    g = gpu["stats"]["gpu"]
    assert (g["kv_hot_pages"], g["kv_pages"]) == (2, 8), g
    assert gpu["stats"]["plan"]["kv_on_disk"] == (host == "disk"), gpu["stats"]["plan"]
