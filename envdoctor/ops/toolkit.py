"""What the extension build needs to know about the CUDA toolkit, GPUs and compiler.

Every function takes the environment mapping (and a runner for commands) it
should look at, so the build can be planned for an environment that is not
this process's one, and so tests can feed recorded outputs.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
from typing import List, Mapping, Optional, Sequence, Tuple

from envdoctor.runner import Runner

# nvcc jobs with torch headers peak around 1.5 GiB each; g++ jobs around 1 GiB.
_GIB = 1024 ** 3
_RAM_PER_JOB = {"cuda": 1.5 * _GIB, "cpu": 1.0 * _GIB}


def which(program: str, env: Mapping[str, str]) -> Optional[str]:
    return shutil.which(program, path=env.get("PATH", os.defpath))


def torch_cuda_home_guess(env: Mapping[str, str]) -> Tuple[Optional[str], str]:
    """The CUDA_HOME torch.utils.cpp_extension would use in ``env``, and how it got it.

    Mirrors ``torch.utils.cpp_extension._find_cuda_home``: CUDA_HOME, then
    CUDA_PATH, then the parent of the directory holding ``nvcc`` on PATH, then
    /usr/local/cuda. The third guess is the classic trap: a wrapper at
    /usr/local/bin/nvcc makes torch use /usr/local, which has no libcudart.
    """
    for name in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(name):
            return env[name], f"${name}"
    nvcc = which("nvcc", env)
    if nvcc:
        return os.path.dirname(os.path.dirname(nvcc)), f"guessed from nvcc on PATH ({nvcc})"
    if os.path.exists("/usr/local/cuda"):
        return "/usr/local/cuda", "default /usr/local/cuda"
    return None, "no CUDA_HOME, no nvcc on PATH, no /usr/local/cuda"


def resolve_nvcc(path: str) -> str:
    """Follow symlinks and ``#!/bin/sh`` wrappers (``exec /x/bin/nvcc "$@"``) to the real nvcc."""
    real = os.path.realpath(path)
    for _ in range(5):  # wrappers of wrappers, but never loop forever
        target = _wrapper_target(real)
        if not target or os.path.realpath(target) == real:
            break
        real = os.path.realpath(target)
    return real


def _wrapper_target(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    match = re.search(rb"""exec\s+["']?([^\s"']*/bin/nvcc)\b""", head)
    return match.group(1).decode() if match else None


def real_toolkit(env: Mapping[str, str]) -> Optional[str]:
    """The toolkit directory the ``nvcc`` on PATH really belongs to, if any."""
    nvcc = which("nvcc", env)
    candidates = [os.path.dirname(os.path.dirname(resolve_nvcc(nvcc)))] if nvcc else []
    candidates.append(os.path.realpath("/usr/local/cuda"))
    for home in candidates:
        if has_cudart(home) and has_runtime_header(home):
            return home
    return None


def cudart_libraries(home: str) -> List[str]:
    patterns = ("lib64/libcudart.so*", "lib/libcudart.so*", "targets/*/lib/libcudart.so*")
    found: List[str] = []
    for pattern in patterns:
        found.extend(glob.glob(os.path.join(home, pattern)))
    return sorted(found)


def has_cudart(home: str) -> bool:
    return bool(cudart_libraries(home))


def has_runtime_header(home: str) -> bool:
    return os.path.isfile(os.path.join(home, "include", "cuda_runtime.h")) or bool(
        glob.glob(os.path.join(home, "targets", "*", "include", "cuda_runtime.h")))


def nvcc_version(nvcc: str, runner=None) -> Optional[str]:
    """"13.0" from ``nvcc --version`` ("Cuda compilation tools, release 13.0, V13.0.88")."""
    result = (runner or Runner()).run([nvcc, "--version"], timeout=30)
    match = re.search(r"release (\d+\.\d+)", result.stdout) if result.ok else None
    return match.group(1) if match else None


def nvcc_supported_archs(nvcc: str, runner=None) -> Optional[List[str]]:
    """Compute capabilities nvcc can build, from ``nvcc --list-gpu-arch`` (compute_75 -> "7.5")."""
    result = (runner or Runner()).run([nvcc, "--list-gpu-arch"], timeout=30)
    if not result.ok:
        return None
    archs = [_from_compute(tok) for tok in re.findall(r"compute_(\d+)[a-z]?", result.stdout)]
    return sorted(set(archs), key=arch_sort_key)


def _from_compute(digits: str) -> str:
    return f"{digits[:-1]}.{digits[-1]}"


def arch_sort_key(arch: str) -> Tuple[int, int]:
    major, minor = base_arch(arch).split(".")
    return int(major), int(minor)


def base_arch(arch: str) -> str:
    """"9.0+PTX" -> "9.0"."""
    return arch.split("+")[0]


_ARCH_RE = re.compile(r"^(?:sm_|compute_)?(\d+)(?:\.(\d))?(\+PTX)?$", re.I)


def parse_arch_list(items: Sequence[str]) -> List[str]:
    """Normalise "8.0;9.0", "8.0 9.0", "sm_80", "86", "9.0+PTX" into ["8.0", "9.0", ...]."""
    archs: List[str] = []
    for item in items:
        for token in re.split(r"[;,\s]+", item.strip()):
            if not token:
                continue
            match = _ARCH_RE.match(token)
            if not match:
                raise ValueError(f"invalid CUDA arch {token!r}: expected a compute capability like "
                                 f"8.0, 8.6, 9.0 (or sm_80), optionally with +PTX")
            digits, minor, ptx = match.groups()
            arch = f"{digits}.{minor}" if minor is not None else _from_compute(digits)
            if len(arch) < 3:
                raise ValueError(f"invalid CUDA arch {token!r}: expected a compute capability like 8.0")
            arch += "+PTX" if ptx else ""
            if arch not in archs:
                archs.append(arch)
    return sorted(archs, key=arch_sort_key)


def unsupported_archs(archs: Sequence[str], supported: Sequence[str]) -> List[str]:
    return [a for a in archs if base_arch(a) not in supported]


def present_gpu_archs() -> List[str]:
    """Compute capabilities of the GPUs this process can see (empty without a usable GPU)."""
    import torch

    try:
        if not torch.cuda.is_available():
            return []
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    except Exception:  # a broken driver means "no usable GPU" here; `envdoctor check` explains why
        return []
    return sorted((f"{major}.{minor}" for major, minor in caps), key=arch_sort_key)


def compiler_identity(env: Mapping[str, str], runner=None) -> str:
    """The host C++ compiler torch will call (``$CXX`` or ``c++``) and its version line."""
    cxx = env.get("CXX") or "c++"
    path = which(cxx, env) or cxx
    result = (runner or Runner()).run([path, "--version"], timeout=30)
    first = result.stdout.strip().splitlines()[0] if result.ok and result.stdout.strip() else result.describe_failure()
    return f"{os.path.realpath(path)}: {first}"


def choose_jobs(env: Mapping[str, str], variant: str, cores: Optional[int] = None,
                available: Optional[int] = None) -> int:
    """MAX_JOBS from the user, else min(cores, free RAM / RAM per job), at least 1."""
    user = env.get("MAX_JOBS", "").strip()
    if user.isdigit() and int(user) > 0:
        return int(user)
    import psutil

    cores = cores or psutil.cpu_count(logical=True) or os.cpu_count() or 1
    available = available if available is not None else psutil.virtual_memory().available
    by_ram = int(available // _RAM_PER_JOB[variant])
    return max(1, min(cores, by_ram))
