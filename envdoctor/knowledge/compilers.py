"""nvcc <-> host compiler: which GCC / clang majors each CUDA release accepts."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from . import _data
from .versions import cuda_major_minor, version_patch

# See driver.py: larger third components are nvcc build numbers, not updates.
_MAX_UPDATE_NUMBER = 9


def _rows_for(cuda: Any) -> List[Dict[str, Any]]:
    mm = cuda_major_minor(cuda)
    if mm is None:
        return []
    release = f"{mm[0]}.{mm[1]}"
    candidates = [r for r in _data.rows("cuda_host_compiler") if r["release"] == release]
    patch = version_patch(cuda) if isinstance(cuda, str) else None
    if patch is None or patch > _MAX_UPDATE_NUMBER or len(candidates) < 2:
        return candidates
    exact = [r for r in candidates if r["updates"] is None or r["updates"][0] <= patch <= r["updates"][1]]
    return exact or candidates


def _max(values: List[Optional[int]]) -> Optional[int]:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _min(values: List[Optional[int]]) -> Optional[int]:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def gcc_support(cuda: Any) -> Optional[Dict[str, Any]]:
    """Host compiler bounds for a CUDA release, with provenance flags.

    When the version does not say which update it is and updates differ (11.4.0
    accepts GCC <= 10, 11.4.1+ GCC <= 11), the most permissive bounds are
    returned with ``ambiguous`` True: a false "unsupported compiler" verdict
    on a working setup is worse than a missed one, and nvcc's own check still
    catches the rest.
    """
    rows = _rows_for(cuda)
    if not rows:
        return None
    clang_mins = [r["clang_min"] for r in rows if r.get("clang_min")]
    return {
        "cuda": rows[0]["release"],
        "gcc_min": _min([r["gcc_min_major"] for r in rows]),
        "gcc_max": _max([r["gcc_max_major"] for r in rows]),
        "clang_min": min(clang_mins, key=lambda s: [int(p) for p in s.split(".")]) if clang_mins else None,
        "clang_max": _max([r["clang_max_major"] for r in rows]),
        "ambiguous": len(rows) > 1,
        "unverified": any(r.get("unverified") for r in rows),
        "disputed": any(r.get("disputed") for r in rows),
        "rows": [r["cuda"] for r in rows],
        "notes": [r["note"] for r in rows if r.get("note")],
    }


def max_gcc_for_cuda(cuda: Any) -> Optional[int]:
    """Newest GCC major nvcc of that CUDA release accepts (inclusive)."""
    info = gcc_support(cuda)
    return info["gcc_max"] if info else None


def min_gcc_for_cuda(cuda: Any) -> Optional[int]:
    """Oldest supported GCC major (inclusive); None when the source states none."""
    info = gcc_support(cuda)
    return info["gcc_min"] if info else None


def max_clang_for_cuda(cuda: Any) -> Optional[int]:
    """Newest clang major nvcc of that CUDA release accepts (inclusive)."""
    info = gcc_support(cuda)
    return info["clang_max"] if info else None


def gcc_supported_by_cuda(gcc_major: Any, cuda: Any) -> Optional[bool]:
    """True / False, or None when the CUDA release or the GCC major is unknown."""
    info = gcc_support(cuda)
    if info is None or isinstance(gcc_major, bool):
        return None
    try:
        major = int(gcc_major)
    except (TypeError, ValueError):
        return None
    if info["gcc_max"] is not None and major > info["gcc_max"]:
        return False
    if info["gcc_min"] is not None and major < info["gcc_min"]:
        return False
    return True
