"""Every byte counted (issue 19, items 3 and 4): over a matrix of models x --ctx x
--kv-window x --mem-budget x output mode (--json, --stats, both) x --prefill-chunk, the
kernel's peak RSS of every `spool run` stays within --mem-budget, or spool refuses the
plan up front with a clear error. The peak is measured from outside: the child's
ru_maxrss from os.wait4.

Models: SmolLM2-135M (GGUF Q4_1, tied embeddings, a tokenizer) and a synthetic untied
bf16 Llama written here as an HF folder (8 layers of 8 MiB, 80 MB, no tokenizer; the
layout of tools/gen_synthetic_model.py, in pure Python so that CI needs no numpy), so
that most budgets stream most groups. The matrix is
a pairwise cover of the flag values (every pair of values of two flags appears in some
run), about 20 runs per model; the whole file takes about a minute on 2 cores.
"""
import itertools
import json
import os
import pathlib
import random
import struct
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT

MIB = 1 << 20

# Per model: the budgets (MiB) span "streams almost everything" to "almost all resident".
MODELS = {
    "smollm2": dict(budgets=[170, 200, 260], vocab=49152),
    "synthetic": dict(budgets=[140, 160, 200], vocab=8192),
}
FACTORS = dict(
    ctx=[512, 2048],
    kv_window=[0, 128, 2048],
    mode=[("--json",), ("--stats",), ("--stats", "--json")],
    chunk=[32, 128, 512],
)
PROMPT_TOKENS = 200  # longer than the smallest window: KV pages spill to disk


def pairwise(factors):
    """A small list of combinations covering every pair of values of two factors
    (greedy; deterministic)."""
    names = list(factors)
    todo = {(a, va, b, vb) for a, b in itertools.combinations(names, 2) for va in factors[a] for vb in factors[b]}
    candidates = [dict(zip(names, c)) for c in itertools.product(*(factors[n] for n in names))]
    chosen = []
    while todo:
        def gain(c):
            return sum((a, c[a], b, c[b]) in todo for a, b in itertools.combinations(names, 2))
        best = max(candidates, key=gain)
        chosen.append(best)
        todo -= {(a, best[a], b, best[b]) for a, b in itertools.combinations(names, 2)}
    return chosen


def cases():
    out = []
    for model, m in MODELS.items():
        for c in pairwise(dict(FACTORS, budget=m["budgets"])):
            out.append((model, c))
    return out


SYNTHETIC = dict(n_layer=8, n_embd=512, n_ff=2048, n_head=8, n_head_kv=4, n_vocab=8192)


