"""`envdoctor check` on recorded driver states, in a subprocess, output and exit code pinned.

debian12_user_space_driver.json is this check's JSON report saved on Debian 12 with
Debian's libcuda1 535.309.01 (pulled in by nvidia-cuda-toolkit), no NVIDIA kernel
module and torch 2.14.1+cu130 (which warned "driver too old"). Re-diagnosed with
``--from``, so the real machine running the test does not matter.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIO = os.path.join(ROOT, "tests", "fixtures", "scenarios", "debian12_user_space_driver.json")


def check(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "envdoctor", "check", "--from", SCENARIO, *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_user_space_driver_without_kernel_module_is_reported_as_that():
    result = check("--only", "ED105", "--fail-on", "warning")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "  Driver    user-space driver 535.309.01 (CUDA 12.2) installed, kernel module not loaded (cuInit: " \
           "CUDA_ERROR_NO_DEVICE (100))" in lines
    assert "  ! The installed driver has its kernel module  [ED105]" in lines
    assert "ED105 warning  The installed driver has its kernel module" in lines
    text = result.stdout
    for words in ("User-space driver 535.309.01 installed", "kernel module not loaded (no /proc/driver/nvidia; "
                  "cuInit returns CUDA_ERROR_NO_DEVICE (100); NVML says NVML_ERROR_DRIVER_NOT_LOADED)",
                  "torch's CUDA initialisation said 'CUDA initialization: The NVIDIA driver on your system is too "
                  "old (found version 12020)': that comes from this library",
                  "evidence: driver.state = user_space_only", "torch.cuda_error = CUDA initialization: The NVIDIA "
                  "driver on your system is too old (found version 12020)"):
        assert words in text, words
    assert "no NVIDIA driver found" not in text
    assert lines[-1].startswith("0 error(s), 1 warning(s), 0 note(s).")


def test_a_warning_does_not_fail_the_default_check():
    result = check("--only", "ED105")
    assert result.returncode == 0, result.stderr
    assert "ED105 warning" in result.stdout
