"""checks/gpu_all.py: GPU detection without torch, exit 77 without a GPU, and how it merges the checks' results."""
from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "checks", "gpu_all.py")


def _load():
    spec = importlib.util.spec_from_file_location("gpu_all_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_all = _load()


def _fake_smi(tmp_path, stdout: str) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    # Shell builtins only: the fake PATH holds nothing else.
    smi.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in stdout.splitlines()))
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_nvidia_smi_listing_gpus_means_present(tmp_path):
    path = _fake_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1b2c3d4e-0000-1111-2222-333344445555)\n"
                               "GPU 1: NVIDIA H200 (UUID: GPU-1b2c3d4e-0000-1111-2222-333344445556)\n")
    present, how, names = gpu_all.detect_gpus({"PATH": path}, dev_dir=str(tmp_path / "nodev"))
    assert present is True and names == ["NVIDIA H200", "NVIDIA H200"]
    assert "nvidia-smi lists 2 GPU(s)" in how


def test_device_node_means_present_even_without_nvidia_smi(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "nvidiactl").touch()
    (dev / "nvidia0").touch()
    present, how, _ = gpu_all.detect_gpus({"PATH": str(tmp_path / "empty")}, dev_dir=str(dev))
    assert present is True and "nvidia0" in how


def test_control_node_alone_and_an_empty_nvidia_smi_mean_no_gpu(tmp_path):
    # /dev/nvidiactl exists wherever the driver's container hooks ran, also without a GPU.
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "nvidiactl").touch()
    path = _fake_smi(tmp_path, "No devices were found\n")
    present, how, names = gpu_all.detect_gpus({"PATH": path}, dev_dir=str(dev))
    assert present is False and names == []
    assert how == f"no {dev}/nvidia0, 1, ... device node and nvidia-smi lists none"


def test_cuda_visible_devices_can_hide_every_gpu(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "nvidia0").touch()
    present, how, _ = gpu_all.detect_gpus({"PATH": "", "CUDA_VISIBLE_DEVICES": ""}, dev_dir=str(dev))
    assert present is False and "CUDA_VISIBLE_DEVICES" in how
    present, _, _ = gpu_all.detect_gpus({"PATH": "", "CUDA_VISIBLE_DEVICES": "0"}, dev_dir=str(dev))
    assert present is True


def test_wsl_leaves_the_answer_to_torch(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "dxg").touch()
    present, _, _ = gpu_all.detect_gpus({"PATH": ""}, dev_dir=str(dev))
    assert present is None


def test_without_a_gpu_it_says_so_and_exits_77_without_importing_torch(tmp_path):
    if gpu_all.detect_gpus(dict(os.environ))[0] is not False:
        pytest.skip("this machine may have a GPU: the no-GPU answer cannot be shown here")
    # A torch that cannot be imported: the no-GPU decision must not need it.
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch must not be imported for the no-GPU answer')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))
    summary = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--json", str(summary)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert proc.stdout.startswith("no NVIDIA GPU on this machine (")
    assert "nothing was run (exit 77)" in proc.stdout
    data = json.loads(summary.read_text())
    assert data["status"] == "no_gpu" and data["checks"] == []
    # Without --json nothing is written into the current directory.
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=60)
    assert proc.returncode == 77
    assert sorted(os.listdir(tmp_path)) == ["fake", "summary.json"]


_CHILD = """
import json, sys
print("log of the check")
records = [{"name": "step one", "status": "pass", "detail": "fine"},
           {"name": "step two", "status": sys.argv[1], "detail": "why"}]
with open(sys.argv[sys.argv.index("--json") + 1], "w") as fh:
    json.dump(records, fh)
sys.exit(0 if sys.argv[1] != "fail" else 1)
"""


@pytest.mark.parametrize("second", ["pass", "skip", "fail"])
def test_sub_check_records_are_merged_with_their_status(tmp_path, second):
    child = tmp_path / "child.py"
    child.write_text(_CHILD)
    runner = gpu_all.Runner(60, dict(os.environ), str(tmp_path))
    gpu_all.check_subrecords(runner, "op", [sys.executable, str(child), second], "out.json")
    assert [(r["name"], r["status"]) for r in runner.records] == [("step one", "pass"), ("step two", second)]
    assert ("output_tail" in runner.records[1]) == (second == "fail")


def test_a_sub_check_that_writes_nothing_fails_with_its_output(tmp_path):
    child = tmp_path / "child.py"
    child.write_text("import sys; print('Traceback: boom'); sys.exit(3)\n")
    runner = gpu_all.Runner(60, dict(os.environ), str(tmp_path))
    gpu_all.check_subrecords(runner, "smoke", [sys.executable, str(child)], "out.json")
    (record,) = runner.records
    assert record["status"] == "fail" and record["detail"] == "exit 3 without results"
    assert "Traceback: boom" in record["output_tail"]


def test_a_spent_budget_starts_nothing(tmp_path):
    runner = gpu_all.Runner(0, dict(os.environ), str(tmp_path))
    code, out, _ = runner.run([sys.executable, "-c", "print(1)"], 100)
    assert code is None and "time budget is spent" in out


def test_fleet_is_detected_from_the_command_table():
    ok, why = gpu_all.fleet_available()
    from envdoctor.cli import LAZY_COMMANDS

    assert ok == ("fleet" in LAZY_COMMANDS)
    assert ok or why == "this envdoctor has no `fleet` command"
