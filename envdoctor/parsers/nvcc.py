"""Parse ``nvcc --version``, ``nvcc --list-gpu-arch`` and nvcc wrapper scripts.

Pure functions; garbage in gives None / [] out, never an exception.
"""
from __future__ import annotations

import re
import shlex
from typing import Dict, List, Optional

# "Cuda compilation tools, release 11.8, V11.8.89". The trailing "Build cuda_..."
# line (CUDA >= 11.1) is ignored: it broke a regex in torch's collect_env once.
_RELEASE = re.compile(r"release\s+(\d+\.\d+)\s*,\s*V(\d+\.\d+(?:\.\d+)*)")
_RELEASE_ONLY = re.compile(r"Cuda compilation tools,\s*release\s+(\d+\.\d+)")


def parse_version(text: str) -> Optional[str]:
    """``"13.0.88"`` (the V number), or ``"13.0"`` when only the release is printed."""
    if not isinstance(text, str):
        return None
    match = _RELEASE.search(text)
    if match:
        full = match.group(2)
        # The V number should extend the release; if a paste mangled it, trust the release.
        return full if full.startswith(match.group(1)) else match.group(1)
    match = _RELEASE_ONLY.search(text)
    return match.group(1) if match else None


def parse_list_gpu_arch(text: str) -> List[str]:
    """``nvcc --list-gpu-arch`` (``compute_75`` lines) or ``--list-gpu-code``
    (``sm_75``) as ``["sm_75", ...]`` in the printed order, without duplicates."""
    archs: List[str] = []
    if not isinstance(text, str):
        return archs
    for token in re.findall(r"\b(?:compute|sm|lto)_(\d+[a-z]?)\b", text):
        arch = f"sm_{token}"
        if arch not in archs:
            archs.append(arch)
    return archs


_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_wrapper_target(script: str) -> Optional[str]:
    """The nvcc a wrapper script runs, e.g. ``exec /usr/local/cuda-13.0/bin/nvcc "$@"``.

    Handles ``exec`` or a bare call, quoting, ``$@``/``$*``, and simple
    ``VAR=/path`` assignments used in the call. Only absolute targets whose
    last component is ``nvcc`` count; None when none is found.
    """
    if not isinstance(script, str):
        return None
    variables: Dict[str, str] = {}
    for raw in script.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assign = _ASSIGN.match(line)
        if assign and " " not in assign.group(2).strip().strip("'\""):
            variables[assign.group(1)] = _unquote(assign.group(2).strip())
            continue
        target = _call_target(line, variables)
        if target:
            return target
    return None


def _unquote(value: str) -> str:
    try:
        parts = shlex.split(value)
    except ValueError:
        return value.strip("'\"")
    return parts[0] if parts else ""


def _expand(word: str, variables: Dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), m.group(0)), word)


def _call_target(line: str, variables: Dict[str, str]) -> Optional[str]:
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    while words and words[0] in ("exec", "command", "env", "-a") or (words and "=" in words[0]
                                                                       and not words[0].startswith("/")):
        words = words[1:]
    if not words:
        return None
    target = _expand(words[0], variables)
    if target.startswith("/") and target.rstrip("/").split("/")[-1] == "nvcc":
        return target
    return None


def ccbin_from_flags(flags: str) -> Optional[str]:
    """The compiler ``-ccbin X`` / ``--compiler-bindir=X`` names in a flag string (NVCC_PREPEND_FLAGS)."""
    try:
        words = shlex.split(flags)
    except ValueError:
        words = flags.split()
    for i, word in enumerate(words):
        for option in ("-ccbin", "--compiler-bindir"):
            if word == option and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(option + "="):
                return word.split("=", 1)[1]
    return None
