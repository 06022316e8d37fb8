"""Prove that a CUDA extension builds in an environment: a tiny ``CUDAExtension`` compiled there.

``fix`` says "healthy" only when a user's extension would build with the environment the plan
produces. The proof is a one-kernel extension built by ``torch.utils.cpp_extension.load_inline``
in a child that has exactly the new shell's environment, nothing filled in: on a machine
without a GPU and without ``TORCH_CUDA_ARCH_LIST`` it fails the way a user's build would.

The result is cached by the variables that decide a build (and the torch it builds against),
so a second ``fix`` in an unchanged environment does not compile again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Dict, Mapping

from envdoctor.buildlog import summarize_failure

TIMEOUT = 1800.0
OK_LINE = "envdoctor-build-probe: ok"
# What decides whether and how an extension builds.
KEY_VARS = ("CUDA_HOME", "CUDA_PATH", "PATH", "TORCH_CUDA_ARCH_LIST", "CC", "CXX", "NVCC_CCBIN",
            "NVCC_PREPEND_FLAGS", "NVCC_APPEND_FLAGS", "CPATH", "CPLUS_INCLUDE_PATH", "LIBRARY_PATH",
            "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX")
_SCRIPT = r'''
import sys
import torch
from torch.utils.cpp_extension import load_inline

CPP = "torch::Tensor twice(torch::Tensor x);"
CU = """
#include <torch/extension.h>
__global__ void twice_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = 2.0f * x[i];
}
torch::Tensor twice(torch::Tensor x) {
  auto y = torch::empty_like(x);
  int64_t n = x.numel();
  twice_kernel<<<(n + 255) / 256, 256>>>(x.data_ptr<float>(), y.data_ptr<float>(), n);
  return y;
}
"""
load_inline("envdoctor_build_probe", CPP, cuda_sources=CU, functions=["twice"], build_directory=sys.argv[1])
print("envdoctor-build-probe: ok", torch.__version__)
'''


def cache_dir(env: Mapping[str, str]) -> str:
    from envdoctor.ops.build import cache_root

    return os.path.join(os.path.dirname(cache_root(env)), "build-probe")


def key(env: Mapping[str, str], torch_version: str) -> str:
    parts = {name: env.get(name) for name in KEY_VARS}
    parts["torch"] = torch_version
    parts["python"] = sys.executable
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def run(env: Mapping[str, str], runner, torch_version: str) -> Dict[str, Any]:
    """Build the probe extension with ``env``: ``{"ok", "cached", "dir", "error", "log_path"}``."""
    directory = os.path.join(cache_dir(env), key(env, torch_version))
    marker = os.path.join(directory, "ok")
    if os.path.exists(marker):
        return {"ok": True, "cached": True, "dir": directory}
    os.makedirs(directory, exist_ok=True)
    result = runner.run([sys.executable, "-c", _SCRIPT, directory], timeout=TIMEOUT, env=dict(env))
    log_path = os.path.join(directory, "build.log")
    with open(log_path, "w", encoding="utf-8") as fh:
        fh.write(result.output)
    if result.ok and OK_LINE in result.stdout:
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(OK_LINE + "\n")
        return {"ok": True, "cached": False, "dir": directory, "log_path": log_path}
    error = result.error or summarize_failure(result.output, log_path)
    return {"ok": False, "cached": False, "dir": directory, "log_path": log_path, "error": error}
