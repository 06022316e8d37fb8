import os
import subprocess
import sys

from envdoctor.smoke import SmokeConfig, SmokeResult, run_smoke
from envdoctor.smoke import api
from envdoctor.smoke.render import render_text
from envdoctor.smoke.train import amp_dtype, choose_threads, crash_reason
from tests.smoke.test_devices import GPUS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _gpu_result(uuids):
    devices = [{"rank": i, "local_rank": i, "device": f"cuda:{i}", "cuda_index": i, "uuid": u, "name": "x"}
               for i, u in enumerate(uuids)]
    return SmokeResult(passed=True, reason="", devices=devices, world_size=len(uuids))


def test_gpus_request_is_verified_by_uuid_and_mapped():
    expected = ["GPU-33333333-cccc", "GPU-11111111-aaaa"]  # --gpus 2,0
    child_env = {"CUDA_VISIBLE_DEVICES": ",".join(expected), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    result = _gpu_result(["33333333-cccc", "11111111-aaaa"])
    api._map_devices(result, GPUS, {}, child_env, expected)
    assert result.passed
    assert [(r["nvidia_smi_index"], r["cuda_index"]) for r in result.device_map] == [(2, 0), (0, 1)]
    assert result.device_problems == []
    assert "GPU 2 -> cuda:0 -> GPU-33333333-cccc" in render_text(result, SmokeConfig())


def test_work_on_the_wrong_gpu_fails():
    expected = ["GPU-33333333-cccc"]
    result = _gpu_result(["22222222-bbbb"])
    api._map_devices(result, GPUS, {}, {"CUDA_VISIBLE_DEVICES": expected[0]}, expected)
    assert not result.passed
    assert result.reason == ("the work ran on a different GPU than asked: rank 0 ran on 22222222-bbbb, "
                             "but GPU-33333333-cccc was asked for")


def test_gpus_without_any_gpu_is_a_plain_failure(monkeypatch):
    monkeypatch.setattr(api, "gpu_facts", lambda: None)
    result = run_smoke(SmokeConfig(gpus="0"))
    assert not result.passed and not result.usage_error
    assert result.reason == "--gpus 0: nvidia-smi lists no GPU on this machine"


def test_gpus_naming_a_missing_gpu_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(api, "gpu_facts", lambda: GPUS)
    result = run_smoke(SmokeConfig(gpus="0,9"))
    assert result.usage_error and "no GPU '9'" in result.reason
    result = run_smoke(SmokeConfig(gpus="0,1", nproc_per_node=3))
    assert result.usage_error and "use one process per GPU" in result.reason


def test_amp_precision_choice():
    import torch

    cuda = torch.device("cuda", 0)  # a device object only: nothing runs on it
    assert amp_dtype(SmokeConfig(amp="fp16"), cuda) == torch.float16
    assert amp_dtype(SmokeConfig(amp="bf16"), cuda) == torch.bfloat16
    assert amp_dtype(SmokeConfig(amp="off"), cuda) is None
    assert amp_dtype(SmokeConfig(amp="bf16"), torch.device("cpu")) is None


def test_threads_follow_idle_cores():
    assert choose_threads(cores=2, load=0.0) == 2
    assert choose_threads(cores=2, load=1.6) == 1  # busy machine: spinning OpenMP threads would fight
    assert choose_threads(cores=2, load=9.0) == 1
    assert choose_threads(cores=8, load=0.0, local_world=2) == 4


def test_crash_reason_is_one_line_with_the_place():
    try:
        raise ValueError("bad thing\nsecond line")
    except ValueError as exc:
        reason = crash_reason(exc)
    assert reason.startswith("training crashed: ValueError: bad thing (at test_api.py:")
    assert "\n" not in reason


def test_envdoctor_group_runs_the_smoke_command():
    proc = subprocess.run([sys.executable, "-m", "envdoctor", "smoke", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Mask2Former-MobileNetV3" in proc.stdout and "--nproc-per-node" in proc.stdout
