"""`envdoctor check` on this real machine, in a subprocess (real probes, real torch).

This machine has a real defect: CUDA_HOME is unset and /usr/local/bin/nvcc is a
wrapper script, so torch's extension builder guesses CUDA_HOME=/usr/local, which
has no libcudart. The check must find exactly that, and pass once CUDA_HOME
points at the toolkit (apart from problems of the interpreter's own packages, which
the toolkit settings do not touch).
"""
import json
import os
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

HAS_WRAPPER_DEFECT = os.path.isfile("/usr/local/bin/nvcc") and os.path.isdir("/usr/local/cuda-13.0") \
    and not os.path.exists("/usr/local/lib64/libcudart.so")


def run_check(*args, env=None, cwd=None, timeout=300):
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH")}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "envdoctor", "check", *args], env=base, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def findings(result):
    return json.loads(result.stdout)["findings"]


def cuda_home_errors(result):
    return [f for f in findings(result) if f["severity"] == "error" and "CUDA_HOME" in f["message"]]


@pytest.mark.skipif(not HAS_WRAPPER_DEFECT, reason="needs this machine's nvcc wrapper and CUDA 13.0 toolkit")
def test_this_machine_cuda_home_guess_is_found_and_fixed(tmp_path):
    result = run_check("--format", "json", "--no-redact", cwd=tmp_path)  # the fixes' paths are applied below
    assert result.returncode == 1, result.stderr
    errors = cuda_home_errors(result)
    assert errors, findings(result)
    message = errors[0]["message"]
    assert "/usr/local" in message and "/usr/local/cuda-13.0" in message and "13.0" in message
    commands = [c for f in errors for fix in f["fixes"] for c in fix["commands"]]
    assert any("CUDA_HOME=/usr/local/cuda" in c for c in commands), commands
    actions = [fix["action"] for f in errors for fix in f["fixes"]]
    assert "set_env" in actions

    # The environment the findings' fixes ask for (CUDA_HOME; where this machine also has Debian's
    # CUDA 11.8 headers in /usr/include, CPATH for the 13.0 ones; the arch list, with no GPU here).
    env = {"CUDA_HOME": "/usr/local/cuda"}
    applied = {"ED203"}
    for finding in findings(result):
        fix = next((x for x in finding["fixes"] if x["action"] == "set_env"), None)
        if fix and finding["code"] != "ED203":
            env.update(fix["params"]["vars"])
            applied.add(finding["code"])
    fixed = run_check("--format", "json", env=env, cwd=tmp_path)
    assert cuda_home_errors(fixed) == []
    # Every error the applied settings address is gone and none is new. An interpreter may carry other real
    # problems the settings cannot touch (a venv with a CPU-only detectron2 build: ED705); they stay as they were.
    before = {f["code"] for f in findings(result) if f["severity"] == "error"}
    after = [f for f in findings(fixed) if f["severity"] == "error"]
    assert not [f for f in after if f["code"] in applied or f["code"] not in before], after
    assert fixed.returncode == (1 if after else 0), fixed.stdout[-2000:]


def test_text_output_and_python_m(tmp_path):
    result = run_check("--fail-on", "never", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "envdoctor check" in result.stdout and "torch" in result.stdout
    assert "Traceback" not in result.stderr


def _fake_exe(directory, name, body):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_hanging_nvidia_smi_cannot_hang_the_check(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    _fake_exe(fake, "nvidia-smi", "sleep 300")
    result = run_check("--format", "json", "--timeout", "2", "--fail-on", "never",
                       env={"PATH": f"{fake}:{os.environ['PATH']}"}, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    smi = [f for f in data["facts"] if f["key"] == "driver.smi"]
    assert smi and smi[0]["value"]["status"] == "timeout"


def test_broken_torch_is_a_finding_not_a_crash(tmp_path):
    broken = tmp_path / "site" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "raise ImportError('libcudart.so.11.0: cannot open shared object file: No such file or directory')\n")
    result = run_check("--format", "json", env={"PYTHONPATH": str(tmp_path / "site")}, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    status = [f for f in data["facts"] if f["key"] == "torch.status"][0]["value"]
    assert status["status"] == "import_error" and "libcudart.so.11.0" in status["message"]
    assert any("libcudart.so.11.0" in f["message"] for f in data["findings"])
    # the rest of the report is still there
    keys = {f["key"] for f in data["facts"]}
    assert {"toolkits", "compiler.gcc", "env.vars"} <= keys


SECRETS = {
    "HF_TOKEN": "hf_QwErTyUiOpAsDfGhJkLzXcVbNm123456",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzEXAMPLE",
    "PIP_INDEX_URL": "https://student:Pa55w0rdXYZ@pypi.internal.example/simple",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
}


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "github", "junit"])
def test_planted_credentials_never_appear(tmp_path, fmt):
    home = tmp_path / "home" / "zoe"
    home.mkdir(parents=True)
    env = dict(SECRETS, USER="zoe", LOGNAME="zoe", HOME=str(home),
               CUDA_HOME=f"{home}/cuda-{SECRETS['HF_TOKEN']}")  # a secret inside a reported value
    result = run_check("--format", fmt, "--fail-on", "never", env=env, cwd=home)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    for name, value in SECRETS.items():
        assert value not in out, name
    assert "Pa55w0rdXYZ" not in out
    assert str(home) not in out and "zoe" not in out
    unredacted = run_check("--format", "json", "--no-redact", "--fail-on", "never", env=env, cwd=home)
    assert str(home) in unredacted.stdout


def test_check_writes_no_file(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "build").mkdir()

    def snapshot():
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    before = snapshot()
    result = run_check("--format", "json", "--fail-on", "never", "--path", str(work),
                       env={"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}, cwd=work)
    assert result.returncode == 0, result.stderr
    assert snapshot() == before


def test_quick_mode_does_not_import_torch(tmp_path):
    result = run_check("--quick", "--format", "json", "--fail-on", "never", cwd=tmp_path)
    data = json.loads(result.stdout)
    torch = [f for f in data["facts"] if f["key"] == "torch"][0]["value"]
    assert torch["version"].startswith("2.14.1") and torch["cuda"] == "13.0"
    assert data["meta"]["quick"] is True
