"""Find and load the compiled op for the current environment, and say which implementation runs.

Only a binary whose cache key matches this environment is ever loaded, and its
CUDA version is cross-checked against torch's after loading.
"""
from __future__ import annotations

import os
import warnings
from typing import List, Optional

import torch

from envdoctor.ops import _registration
from envdoctor.ops.build import BuildRefused, build_extension, cached_library, plan_build
from envdoctor.ops.errors import OpLoadError

_state = {"path": None, "variant": None, "auto_tried": False, "warned": False}


class ReferenceFallbackWarning(UserWarning):
    """impl="auto" runs the pure-PyTorch reference because the compiled op is not built here."""


def loaded_variant() -> Optional[str]:
    return _state["variant"]


def has_kernel(dispatch_key: str) -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key("envdoctor::ms_deform_attn", dispatch_key)
    except RuntimeError:  # the operator is not registered at all
        return False


def _op_registered() -> bool:
    return has_kernel("CPU")


def _variants(cuda: Optional[bool]) -> List[str]:
    if cuda is not None:
        return ["cuda"] if cuda else ["cpu"]
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def load_extension(build: bool = False, cuda: Optional[bool] = None, cache_dir: Optional[str] = None) -> bool:
    """Load the cached op for this environment; with ``build=True`` build it first if missing.

    Returns False when there is no binary (or the build failed). Raises OpLoadError
    when a binary exists but cannot be used, because that needs the user's action.
    """
    if _state["path"]:
        return True
    for variant in _variants(cuda):
        try:
            plan = plan_build(cuda=(variant == "cuda"), cache_dir=cache_dir)
        except BuildRefused:
            continue
        path = cached_library(plan, allow_more_archs=True)
        if path is None and build:
            result = build_extension(cuda=(variant == "cuda"), cache_dir=cache_dir)
            path = result.path if result.ok else None
        if path:
            load_library(path, variant)
            return True
    return False


def load_library(path: str, variant: str) -> None:
    """Load one built library into this process (one variant per process)."""
    if _state["path"] == path:
        return
    if _state["path"] or _op_registered():
        raise OpLoadError(f"an envdoctor op library is already loaded in this process ({_state['path']}); "
                          f"cannot also load {path}. Restart Python to switch variants.")
    try:
        torch.ops.load_library(path)
    except (OSError, RuntimeError) as exc:
        raise OpLoadError(f"the compiled MSDeformAttn op at {path} cannot be loaded: {exc}. It was probably "
                          "built for another torch or CUDA; rebuild it with `envdoctor build --force`.") from None
    _state["path"], _state["variant"] = path, variant
    _check_cuda_version(path)
    _registration.register_once()


def _check_cuda_version(path: str) -> None:
    compiled = int(torch.ops.envdoctor._cuda_version())
    if compiled == 0 or torch.version.cuda is None:
        return
    built = f"{compiled // 1000}.{(compiled % 1000) // 10}"
    if built.split(".")[0] != torch.version.cuda.split(".")[0]:
        raise OpLoadError(f"the op at {path} was compiled with CUDA {built} but torch uses CUDA "
                          f"{torch.version.cuda}; rebuild it with `envdoctor build --force`.")


def _auto_load() -> bool:
    """What impl="auto" does: try to load once per process, never fail."""
    if _state["path"]:
        return True
    if not _state["auto_tried"]:
        _state["auto_tried"] = True
        try:
            return load_extension(build=False)
        except Exception:  # auto falls back to the reference; impl="compiled" reports the reason
            return False
    return False


def compiled_available(device: str) -> bool:
    """True when the loaded op has a kernel for ``device`` ("cpu", "cuda", "cuda:1", ...)."""
    if not _auto_load():
        return False
    key = "CUDA" if torch.device(device).type == "cuda" else "CPU"
    return has_kernel(key)


def auto_available(device: str) -> bool:
    """What impl="auto" asks: is the compiled op there for ``device``? When it is not, say so once per
    process (the reference is correct but slower): a fallback must never be silent."""
    if compiled_available(device):
        return True
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(f"envdoctor's MSDeformAttn runs the pure-PyTorch reference: {not_built_message(device)}",
                      ReferenceFallbackWarning, stacklevel=3)
    return False


def active_implementation(device: str = "cpu") -> str:
    """"compiled" or "reference": what ms_deform_attn(impl="auto") uses on ``device``."""
    return "compiled" if compiled_available(device) else "reference"


def not_built_message(device: str) -> str:
    variant = "cuda" if torch.device(device).type == "cuda" else "cpu"
    flag = "" if variant == "cuda" else " --cpu-only"
    loaded = f" (loaded: the {_state['variant']} variant from {_state['path']})" if _state["path"] else ""
    return (f"the compiled MSDeformAttn op for {device} is not built for this environment{loaded}. "
            f"Build it with `envdoctor build{flag}`, or use impl=\"reference\". Cache: "
            f"{os.environ.get('ENVDOCTOR_CACHE_DIR', '~/.cache/envdoctor/ops')}")
