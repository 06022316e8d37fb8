import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision
from click.testing import CliRunner

from envdoctor.cli_smoke import smoke_command

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def invoke(*args):
    return CliRunner().invoke(smoke_command, list(args))


def test_help_has_examples_and_the_options():
    result = invoke("--help")
    assert result.exit_code == 0
    for text in ("Examples:", "envdoctor smoke --gpus 2,3", "--nproc-per-node", "--rdzv-endpoint", "--weights",
                 "--backbone", "--data", "--lr", "--seed", "--format", "--quiet", "--steps", "--size", "--device"):
        assert text in result.output
    assert "--inject-nan" not in result.output  # a test hook, not a user option


@pytest.mark.parametrize("args, message", [
    (["--device", "gpu0"], "'gpu0': use auto, cpu, cuda or cuda:N"),
    (["--steps", "0"], "0 is not in the range x>=1"),
    (["--lr", "-1"], "-1.0 is not in the range x>=0"),
    (["--pixel-mean", "1,2"], "expected three comma-separated numbers"),
    (["--size", "huge"], "'huge' is not one of"),
])
def test_usage_errors_exit_2_without_traceback(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_mismatched_weights_file_is_refused_with_exit_2(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    result = invoke("--weights", str(path), "--quiet")
    assert result.exit_code == 2
    assert "envdoctor smoke: FAIL" in result.output
    assert "does not look like a MobileNetV3-Large checkpoint: only 0 of 308" in result.output
    assert "Traceback" not in result.output


def test_cuda_device_without_a_gpu_fails_with_exit_1():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke("--device", "cuda:1", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["passed"] is False and "CUDA is not available to torch" in data["reason"]


@pytest.mark.slow
def test_json_output_of_a_failing_run(tmp_path):
    result = invoke("--steps", "2", "--lr", "0", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["passed"] is False and data["reason"].startswith("loss did not fall")
    for key in ("loss_start", "loss_end", "steps_per_s", "images_per_s", "peak_memory", "msda_impl", "nan_inf",
                "params_without_grad", "devices", "seconds", "schema_version"):
        assert key in data


@pytest.mark.slow
def test_text_output_shows_progress_and_the_verdict():
    result = invoke("--steps", "2", "--lr", "0")
    assert result.exit_code == 1
    assert "smoke-train step 1/2  loss " in result.output and "smoke-train step 2/2  loss " in result.output
    assert "envdoctor smoke: FAIL" in result.output
    assert "  reason        loss did not fall" in result.output
    quiet = invoke("--steps", "2", "--lr", "0", "--quiet")
    assert "smoke-train step" not in quiet.output and "envdoctor smoke: FAIL" in quiet.output


@pytest.mark.slow
def test_module_entry_point_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "envdoctor.smoke", "--steps", "2", "--inject-nan"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "envdoctor smoke: FAIL" in proc.stdout
    assert "NaN/Inf during training" in proc.stdout and "(MSDeformAttn)" in proc.stdout
    assert "smoke-train step" not in proc.stderr  # NaN at step 1: no step finished, no progress line
    assert "Traceback" not in proc.stderr
