"""`spool pull` against a local mock of the Hugging Face hub protocol (tests/py/mock_hub.py,
bound to 127.0.0.1; no network): plain and sharded safetensors repos, a GGUF quant,
interrupted-and-resumed, wrong checksum, 404, gated repo with and without token, offline."""
import hashlib
import os
import pathlib
import subprocess

import pytest

from conftest import ROOT
from mock_hub import MockHub, git_sha1

MODELS = ROOT / "tests" / "fixtures" / "models"
TINY = MODELS / "llama-mha-f32"                 # config.json + model.safetensors (~700 kB)
SHARDED = MODELS / "llama3-scaled-sharded-bf16"  # index + two shards


def repo_files(folder, extra=None):
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    files.update(extra or {})
    return files


@pytest.fixture
def hub():
    h = MockHub()
    yield h
    h.close()


@pytest.fixture
def env(tmp_path, hub):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("HF_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
         and k != "HUGGING_FACE_HUB_TOKEN"}
    e.update(HOME=str(tmp_path), HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(tmp_path / "hub"),
             SPOOL_HOME=str(tmp_path / "spool"), NO_PROXY="127.0.0.1,localhost")
    return e


def spool(spool_bin, env, *args):
    return subprocess.run([spool_bin, *args], capture_output=True, text=True, timeout=30, env=env)


def repo_dir(env, repo):
    org, name = repo.split("/")
    return pathlib.Path(env["HF_HUB_CACHE"]) / f"models--{org}--{name}"


def check_snapshot(env, repo, commit, expected):
    d = repo_dir(env, repo)
    assert (d / "refs" / "main").read_text() == commit
    snap = d / "snapshots" / commit
    assert sorted(p.name for p in snap.iterdir()) == sorted(expected)
    for name, data in expected.items():
        link = snap / name
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        blob = link.resolve()
        assert blob.parent == (d / "blobs").resolve()
        # blobs are named by their digest: sha256 for LFS files, git sha1 for small files
        want = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_sha1(data)
        assert blob.name == want
        assert blob.read_bytes() == data
    assert not list((d / "blobs").glob("*.incomplete"))


def test_pull_safetensors_then_show(spool_bin, hub, env):
    files = repo_files(TINY, {"tokenizer_config.json": b"{}", "README.md": b"not needed\n"})
    repo = hub.add("tiny/llama", files)
    r = spool(spool_bin, env, "pull", "tiny/llama")
    assert r.returncode == 0, r.stderr
    # Not a terminal and shorter than one progress interval: no progress lines (base/progress.h).
    assert "pull tiny/llama" not in r.stderr
    wanted = {k: files[k] for k in ("config.json", "model.safetensors", "tokenizer_config.json")}
    check_snapshot(env, "tiny/llama", repo.commit, wanted)
    # the model is found through the HF cache
    r = spool(spool_bin, env, "show-path", "tiny/llama")
    assert r.returncode == 0 and r.stdout.strip().endswith(repo.commit), r.stdout + r.stderr
    r = spool(spool_bin, env, "show", "tiny/llama")
    assert r.returncode == 0, r.stderr
    assert "llama" in r.stdout.lower()
    # a second pull finds every blob and downloads nothing
    n_get = sum(1 for m, p, _ in hub.requests if m == "GET" and "/blobs/" in p)
    r = spool(spool_bin, env, "pull", "tiny/llama")
    assert r.returncode == 0 and "0 bytes downloaded" in r.stdout, r.stdout + r.stderr
    assert sum(1 for m, p, _ in hub.requests if m == "GET" and "/blobs/" in p) == n_get


def test_pull_sharded(spool_bin, hub, env):
    files = repo_files(SHARDED)
    repo = hub.add("tiny/sharded", files)
    r = spool(spool_bin, env, "pull", "tiny/sharded@main", "-q")
    assert r.returncode == 0, r.stderr
    wanted = {k: v for k, v in files.items() if k != "reference.json"}
    assert len([k for k in wanted if k.endswith(".safetensors")]) == 2
    check_snapshot(env, "tiny/sharded", repo.commit, wanted)
    r = spool(spool_bin, env, "show", "tiny/sharded")
    assert r.returncode == 0, r.stderr


def test_pull_gguf_quant(spool_bin, hub, env):
    files = {"m-Q4_K_M.gguf": b"GGUF" + b"\1" * 5000, "m-Q8_0.gguf": b"GGUF" + b"\2" * 9000, "README.md": b"x"}
    repo = hub.add("tiny/m-GGUF", files)
    r = spool(spool_bin, env, "pull", "tiny/m-GGUF:q4_k_m")
    assert r.returncode == 0, r.stderr
    snap = repo_dir(env, "tiny/m-GGUF") / "snapshots" / repo.commit
    assert sorted(p.name for p in snap.iterdir()) == ["m-Q4_K_M.gguf"]
    r = spool(spool_bin, env, "show-path", "tiny/m-GGUF:Q4_K_M")
    assert r.returncode == 0 and r.stdout.strip().endswith("m-Q4_K_M.gguf"), r.stdout + r.stderr
    r = spool(spool_bin, env, "pull", "tiny/m-GGUF:Q5_K_S")
    assert r.returncode != 0 and "no .gguf file with 'Q5_K_S'" in r.stderr and "m-Q8_0.gguf" in r.stderr