def write_synthetic(out):
    """An untied Llama with random N(0, 0.02) bf16 weights (f32 norms) as config.json +
    model.safetensors. Values come from a 64 KiB pool, each tensor a rotation of it."""
    c = SYNTHETIC
    D, F, V = c["n_embd"], c["n_ff"], c["n_vocab"]
    KV = D // c["n_head"] * c["n_head_kv"]
    rng = random.Random(3)
    pool = b"".join(struct.pack("<f", rng.gauss(0, 0.02))[2:] for _ in range(32771))  # bf16: high halves; a prime length: rows differ
    tensors = [("model.embed_tokens.weight", [V, D], False)]
    for l in range(c["n_layer"]):
        p = f"model.layers.{l}."
        tensors += [(p + "input_layernorm.weight", [D], True), (p + "self_attn.q_proj.weight", [D, D], False),
                    (p + "self_attn.k_proj.weight", [KV, D], False), (p + "self_attn.v_proj.weight", [KV, D], False),
                    (p + "self_attn.o_proj.weight", [D, D], False),
                    (p + "post_attention_layernorm.weight", [D], True), (p + "mlp.gate_proj.weight", [F, D], False),
                    (p + "mlp.up_proj.weight", [F, D], False), (p + "mlp.down_proj.weight", [D, F], False)]
    tensors += [("model.norm.weight", [D], True), ("lm_head.weight", [V, D], False)]
    header, off = {}, 0
    for name, shape, norm in tensors:
        n = 1
        for d in shape:
            n *= d
        nb = n * (4 if norm else 2)
        header[name] = {"dtype": "F32" if norm else "BF16", "shape": shape, "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for i, (name, shape, norm) in enumerate(tensors):
            nb = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            if norm:
                f.write(struct.pack("<f", 1.0) * (nb // 4))
            else:
                start = (i * 7919 * 2) % len(pool)
                rot = pool[start:] + pool[:start]
                f.write((rot * (nb // len(rot) + 1))[:nb])
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "intermediate_size": F,
              "num_hidden_layers": c["n_layer"], "num_attention_heads": c["n_head"],
              "num_key_value_heads": c["n_head_kv"], "vocab_size": V, "max_position_embeddings": 8192,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    (out / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def models(smollm2, tmp_path_factory):
    d = tmp_path_factory.mktemp("synthetic") / "small"
    write_synthetic(d)
    return {"smollm2": smollm2, "synthetic": str(d)}


# A child's ru_maxrss starts at its parent's high-water mark (Python spawns with vfork,
# and exec records the parent's peak), and pytest's peak grows over a long run. So
# spool is started by a fresh, small Python process that measures it: its peak is then
# spool's own, whatever ran in this process before.
SPAWNER = r"""
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
p.returncode = 0
with open(sys.argv[1], "w") as f:
    f.write("%d %d" % (os.waitstatus_to_exitcode(status), ru.ru_maxrss * 1024))
"""


def run_measured(argv, env):
    """Runs argv; returns (exit code, stdout, stderr, peak RSS in bytes from wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as result:
        subprocess.run([sys.executable, "-c", SPAWNER, result.name, *argv], stdout=out, stderr=err,
                       stdin=subprocess.DEVNULL, env=env, check=True)
        code, peak = (int(x) for x in result.read().split())
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode(), peak


@pytest.mark.parametrize("model,case", cases(), ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{k}={'+'.join(v) if isinstance(v, tuple) else v}" for k, v in x.items()))
def test_peak_rss_within_budget(spool_bin, models, tmp_path, model, case):
    budget = case["budget"] * MIB
    rng = random.Random(case["ctx"] * 7 + case["chunk"])
    ids = ",".join(str(rng.randrange(1, MODELS[model]["vocab"])) for _ in range(PROMPT_TOKENS))
    argv = [spool_bin, "run", models[model], "--prompt-ids", ids, "-n", "4", "--ignore-eos", "--temp", "0",
            "-t", "2", "--mem-budget", f"{case['budget']}M", "--ctx", str(case["ctx"]),
            "--kv-window", str(case["kv_window"]), "--prefill-chunk", str(case["chunk"]),
            "--kv-dir", str(tmp_path / "kv"), *case["mode"]]
    code, out, err, peak = run_measured(argv, dict(os.environ, SPOOL_HOME=str(tmp_path / "home")))
    if code != 0:
        # Refused up front: a clear error naming the budget and every term, before any
        # weight is read, and nothing near the budget was ever resident.
        assert code == 1 and "--mem-budget" in err and "too small" in err, err
        assert peak < budget
        return
    assert peak <= budget, f"peak RSS {peak / MIB:.1f} MiB > budget {case['budget']} MiB: {' '.join(argv[:2])} " \
                           f"{' '.join(argv[5:])}\n{err[-2000:]}"
    if "--json" in case["mode"]:
        st = json.loads(out)["stats"]
        plan = st["plan"]
        assert plan["planned_bytes"] <= budget
        # spool's own figure is the kernel's high-water mark of its address space (the
        # kernel's per-CPU RSS counters make the two readings differ by a few pages).
        assert abs(st["peak_rss_bytes"] - peak) <= 2 * MIB
        assert st["peak_rss_bytes"] >= plan["resident_bytes"]
        if "--stats" in case["mode"] and plan["streamed_groups"]:
            assert plan["disk_measured"] and plan["disk_bytes_per_s"] > 0
    if "--stats" in case["mode"] and "--json" not in case["mode"]:
        assert "peak RSS" in err and "residency plan" in err


# At the edge: the smallest budget each plan accepts (found with show --plan), + 2 MiB
# for the baseline measured in another process. Here the plan's slack is smallest.
TIGHT = [
    ("smollm2", ["--ctx", "2048", "--kv-window", "128", "--prefill-chunk", "512", "--stats", "--json"]),
    ("smollm2", ["--ctx", "512", "--kv-window", "0", "--prefill-chunk", "64", "--json"]),
    ("synthetic", ["--ctx", "2048", "--kv-window", "128", "--prefill-chunk", "128", "--stats", "--json"]),
    ("synthetic", ["--ctx", "512", "--kv-window", "0", "--prefill-chunk", "512", "--json"]),
]


def smallest_budget_mib(spool_bin, model, flags):
    plan_flags = [f for f in flags if f not in ("--stats", "--json")]

    def ok(mib):
        r = subprocess.run([spool_bin, "show", model, "--plan", "--json", "-t", "2", "--disk-bw", "1G",
                            "--mem-budget", f"{mib}M", *plan_flags], capture_output=True, text=True, timeout=60)
        return r.returncode == 0

    lo, hi = 16, 1024  # lo refused, hi accepted
    assert ok(hi) and not ok(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


@pytest.mark.parametrize("model,flags", TIGHT, ids=lambda x: x if isinstance(x, str) else " ".join(x))
def test_peak_rss_within_the_smallest_budget(spool_bin, models, tmp_path, model, flags):
    budget_mib = smallest_budget_mib(spool_bin, models[model], flags) + 2
    ids = ",".join(str(i * 37 % MODELS[model]["vocab"] + 1) for i in range(PROMPT_TOKENS))
    argv = [spool_bin, "run", models[model], "--prompt-ids", ids, "-n", "4", "--ignore-eos", "--temp", "0", "-t", "2",
            "--mem-budget", f"{budget_mib}M", "--kv-dir", str(tmp_path / "kv"), *flags]
    code, out, err, peak = run_measured(argv, dict(os.environ, SPOOL_HOME=str(tmp_path / "home")))
    assert code == 0, err
    assert peak <= budget_mib * MIB, f"peak RSS {peak / MIB:.1f} MiB > budget {budget_mib} MiB"
    assert json.loads(out)["stats"]["plan"]["streamed_groups"]  # the edge of a streaming plan


def test_matrix_runs_mostly(spool_bin, models, tmp_path):
    """The matrix above is not vacuous: most combinations are feasible and some stream."""
    feasible = streamed = 0
    for model, case in cases():
        if "--json" not in case["mode"]:
            continue
        r = subprocess.run([spool_bin, "show", models[model], "--plan", "--json", "--mem-budget",
                            f"{case['budget']}M", "--ctx", str(case["ctx"]), "--kv-window", str(case["kv_window"]),
                            "--prefill-chunk", str(case["chunk"]), "-t", "2", "--disk-bw", "1G"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            feasible += 1
            streamed += bool(json.loads(r.stdout)["streamed_groups"])
    assert feasible >= 10 and streamed >= 5, (feasible, streamed)
