"""check, build and fix tell the same story, on the real states of issue "one truth about the machine".

Real processes on this real machine. Tests that need a state this machine may not have (Debian's
packaged CUDA 11.8 from ../shared/labs/distro-cuda-toolkit.sh, the CUDA 13.0 toolkit) say so and skip;
a sealed fake of the same layout runs everywhere.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envdoctor import engine
from envdoctor.parsers import arch_list
from tests.fixtures.fake_bin import path_with, write_fake, write_tree
from tests.unit.test_probes_system_toolkits import debian_toolkit

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_CUDA13 = os.path.isfile("/usr/local/cuda-13.0/bin/nvcc")
HAS_DISTRO = os.path.isfile("/usr/lib/nvidia-cuda-toolkit/bin/nvcc") and os.path.isfile("/usr/bin/nvcc")
needs_cuda13 = pytest.mark.skipif(not HAS_CUDA13, reason="needs the CUDA 13.0 toolkit at /usr/local/cuda-13.0")
needs_distro = pytest.mark.skipif(not (HAS_DISTRO and HAS_CUDA13),
                                  reason="needs Debian's nvidia-cuda-toolkit next to CUDA 13.0 (shared/labs)")


def envdoctor(args, tmp_path, **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST", "CC", "CXX", "NVCC_CCBIN", "CPATH")}
    base.update(HOME=str(tmp_path / "home"), PYTHONPATH=REPO, ENVDOCTOR_CACHE_DIR=str(tmp_path / "cache"))
    base.update(env)
    os.makedirs(base["HOME"], exist_ok=True)
    return subprocess.run([sys.executable, "-m", "envdoctor", *args], env=base, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=900)


def codes(result):
    return {f["code"]: f for f in json.loads(result.stdout)["findings"]}


@needs_cuda13
def test_arch_list_with_commas_check_build_and_fix_agree(tmp_path):
    env = {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "8.0,8.6"}
    check = envdoctor(["check", "--format", "json", "--only", "ED501"], tmp_path, **env)
    assert check.returncode == 1, check.stderr
    assert "Unknown CUDA arch (8.0,8.6)" in codes(check)["ED501"]["message"]
    build = envdoctor(["build", "--cuda", "--format", "json"], tmp_path, **env)
    result = json.loads(build.stdout)["build"]
    assert build.returncode == 1 and result["refused"] and "Unknown CUDA arch (8.0,8.6)" in result["error"]
    assert "ED501" in result["error"]
    fix = envdoctor(["fix", "-n", "--format", "json", "--only", "ED501"], tmp_path, **env)
    planned = json.loads(fix.stdout)["plan"]["settings"]["vars"]["TORCH_CUDA_ARCH_LIST"]
    assert arch_list.parse(planned).ok and planned != "8.0,8.6"


def test_a_named_compiler_that_is_not_installed_is_an_error(tmp_path):
    check = envdoctor(["check", "--format", "json", "--only", "ED402"], tmp_path, CC="gcc-10", CXX="g++-10")
    assert check.returncode == 1, check.stderr
    message = codes(check)["ED402"]["message"]
    assert "CC='gcc-10'" in message and "CXX='g++-10'" in message
    quiet = envdoctor(["check", "--format", "json", "--only", "ED402"], tmp_path)
    assert quiet.returncode == 0 and "ED402" not in codes(quiet)


@needs_distro
def test_distribution_toolkit_first_on_path(tmp_path):
    path = "/usr/bin:" + os.environ["PATH"]
    check = envdoctor(["check", "--format", "json"], tmp_path, PATH=path)
    assert check.returncode == 1
    found = codes(check)
    mismatch = found["ED204"]
    assert mismatch["severity"] == "error" and "11.8" in mismatch["message"] and "13.0" in mismatch["message"]
    assert "cannot find -lcudart" not in check.stdout  # /usr links fine: no such claim
    assert "ED401" not in found  # Debian's nvcc 11.8 runs its own gcc-11
    fix = envdoctor(["fix", "-n", "--format", "json", "--no-smoke"], tmp_path, PATH=path)
    settings = json.loads(fix.stdout)["plan"]["settings"]
    assert settings["vars"]["CUDA_HOME"] == "/usr/local/cuda-13.0"
    assert settings["path_prepend"] == ["/usr/local/cuda-13.0/bin"]
    assert not {"CC", "CXX", "NVCC_CCBIN"} & set(settings["vars"])


@needs_distro
def test_distribution_toolkit_merely_installed_names_the_mixed_runtime(tmp_path):
    check = envdoctor(["check", "--format", "json", "--only", "ED2*"], tmp_path)
    found = codes(check)
    assert "libcudart.so" in found["ED207"]["message"] and "11.8" in found["ED207"]["message"]
    assert "/usr/include" in found["ED208"]["message"]  # 13.0 lacks cublas_v2.h: 11.8's copies would be used


def test_sealed_debian_layout_is_judged_as_torch_would_use_it(tmp_path):
    # The same story on a fake machine (recorded layout), whatever this machine has installed.
    root = str(tmp_path)
    usr = debian_toolkit(root)
    cuda13 = os.path.join(root, "usr/local/cuda-13.0")
    write_tree(cuda13, {"include/cuda_runtime.h": "", "lib64/libcudart.so.13.0.96": "",
                        "lib64/libcudart.so": "->libcudart.so.13.0.96",
                        "version.json": json.dumps({"cuda": {"version": "13.0.2"},
                                                    "cuda_nvcc": {"version": "13.0.88"}})})
    write_fake(os.path.join(cuda13, "bin"), "nvcc", {"--version": "Cuda compilation tools, release 13.0, V13.0.88\n",
                                                     "--list-gpu-arch": "compute_90\n"})
    path = path_with(os.path.join(usr, "bin") + ":" + os.path.join(root, "compilers"))
    report = engine.run_check(env={"PATH": path, "HOME": str(tmp_path)}, root=root, paths=(root,))
    found = {f.code: f for f in report.findings}
    assert report.facts.value("torch")["cpp_ext_cuda_home"] == usr  # torch's own guess, from the fake PATH
    assert "ED204" in found and "11.8" in found["ED204"].message and cuda13 in found["ED204"].message
    assert "ED401" not in found and "ED203" not in found
