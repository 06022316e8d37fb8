"""The CI acceptance cases, end to end on this real machine: `envdoctor check`/`require`/`diff` in subprocesses
(real probes, real torch, real imports in fresh interpreters)."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_GPU = shutil.which("nvidia-smi") is not None
HAS_WRAPPER_DEFECT = os.path.isfile("/usr/local/bin/nvcc") and os.path.isdir("/usr/local/cuda-13.0") \
    and not os.path.exists("/usr/local/lib64/libcudart.so")


def _torch_cuda():
    res = subprocess.run([sys.executable, "-c", "import torch, torchvision; print(torch.version.cuda)"],
                         capture_output=True, text=True, timeout=120)
    return res.stdout.strip() if res.returncode == 0 else None


def envdoctor(*args, cwd, env=None, timeout=300):
    base = {k: v for k, v in os.environ.items()
            if k not in ("CUDA_HOME", "CUDA_PATH", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    base.update(env or {}, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "envdoctor", *args], env=base, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def project(tmp_path, table):
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "demo"\n\n[tool.envdoctor.require]\n{table}')
    sub = tmp_path / "src"
    sub.mkdir()
    return sub  # run from below the project root: the table is found upward


def test_gpu_requirement_fails_on_a_machine_without_enough_gpus(tmp_path):
    gpus = 1 if not HAS_GPU else 4096
    cwd = project(tmp_path, f"gpus = {gpus}\n")
    result = envdoctor("check", "--quick", "-q", cwd=cwd)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ED807 error  Enough GPUs are visible" in result.stdout
    assert f"{gpus} required" in result.stdout and f"gpus = {gpus} (../pyproject.toml)" in result.stdout
    result = envdoctor("require", "--format", "json", cwd=cwd)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [f["code"] for f in data["findings"]] == ["ED807"] and data["meta"]["requirements"] == "../pyproject.toml"


@pytest.mark.skipif(not HAS_WRAPPER_DEFECT or _torch_cuda() != "13.0",
                    reason="needs this machine's torch 2.x (CUDA 13.0) and toolkit /usr/local/cuda")
def test_met_requirements_pass(tmp_path):
    cwd = project(tmp_path, 'torch = ">=2.0"\ntorch_cuda = "13.*"\nimports = ["torch", "torchvision"]\n'
                            'cuda_kernels = ["torchvision"]\n')
    result = envdoctor("check", "--format", "json", cwd=cwd, env={"CUDA_HOME": "/usr/local/cuda"})
    data = json.loads(result.stdout)
    # the requirements add no error: the exit status is what the machine's other checks say
    others = [f["code"] for f in data["findings"] if f["severity"] == "error"]
    assert not [c for c in others if c.startswith("ED8")], others
    assert result.returncode == (1 if others else 0), result.stderr
    only = envdoctor("require", cwd=cwd, env={"CUDA_HOME": "/usr/local/cuda"})
    assert only.returncode == 0, only.stdout + only.stderr
    results = {r["rule"]: r["status"] for r in data["results"] if r["rule"].startswith("ED8")}
    assert results == {"ED802": "passed", "ED803": "passed", "ED810": "passed", "ED811": "passed"}
    from envdoctor import facts_schema
    from envdoctor.model import FactSet

    assert facts_schema.check_all(list(FactSet.from_list(data["facts"]))) == []
    # an import that fails in a fresh interpreter fails the requirement
    other = tmp_path / "other"
    other.mkdir()
    cwd2 = project(other, 'imports = ["no_such_module_zz"]\n')
    failed = envdoctor("require", cwd=cwd2)
    assert failed.returncode == 1 and "`import no_such_module_zz` fails (import_error)" in failed.stdout


def test_misspelt_key_is_a_usage_error(tmp_path):
    cwd = project(tmp_path, "gpu_count = 1\n")
    for command in (["check"], ["require"]):
        result = envdoctor(*command, cwd=cwd)
        assert result.returncode == 2
        assert "unknown requirement key 'gpu_count'" in result.stderr and "allowed keys: driver" in result.stderr
        assert "Traceback" not in result.stderr
    result = envdoctor("check", "--require", "nothere.toml", cwd=cwd)
    assert result.returncode == 2 and "cannot read nothere.toml" in result.stderr


@pytest.mark.skipif(not HAS_WRAPPER_DEFECT, reason="needs this machine's nvcc wrapper and CUDA 13.0 toolkit")
def test_junit_cuda_home_is_a_failing_testcase(tmp_path):
    result = envdoctor("check", "--format", "junit", "-o", "envdoctor.xml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    suites = ET.parse(tmp_path / "envdoctor.xml").getroot()
    cases = suites.iter("testcase")
    failing = [c.get("name") for c in cases if c.find("failure") is not None]
    assert any(name.startswith("ED203 ") for name in failing), failing
    for node in (suites, suites.find("testsuite")):
        assert int(node.get("failures")) == len(failing)
        assert int(node.get("tests")) == len(list(suites.iter("testcase")))
        assert int(node.get("skipped")) == sum(1 for c in suites.iter("testcase") if c.find("skipped") is not None)
    # CUDA_HOME set: that testcase passes
    fixed = envdoctor("check", "--format", "junit", "--only", "ED203", cwd=tmp_path,
                      env={"CUDA_HOME": "/usr/local/cuda"})
    case = ET.fromstring(fixed.stdout).find("testsuite/testcase")
    assert case.get("name").startswith("ED203 ") and list(case) == [] and fixed.returncode == 0


@pytest.mark.skipif(not HAS_WRAPPER_DEFECT, reason="needs this machine's nvcc wrapper and CUDA 13.0 toolkit")
def test_diff_of_unset_markdown_and_set_json_names_cuda_home_and_ed203(tmp_path):
    assert envdoctor("check", "--format", "markdown", "-o", "unset.md", "--fail-on", "never",
                     cwd=tmp_path).returncode == 0
    assert envdoctor("check", "--format", "json", "-o", "set.json", "--fail-on", "never", cwd=tmp_path,
                     env={"CUDA_HOME": "/usr/local/cuda"}).returncode == 0
    result = envdoctor("diff", "unset.md", "set.json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) <= 5, result.stdout
    assert any("CUDA_HOME" in ln and "unset -> /usr/local/cuda" in ln and "clears ED203" in ln for ln in lines)
    # this machine now (CUDA_HOME unset) is the Markdown report's machine again
    now = envdoctor("diff", "unset.md", "-", cwd=tmp_path)
    assert "CUDA_HOME " not in now.stdout and "ED203" not in now.stdout, now.stdout


def test_github_actions_job_summary_and_annotations(tmp_path):
    summary = tmp_path / "summary.md"
    cwd = project(tmp_path, "gpus = 4096\n")
    result = envdoctor("check", "--format", "github", "--quick", cwd=cwd,
                       env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 1
    assert "::error title=ED807 Enough GPUs are visible::" in result.stdout
    for level in ("error", "warning", "notice"):
        assert sum(1 for ln in result.stdout.splitlines() if ln.startswith(f"::{level} ")) <= 10
    text = summary.read_text()
    assert text.startswith("## envdoctor report") and "ED807 Enough GPUs are visible" in text


def test_require_init_writes_then_refuses(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"  # mine\n')
    result = envdoctor("require", "--init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "demo"  # mine\n\n[tool.envdoctor.require]\n')
    again = envdoctor("require", "--init", cwd=tmp_path)
    assert again.returncode == 2 and "already has a [tool.envdoctor.require] table" in again.stderr
    assert (tmp_path / "pyproject.toml").read_text() == text
    printed = envdoctor("require", "--init", "--print", cwd=tmp_path)
    assert printed.returncode == 0 and printed.stdout.startswith("[tool.envdoctor.require]\n")
    # the pinned table is what this machine meets
    check = envdoctor("require", cwd=tmp_path, env={"CUDA_HOME": "/usr/local/cuda"})
    assert check.returncode == 0, check.stdout + check.stderr
