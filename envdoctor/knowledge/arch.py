"""nvcc <-> GPU architecture: which sm_XX each CUDA release can compile for."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from . import _data
from .versions import arch_sort_key, cuda_major_minor, mm_of, normalize_arch


@lru_cache(maxsize=None)
def _known_toolkits() -> frozenset:
    return frozenset(mm_of(r["cuda"]) for r in _data.rows("nvcc_toolkits"))


def _known_mm(cuda: Any) -> Optional[Tuple[int, int]]:
    """(major, minor) if the arch table covers that release, else None.

    Outside the covered releases (before 10.0, the never-released 12.7, after
    13.4) open-ended rows would be guesses, so no answer is given.
    """
    mm = cuda_major_minor(cuda)
    return mm if mm in _known_toolkits() else None


def _covers(row: Dict[str, Any], mm: Tuple[int, int]) -> bool:
    if mm < mm_of(row["first_cuda"]):
        return False
    last = row.get("last_cuda")
    return last is None or mm <= mm_of(last)


def _arch_row(arch: Any) -> Optional[Dict[str, Any]]:
    norm = normalize_arch(arch)
    if norm is None:
        return None
    for row in _data.rows("nvcc_arch"):
        if row["arch"] == norm:
            return row
    return None


def nvcc_archs(cuda: Any, variants: bool = False) -> List[str]:
    """Archs nvcc of that CUDA release can target, sorted by number.

    Includes deprecated-but-still-accepted archs. ``variants`` adds the
    arch-specific ("sm_90a") and family ("sm_100f") targets. [] when unknown.
    """
    mm = _known_mm(cuda)
    if mm is None:
        return []
    archs = [
        r["arch"] for r in _data.rows("nvcc_arch")
        if _covers(r, mm) and (variants or r["arch"][-1].isdigit())
    ]
    return sorted(archs, key=arch_sort_key)


def arch_support(arch: Any, cuda: Any) -> Optional[Dict[str, Any]]:
    """Whether nvcc of ``cuda`` can target ``arch``, with the row's range and flags.

    None when the arch is unreadable or the CUDA release is not covered. An
    arch absent from the table (sm_20, ...) is reported unsupported.
    """
    norm = normalize_arch(arch)
    mm = _known_mm(cuda)
    if norm is None or mm is None:
        return None
    row = _arch_row(norm)
    if row is None:
        return {"arch": norm, "cuda": f"{mm[0]}.{mm[1]}", "supported": False, "first_cuda": None,
                "last_cuda": None, "unverified": False, "note": "architecture not in envdoctor's table"}
    return {
        "arch": norm,
        "cuda": f"{mm[0]}.{mm[1]}",
        "supported": _covers(row, mm),
        "first_cuda": row["first_cuda"],
        "last_cuda": row.get("last_cuda"),
        "unverified": bool(row.get("unverified")),
        "note": row.get("note"),
    }


def arch_supported_by_cuda(arch: Any, cuda: Any) -> bool:
    """arch as "8.6", "sm_86", "86" or "compute_86"; False for unknown input."""
    info = arch_support(arch, cuda)
    return bool(info and info["supported"])


def first_cuda_for_arch(arch: Any) -> Optional[str]:
    """Oldest CUDA release whose nvcc can target the arch ("sm_90" -> "11.8")."""
    row = _arch_row(arch)
    return row["first_cuda"] if row else None


def last_cuda_for_arch(arch: Any) -> Optional[str]:
    """Newest CUDA release that can still target the arch; None if still supported or unknown."""
    row = _arch_row(arch)
    return row.get("last_cuda") if row else None