def test_pull_interrupted_then_resumed(spool_bin, hub, env):
    files = repo_files(TINY)
    repo = hub.add("tiny/resume", files)
    hub.cut_after[("tiny/resume", "model.safetensors")] = 200_000
    r = spool(spool_bin, env, "pull", "tiny/resume")
    assert r.returncode != 0
    assert "interrupted" in r.stderr and "again to resume" in r.stderr, r.stderr
    d = repo_dir(env, "tiny/resume")
    partial = d / "blobs" / (hashlib.sha256(files["model.safetensors"]).hexdigest() + ".incomplete")
    assert partial.stat().st_size == 200_000
    assert not (d / "snapshots").exists() and not (d / "refs").exists()  # nothing registered
    r = spool(spool_bin, env, "pull", "tiny/resume")
    assert r.returncode == 0, r.stderr
    assert "resuming model.safetensors at byte 200000" in r.stderr
    assert ("GET", "/blobs/" + hashlib.sha256(files["model.safetensors"]).hexdigest(), "bytes=200000-") in hub.requests
    check_snapshot(env, "tiny/resume", repo.commit,
                   {k: files[k] for k in ("config.json", "model.safetensors")})


def test_pull_resume_when_server_ignores_range(spool_bin, hub, env):
    files = repo_files(TINY)
    repo = hub.add("tiny/norange", files, ignore_range=True)
    hub.cut_after[("tiny/norange", "model.safetensors")] = 300_000
    r = spool(spool_bin, env, "pull", "tiny/norange")
    assert r.returncode != 0 and "interrupted" in r.stderr, r.stderr
    r = spool(spool_bin, env, "pull", "tiny/norange")  # asks for bytes=300000-, gets the whole file
    assert r.returncode == 0, r.stderr
    assert any(rng == "bytes=300000-" for _, _, rng in hub.requests)
    check_snapshot(env, "tiny/norange", repo.commit, {k: files[k] for k in ("config.json", "model.safetensors")})


def test_pull_bad_checksum_registers_nothing(spool_bin, hub, env):
    hub.add("tiny/corrupt", repo_files(TINY), bad_checksum=True)
    r = spool(spool_bin, env, "pull", "tiny/corrupt")
    assert r.returncode != 0
    assert "checksum mismatch" in r.stderr and "model.safetensors" in r.stderr, r.stderr
    d = repo_dir(env, "tiny/corrupt")
    assert not (d / "snapshots").exists() and not (d / "refs").exists()
    assert not list((d / "blobs").glob("*.incomplete"))
    r = spool(spool_bin, env, "show-path", "tiny/corrupt")
    assert r.returncode != 0


def test_pull_not_found(spool_bin, hub, env):
    r = spool(spool_bin, env, "pull", "nobody/nothing")
    assert r.returncode != 0 and "HTTP 404" in r.stderr and "not found" in r.stderr, r.stderr
    hub.add("tiny/llama", repo_files(TINY))
    r = spool(spool_bin, env, "pull", "tiny/llama@v9")
    assert r.returncode != 0 and "revision not found" in r.stderr, r.stderr


def test_pull_gated_needs_token(spool_bin, hub, env):
    repo = hub.add("gated/llama", repo_files(TINY), gated_token="hf_secret")
    r = spool(spool_bin, env, "pull", "gated/llama")
    assert r.returncode != 0 and "HTTP 401" in r.stderr and "gated" in r.stderr and "HF_TOKEN" in r.stderr, r.stderr
    assert not (repo_dir(env, "gated/llama") / "snapshots").exists()
    r = spool(spool_bin, env | {"HF_TOKEN": "hf_wrong"}, "pull", "gated/llama")
    assert r.returncode != 0 and "refused or lacks access" in r.stderr, r.stderr
    r = spool(spool_bin, env | {"HF_TOKEN": "hf_secret"}, "pull", "gated/llama")
    assert r.returncode == 0, r.stderr
    assert (repo_dir(env, "gated/llama") / "snapshots" / repo.commit / "model.safetensors").exists()


def test_pull_alias_uses_registry_repo(spool_bin, hub, env):
    hub.add("HuggingFaceTB/SmolLM2-135M-Instruct", repo_files(TINY))
    r = spool(spool_bin, env, "pull", "smollm2:135m", "-q")
    assert r.returncode == 0, r.stderr
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in r.stdout


def test_pull_offline_fetches_nothing(spool_bin, hub, env):
    hub.add("tiny/llama", repo_files(TINY))
    r = spool(spool_bin, env | {"HF_HUB_OFFLINE": "1"}, "pull", "tiny/llama")
    assert r.returncode != 0 and "HF_HUB_OFFLINE" in r.stderr and "nothing was fetched" in r.stderr, r.stderr
    assert hub.requests == []
