"""--device and `spool show --devices` (issue 17): the devices are listed, bad values are
clear errors, `--device auto` falls back to the CPU with a message (no device, or only a CPU
implementation such as lavapipe), and with no Vulkan
driver (VK_ICD_FILENAMES pointing nowhere) every form says so instead of crashing."""
import os

import pytest

from conftest import run

NO_DRIVER = dict(os.environ, VK_ICD_FILENAMES="/nonexistent/spool-no-icd.json", VK_DRIVER_FILES="/nonexistent/spool-no-icd.json")
RUN = ["run", "--temp", "0", "-n", "4", "--ctx", "128"]


def has_vulkan_device(spool_bin):
    r = run(spool_bin, "show", "--devices")
    return r.returncode == 0 and "vulkan:0 " in r.stdout


def test_show_devices_lists_cpu_and_vulkan(spool_bin):
    r = run(spool_bin, "show", "--devices")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cpu ")
    assert "vulkan" in r.stdout
    if "vulkan:0 " in r.stdout:
        assert "device-local heap" in r.stdout and "max buffer" in r.stdout


def test_show_devices_without_a_driver(spool_bin):
    r = run(spool_bin, "show", "--devices", env=NO_DRIVER)
    assert r.returncode == 0, r.stderr
    assert "vulkan       none:" in r.stdout, r.stdout


@pytest.mark.parametrize("bad", ["gpu", "vulkan:", "vulkan:-1", "vulkan:x", "cuda"])
def test_bad_device_values_are_clear_errors(spool_bin, stories, bad):
    r = run(spool_bin, "run", stories, "Once upon a time", *RUN[1:], "--device", bad)
    assert r.returncode != 0
    assert f"--device '{bad}'" in r.stderr and "expected cpu, vulkan, vulkan:N or auto" in r.stderr, r.stderr
    assert "Aborted" not in r.stderr and "terminate" not in r.stderr


def test_missing_device_index(spool_bin, stories):
    if not has_vulkan_device(spool_bin):
        pytest.skip("no Vulkan device")
    r = run(spool_bin, "run", stories, "Once upon a time", *RUN[1:], "--device", "vulkan:99")
    assert r.returncode != 0
    assert "Vulkan device 99 does not exist" in r.stderr, r.stderr


def test_vulkan_without_a_driver_is_a_clear_error(spool_bin, stories):
    r = run(spool_bin, "run", stories, "Once upon a time", *RUN[1:], "--device", "vulkan", env=NO_DRIVER)
    assert r.returncode != 0
    assert "--device vulkan:0" in r.stderr and "Vulkan" in r.stderr, r.stderr


def only_cpu_vulkan(spool_bin):
    """No Vulkan device, or only CPU implementations (lavapipe), which auto skips."""
    r = run(spool_bin, "show", "--devices")
    return all("(CPU;" in line for line in r.stdout.splitlines() if line.startswith("vulkan:"))


def test_auto_falls_back_to_the_cpu_with_a_message(spool_bin, stories):
    cpu = run(spool_bin, "run", stories, "Once upon a time", *RUN[1:], "--device", "cpu")
    assert cpu.returncode == 0, cpu.stderr
    # The engine on a device: tests/py/test_gpu_engine.py.
    for env in ((None, NO_DRIVER) if only_cpu_vulkan(spool_bin) else (NO_DRIVER,)):
        r = run(spool_bin, "run", stories, "Once upon a time", *RUN[1:], "--device", "auto", env=env)
        assert r.returncode == 0, r.stderr
        assert "--device auto:" in r.stderr and "using the CPU" in r.stderr, r.stderr
        assert r.stdout == cpu.stdout
