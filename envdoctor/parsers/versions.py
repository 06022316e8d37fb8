"""Parse version strings of the rest of the tool chain: gcc/g++/clang, a CUDA
toolkit's ``version.json`` / ``version.txt``, wheel ``dist-info`` names, conda
package records, and ``ninja --version``. Pure; never raises.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional, Tuple

_VERSION = r"\d+(?:\.\d+){0,3}"


def parse_compiler_version(text: str) -> Optional[Dict[str, str]]:
    """``gcc --version`` / ``clang --version`` / ``-dumpfullversion`` ->
    ``{"name": "gcc"|"clang", "version": "12.2.0"}``; None when unreadable."""
    if not isinstance(text, str):
        return None
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if not lines:
        return None
    first = lines[0]
    if re.fullmatch(_VERSION, first):  # -dumpfullversion / -dumpversion
        return {"name": "gcc", "version": first}
    clang = re.search(r"clang version\s+(" + _VERSION + r")", first)
    if clang:
        return {"name": "clang", "version": clang.group(1)}
    # "gcc (Debian 12.2.0-14+deb12u1) 12.2.0", "g++ (GCC) 8.5.0 20210514 (Red Hat 8.5.0-4)",
    # "cc (Ubuntu 9.4.0-1ubuntu1~20.04.2) 9.4.0": the version follows the parenthesis.
    gcc = re.match(r"^(\S+)\s+\([^)]*\)\s+(" + _VERSION + r")", first)
    if gcc:
        return {"name": "gcc", "version": gcc.group(2)}
    if "Free Software Foundation" in text or re.search(r"\b(gcc|g\+\+|cc|c\+\+)\b", first):
        loose = re.search(r"\b(\d+\.\d+(?:\.\d+)?)\b", first)
        if loose:
            return {"name": "gcc", "version": loose.group(1)}
    return None


def parse_cuda_version_json(text: str) -> Optional[Dict[str, Optional[str]]]:
    """A toolkit's ``version.json`` -> ``{"cuda": "12.1.1", "nvcc": "12.1.105", "cudart": ...}``."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None

    def component(name: str) -> Optional[str]:
        entry = data.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("version"), str):
            value = entry["version"].strip()
            return value if re.fullmatch(_VERSION, value) else None
        return None

    result = {"cuda": component("cuda"), "nvcc": component("cuda_nvcc"), "cudart": component("cuda_cudart")}
    return result if any(result.values()) else None


def parse_cuda_version_txt(text: str) -> Optional[str]:
    """A toolkit's ``version.txt``: ``CUDA Version 11.1.105`` -> ``"11.1.105"``."""
    if not isinstance(text, str):
        return None
    match = re.search(r"CUDA Version\s+(" + _VERSION + r")", text)
    return match.group(1) if match else None


def parse_dist_info_name(name: str) -> Optional[Tuple[str, str]]:
    """``nvidia_cuda_nvcc-13.0.88.dist-info`` -> ``("nvidia_cuda_nvcc", "13.0.88")``."""
    if not isinstance(name, str):
        return None
    match = re.fullmatch(r"([A-Za-z0-9_.]+?)-(" + _VERSION + r"(?:[.+\w]*)?)\.(?:dist|egg)-info", name)
    if not match:
        return None
    return match.group(1).lower().replace(".", "_"), match.group(2)


def parse_conda_meta_name(name: str) -> Optional[Tuple[str, str]]:
    """A ``conda-meta`` record file name: ``cudatoolkit-11.1.74-h6bb024c_0.json`` ->
    ``("cudatoolkit", "11.1.74")``."""
    if not isinstance(name, str):
        return None
    match = re.fullmatch(r"(.+)-(" + _VERSION + r"[^-]*)-([^-]+)\.json", name)
    if not match:
        return None
    return match.group(1), match.group(2)


def parse_ninja_version(text: str) -> Optional[str]:
    """``ninja --version`` -> ``"1.13.2"`` (suffixes like ``.git.kitware...`` dropped)."""
    if not isinstance(text, str):
        return None
    match = re.match(r"\s*(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def version_tuple(version: Any) -> Tuple[int, ...]:
    """``"12.1.105"`` -> ``(12, 1, 105)``; () for anything else."""
    if not isinstance(version, str):
        return ()
    match = re.match(r"^\s*(\d+(?:\.\d+)*)", version)
    if not match:
        return ()
    return tuple(int(p) for p in match.group(1).split("."))
