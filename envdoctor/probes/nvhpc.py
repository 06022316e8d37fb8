"""The NVIDIA HPC SDK's layout: one release directory, several CUDA toolkits inside.

``/opt/nvidia/hpc_sdk/Linux_x86_64/25.9/`` (the installer's default prefix) holds
``compilers/bin`` (nvc, nvc++, nvfortran and an ``nvcc`` that runs the release's
default CUDA), ``cuda/<X.Y>/`` (complete toolkits: bin/nvcc, include, lib64; a
release can ship two), ``cuda/bin`` and friends linking to the default one,
``math_libs/<X.Y>/`` (cuBLAS, cuSPARSE, cuSOLVER headers and libraries, which the
``cuda/<X.Y>`` directories do not hold) and ``comm_libs/`` (NCCL, MPI). Its
``nvhpc`` modulefile puts ``compilers/bin`` in front of ``cuda/bin`` on PATH, so
``which nvcc`` is the compilers' one and torch's guess of CUDA_HOME (the
grandparent of ``which nvcc``) is ``compilers``: no include/cuda_runtime.h, no
lib64/libcudart.so.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Iterable, List, Optional

from envdoctor.probes.base import ProbeContext

INSTALL_GLOB = "/opt/nvidia/hpc_sdk/*/*"  # <prefix>/<Linux_arch>/<YY.M>
_RELEASE = re.compile(r"\d{2}\.\d{1,2}")
_CUDA_VERSION = re.compile(r"\d+\.\d+")


def is_release(path: str) -> bool:
    """``.../Linux_x86_64/25.9``: a release directory with compilers/ and cuda/."""
    return (bool(_RELEASE.fullmatch(os.path.basename(path.rstrip("/"))))
            and os.path.isdir(os.path.join(path, "compilers")) and os.path.isdir(os.path.join(path, "cuda")))


def release_of(path: Optional[str]) -> Optional[str]:
    """The release directory ``path`` lies in (at most four levels up), or None."""
    current = (path or "").rstrip("/")
    for _ in range(5):
        if not current or current == "/":
            return None
        if is_release(current):
            return current
        current = os.path.dirname(current)
    return None


def release_dirs(ctx: ProbeContext, paths: Iterable[str]) -> List[str]:
    """Release directories at the installer's default place and wherever ``paths``
    (PATH entries, NVHPC_ROOT, CUDA_HOME, modulefile roots) point into one."""
    found: List[str] = []
    candidates = sorted(glob.glob(ctx.path(INSTALL_GLOB))) + [p for p in paths if p]
    for candidate in candidates:
        release = release_of(candidate)
        if release and release not in found:
            found.append(release)
    return found


def cuda_roots(release: str) -> List[str]:
    """The versioned CUDA toolkits of a release (``cuda/12.9``, ``cuda/13.0``)."""
    base = os.path.join(release, "cuda")
    names = os.listdir(base) if os.path.isdir(base) else []
    return [os.path.join(base, n) for n in sorted(names) if _CUDA_VERSION.fullmatch(n)
            and os.path.isdir(os.path.join(base, n)) and not os.path.islink(os.path.join(base, n))]


def default_cuda(release: str) -> Optional[str]:
    """The versioned toolkit ``cuda/bin`` leads to: the release's default CUDA."""
    real = os.path.realpath(os.path.join(release, "cuda", "bin"))
    parent = os.path.dirname(real)
    return parent if _CUDA_VERSION.fullmatch(os.path.basename(parent)) else None


def math_include(release: str, cuda_version: str) -> Optional[str]:
    """Where the release keeps cuBLAS & co. headers for one CUDA version."""
    base = os.path.join(release, "math_libs", cuda_version)
    for candidate in sorted(glob.glob(os.path.join(base, "targets", "*", "include"))) + [os.path.join(base, "include")]:
        if os.path.isfile(os.path.join(candidate, "cublas_v2.h")):
            return candidate
    return None


def describe(root: str) -> Optional[dict]:
    """``{release, version, compilers, cuda_versions, default_cuda}`` when ``root`` is a
    CUDA toolkit of an HPC SDK release (``cuda/<X.Y>`` or the release's ``cuda``). The toolkits
    probe adds ``compilers_lib``, the -L directory torch passes for ``CUDA_HOME=compilers``."""
    release = release_of(root)
    cuda = os.path.realpath(os.path.join(release, "cuda")) if release else None
    real = os.path.realpath(root)
    if cuda is None or cuda not in (real, os.path.dirname(real)):
        return None
    default = default_cuda(release)
    return {"release": release, "version": os.path.basename(release), "compilers": os.path.join(release, "compilers"),
            "cuda_versions": [os.path.basename(r) for r in cuda_roots(release)],
            "default_cuda": os.path.basename(default) if default else None}
