"""envdoctor's compatibility knowledge: packaged tables and a small query API.

Usage::

    from envdoctor import knowledge as kb
    kb.driver_runs_cuda("525.60.13", "12.1")   # (True, "driver 525.60.13 can run ...")
    kb.max_gcc_for_cuda("12.8")                # 14
    kb.compute_capability("NVIDIA A100-SXM4-80GB")  # "8.0"

The tables live in ``knowledge/data/*.json``; each cites its source and the
date it was read (``kb.tables()``), and rows that rest on secondary or
unconfirmed sources carry ``"unverified": true`` (``kb.is_unverified``; the
``*_info`` / ``*_support`` / ``check_*`` functions return the flag with the
answer). Every function is pure, loads the data once, and returns None / False
/ [] for input it does not know; none raises. See docs/knowledge.md.
"""
from ._data import find_row, is_unverified, tables
from .arch import (
    arch_support,
    arch_supported_by_cuda,
    first_cuda_for_arch,
    last_cuda_for_arch,
    nvcc_archs,
)
from .compilers import (
    gcc_support,
    gcc_supported_by_cuda,
    max_clang_for_cuda,
    max_gcc_for_cuda,
    min_gcc_for_cuda,
)
from .driver import (
    check_driver_for_cuda,
    driver_info,
    driver_max_cuda,
    driver_runs_cuda,
    min_driver_for_cuda,
    minor_compat_floor,
    newest_cuda_for_driver,
    toolkit_row,
)
from .gpus import compute_capability, gpu_info
from .pytorch import (
    best_torch_cuda_for_driver,
    cudnn_for_torch,
    detectron2_requirements,
    latest_torch,
    newest_torch_for_driver,
    pip_install_command,
    torch_arch_list,
    torch_arch_list_info,
    torch_cuda_builds,
    torch_release,
    torchvision_for_torch,
)
from .versions import (
    arch_cc,
    cuda_major_minor,
    cuda_str,
    cuda_tag,
    cudnn_version,
    normalize_arch,
    parse_version,
)

__all__ = [
    "arch_cc", "arch_support", "arch_supported_by_cuda", "best_torch_cuda_for_driver",
    "check_driver_for_cuda", "compute_capability", "cuda_major_minor", "cuda_str", "cuda_tag",
    "cudnn_for_torch", "cudnn_version", "detectron2_requirements", "driver_info", "driver_max_cuda",
    "driver_runs_cuda", "find_row", "first_cuda_for_arch", "gcc_support", "gcc_supported_by_cuda",
    "gpu_info", "is_unverified", "last_cuda_for_arch", "latest_torch", "max_clang_for_cuda",
    "max_gcc_for_cuda", "min_driver_for_cuda", "min_gcc_for_cuda", "minor_compat_floor",
    "newest_cuda_for_driver", "newest_torch_for_driver", "normalize_arch", "nvcc_archs", "parse_version",
    "pip_install_command",
    "tables", "toolkit_row", "torch_arch_list", "torch_arch_list_info", "torch_cuda_builds",
    "torch_release", "torchvision_for_torch",
]
