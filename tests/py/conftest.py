"""Shared fixtures for the CLI tests: the spool binary and the test data paths."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("SPOOL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def spool_bin():
    path = os.environ.get("SPOOL_BIN", str(ROOT / "build" / "bin" / "spool"))
    assert os.path.exists(path), f"build spool first ({path})"
    return path


@pytest.fixture(scope="session")
def stories():
    return str(SHARED / "models" / "stories260K.gguf")


@pytest.fixture(scope="session")
def smollm2():
    path = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        pytest.skip("default model not extracted (make model)")
    return str(path)


def run(spool_bin, *args, input=None, timeout=120, env=None):
    return subprocess.run([spool_bin, *args], input=input, capture_output=True, text=True, timeout=timeout,
                          env=env)
