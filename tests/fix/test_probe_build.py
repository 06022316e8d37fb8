"""fix's proof that a CUDA extension builds in the new shell: a one-kernel CUDAExtension."""
from __future__ import annotations

import os
import sys

import pytest

from envdoctor.fix import probe_build
from envdoctor.runner import CommandResult, FakeRunner

INDEX_ERROR = ("Traceback (most recent call last):\n"
               '  File "torch/utils/cpp_extension.py", line 2727, in _get_cuda_arch_flags\n'
               "    arch_list[-1] += '+PTX'\n"
               "IndexError: list index out of range\n")


def _env(tmp_path, **extra):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "CUDA_HOME": "/usr/local/cuda"}
    env.update(extra)
    return env


def test_success_is_cached_by_what_decides_a_build(tmp_path):
    runner = FakeRunner({sys.executable: probe_build.OK_LINE + " 2.14.1+cu130\n"})
    env = _env(tmp_path, TORCH_CUDA_ARCH_LIST="9.0")
    first = probe_build.run(env, runner, "2.14.1+cu130")
    assert first["ok"] and not first["cached"] and len(runner.calls) == 1
    again = probe_build.run(dict(env, HISTSIZE="10"), runner, "2.14.1+cu130")  # not a build variable
    assert again["ok"] and again["cached"] and len(runner.calls) == 1
    other = probe_build.run(dict(env, TORCH_CUDA_ARCH_LIST="8.0"), runner, "2.14.1+cu130")
    assert other["ok"] and not other["cached"] and len(runner.calls) == 2


def test_failure_says_why_and_keeps_the_log(tmp_path):
    runner = FakeRunner({sys.executable: CommandResult((sys.executable,), 1, "", INDEX_ERROR)})
    result = probe_build.run(_env(tmp_path), runner, "2.14.1+cu130")
    assert not result["ok"] and "IndexError" in result["error"]
    assert os.path.isfile(result["log_path"]) and "IndexError" in open(result["log_path"]).read()
    assert not os.path.exists(os.path.join(result["dir"], "ok"))  # a failure is never cached


HAS_CUDA13 = os.path.isfile("/usr/local/cuda-13.0/bin/nvcc")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA13, reason="needs the CUDA 13.0 toolkit at /usr/local/cuda-13.0")
def test_real_probe_build_fails_without_arch_list_and_builds_with_one(tmp_path):
    from envdoctor.runner import Runner

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: torch's builder targets it without an arch list")
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_CUDA_ARCH_LIST", "CUDA_PATH")}
    env.update(HOME=str(tmp_path), CUDA_HOME="/usr/local/cuda-13.0", MAX_JOBS="2")
    env["PATH"] = "/usr/local/cuda-13.0/bin:" + env.get("PATH", "")
    without = probe_build.run(env, Runner(), torch.__version__)
    assert not without["ok"] and "IndexError" in open(without["log_path"]).read()
    with_arch = probe_build.run(dict(env, TORCH_CUDA_ARCH_LIST="9.0"), Runner(), torch.__version__)
    assert with_arch["ok"], with_arch.get("error")
