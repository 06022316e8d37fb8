"""The CUDA variant compiles, links and loads on this GPU-less machine (slow: nvcc for 2 archs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envdoctor.ops import build
from tests.ops.conftest import env_without

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/usr/local/cuda/bin/nvcc"), reason="needs the CUDA toolkit")]

# CUDA_HOME set the way `envdoctor fix` sets it: to the real toolkit.
FIXED_ENV = dict(env_without("CUDA_PATH", "TORCH_CUDA_ARCH_LIST"), CUDA_HOME="/usr/local/cuda")

_LOAD_SCRIPT = r"""
import json, sys, torch
from envdoctor.ops import loader
loader.load_library(sys.argv[1], "cuda")
print(json.dumps({
    "cuda": torch._C._dispatch_has_kernel_for_dispatch_key("envdoctor::ms_deform_attn", "CUDA"),
    "cuda_bwd": torch._C._dispatch_has_kernel_for_dispatch_key("envdoctor::ms_deform_attn_backward", "CUDA"),
    "cpu": torch._C._dispatch_has_kernel_for_dispatch_key("envdoctor::ms_deform_attn", "CPU"),
    "cuda_version": int(torch.ops.envdoctor._cuda_version()),
    "torch_cuda": torch.version.cuda,
}))
"""


@pytest.fixture(scope="session")
def cuda_build(ops_cache_dir):
    result = build.build_extension(cuda=True, archs=["8.0", "9.0"], cache_dir=ops_cache_dir, env=FIXED_ENV)
    assert result.ok, result.error
    return result


def test_cuda_variant_compiles_and_links_for_sm80_and_sm90(cuda_build):
    assert cuda_build.variant == "cuda" and cuda_build.archs == ["8.0", "9.0"]
    assert os.path.isfile(cuda_build.path)
    with open(cuda_build.log_path, encoding="utf-8") as fh:
        log = fh.read()
    assert "code=sm_80" in log and "code=sm_90" in log


def test_built_cuda_module_loads_and_registers_the_cuda_kernel(cuda_build):
    # A separate process: this one may already hold the CPU variant (one namespace per process).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, cuda_build.path], capture_output=True, text=True,
                          cwd=root, timeout=300, env=FIXED_ENV)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["cuda"] and info["cuda_bwd"] and info["cpu"]
    assert info["cuda_version"] // 1000 == int(info["torch_cuda"].split(".")[0])


def test_cuda_rebuild_is_a_noop(cuda_build, ops_cache_dir):
    again = build.build_extension(cuda=True, archs=["9.0", "8.0"], cache_dir=ops_cache_dir, env=FIXED_ENV)
    assert again.ok and again.cached and again.path == cuda_build.path
