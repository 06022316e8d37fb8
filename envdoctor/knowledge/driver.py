"""NVIDIA driver <-> CUDA: which driver runs code built with which toolkit.

Tables: ``toolkit_driver`` (NVIDIA Table 3), ``minor_compat`` (minor-version
compatibility floors per CUDA major) and ``smi_branch`` (the "CUDA Version"
each driver branch reports). Linux x86_64 values throughout.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from packaging.version import Version

from . import _data
from .versions import cuda_major_minor, mm_of, parse_version, version_patch

# Labels of Table 3 rows that are not final releases; a bare "MAJOR.MINOR"
# query should not resolve to them when a final release exists.
_PRERELEASE_WORDS = ("RC", "Preview")
# Update numbers are small (0..4 so far); nvcc prints its own component build
# number instead ("V12.0.76"), which says nothing about the toolkit update.
_MAX_UPDATE_NUMBER = 9


@lru_cache(maxsize=None)
def _toolkit_rows() -> Tuple[Tuple[Version, Dict[str, Any]], ...]:
    return tuple(sorted(((Version(r["cuda"]), r) for r in _data.rows("toolkit_driver")), key=lambda p: p[0]))


def _is_prerelease(row: Dict[str, Any]) -> bool:
    return any(word in row.get("label", "") for word in _PRERELEASE_WORDS)


def toolkit_row(cuda: Any) -> Optional[Dict[str, Any]]:
    """The Table 3 row for a CUDA version, or its nearest listed release of that MAJOR.MINOR.

    Exact match first ("12.4.1", "10.1.105"). A small update number picks the
    newest listed update at or below it. A bare "12.4", a "cuXYZ" tag or an nvcc
    build number ("12.0.76") picks the first final release of that MAJOR.MINOR:
    the least demanding one, so envdoctor never asks for more than the GA needs.
    """
    mm = cuda_major_minor(cuda)
    if mm is None:
        return None
    candidates = [(v, r) for v, r in _toolkit_rows() if (v.release[0], v.release[1]) == mm]
    if not candidates:
        return None
    patch = version_patch(cuda) if isinstance(cuda, str) else None
    if patch is not None:
        exact = [r for v, r in candidates if len(v.release) >= 3 and v.release[2] == patch]
        if exact:
            return exact[0]
        if patch <= _MAX_UPDATE_NUMBER:
            at_or_below = [r for v, r in candidates if v.release[2] <= patch]
            if at_or_below:
                return at_or_below[-1]
    finals = [r for _, r in candidates if not _is_prerelease(r)]
    return (finals or [r for _, r in candidates])[0]


def _minor_compat_row(major: int) -> Optional[Dict[str, Any]]:
    for row in _data.rows("minor_compat"):
        if int(row["cuda_major"]) == major:
            return row
    return None


def min_driver_for_cuda(cuda: Any, minor_compat: bool = True) -> Optional[str]:
    """Minimum Linux x86_64 driver that runs code built with CUDA ``cuda``.

    minor_compat=True applies CUDA minor-version compatibility (CUDA >= 11): the
    answer is the lower of the release's toolkit driver and its major's floor
    (11.x 450.80.02, 12.x 525.60.13, 13.x 580.65.06). minor_compat=False gives
    the Table 3 toolkit driver of that release. None for unknown releases.
    """
    row = toolkit_row(cuda)
    if row is None:
        return None
    toolkit_driver = row.get("linux_min_driver")
    major = mm_of(row["cuda"])[0]
    compat = _minor_compat_row(major) if minor_compat else None
    if compat is None:
        return toolkit_driver
    floor = compat["linux_floor"]
    if toolkit_driver is None:
        return floor
    # CUDA 11.0 shipped with drivers below the 11.x floor; its own toolkit
    # driver runs it, so the floor must not exceed it.
    return toolkit_driver if Version(toolkit_driver) < Version(floor) else floor


@lru_cache(maxsize=None)
def _branch_rows() -> Tuple[Tuple[int, Dict[str, Any]], ...]:
    pairs: List[Tuple[int, Dict[str, Any]]] = []
    for row in _data.rows("smi_branch"):
        for branch in row["branches"]:
            pairs.append((int(branch), row))
    return tuple(sorted(pairs, key=lambda p: p[0]))


def driver_branch_row(driver_version: Any) -> Optional[Dict[str, Any]]:
    """The nvidia-smi branch row of a driver, by its major number.

    A major between two listed branches takes the nearest lower branch; one
    below the oldest or above the newest listed branch is unknown (None).
    """
    version = parse_version(driver_version)
    if version is None:
        return None
    major = version.release[0]
    pairs = _branch_rows()
    if not pairs or major < pairs[0][0] or major > pairs[-1][0]:
        return None
    chosen = None
    for branch, row in pairs:
        if branch <= major:
            chosen = row
    return chosen


def driver_max_cuda(driver_version: Any) -> Optional[str]:
    """Newest CUDA "MAJOR.MINOR" the driver supports, i.e. what nvidia-smi's header shows.

    "525.60.13" -> "12.0"; "565.57.01" -> "12.7" (no 12.7 toolkit exists, the
    driver still reports it). None when the branch is unknown.
    """
    row = driver_branch_row(driver_version)
    return row["reported_cuda"] if row else None


def driver_info(driver_version: Any) -> Optional[Dict[str, Any]]:
    """max_cuda plus where it comes from (observed header or derived from Table 3)."""
    row = driver_branch_row(driver_version)
    if row is None:
        return None
    return {
        "driver": str(parse_version(driver_version)),
        "branch": row["branch"],
        "max_cuda": row["reported_cuda"],
        "derived_from_table3": bool(row.get("derived_from_table3")),
        "unverified": bool(row.get("unverified")),
    }


def check_driver_for_cuda(driver_version: Any, cuda: Any) -> Dict[str, Any]:
    """Can this driver run code built with CUDA ``cuda``? A verdict with its reasons.

    ``ok`` is True / False, or None when the input or the table cannot tell.
    ``min_driver`` is the minimum applied, ``toolkit_driver`` the Table 3
    value, ``via_minor_compat`` says the verdict relies on minor-version
    compatibility, ``unverified`` that it rests on an unverified row.
    """
    result: Dict[str, Any] = {"ok": None, "min_driver": None, "toolkit_driver": None,
                              "via_minor_compat": False, "unverified": False, "reason": ""}
    driver = parse_version(driver_version)
    mm = cuda_major_minor(cuda)
    if driver is None:
        result["reason"] = f"driver version {_short(driver_version)} is not a version envdoctor can read"
        return result
    if mm is None:
        result["reason"] = f"CUDA version {_short(cuda)} is not a version envdoctor can read"
        return result
    row = toolkit_row(cuda)
    need = min_driver_for_cuda(cuda, minor_compat=True)
    cuda_text = f"{mm[0]}.{mm[1]}"
    if row is None or need is None:
        result["reason"] = f"CUDA {cuda_text} is not in envdoctor's driver table"
        return result
    toolkit_driver = row.get("linux_min_driver")
    result.update(min_driver=need, toolkit_driver=toolkit_driver, unverified=bool(row.get("unverified")))
    result["ok"] = _at_least(driver, need)
    result["via_minor_compat"] = bool(
        result["ok"] and toolkit_driver and not _at_least(driver, toolkit_driver)
    )
    # Keep the driver as the user wrote it: Version() would print "580.65.06" as "580.65.6".
    driver_text = str(driver_version).strip()
    result["reason"] = _reason(driver_text, cuda_text, mm[0], need, toolkit_driver, result)
    return result


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _at_least(driver: Version, need: str) -> bool:
    """driver >= need. A bare branch ("580") is compared by branch only, as NVIDIA's
    compatibility tables do (">= 580"); the exact floor is in the reason text."""
    if len(driver.release) == 1:
        return driver.release[0] >= Version(need).release[0]
    return driver >= Version(need)


def _reason(driver: str, cuda: str, major: int, need: str, toolkit_driver: Optional[str],
            result: Dict[str, Any]) -> str:
    compat = _minor_compat_row(major)
    if compat is not None and need != compat["linux_floor"]:
        # CUDA 11.0: its own toolkit driver is below the 11.x compatibility floor.
        rule = f"CUDA {cuda} code needs driver >= {need} (the CUDA {cuda} toolkit driver)"
    elif compat is not None:
        rule = f"CUDA {major}.x code needs driver >= {need} (minor-version compatibility)"
    else:
        rule = f"CUDA {cuda} code needs driver >= {need} (no minor-version compatibility before CUDA 11)"
    if toolkit_driver and toolkit_driver != need:
        rule += f"; the CUDA {cuda} toolkit driver is {toolkit_driver}"
    if result["unverified"]:
        rule += f" (the CUDA {cuda} row of the driver table is unverified)"
    if not result["ok"]:
        supports = _runs_up_to(driver)
        return f"driver {driver} cannot run code built with CUDA {cuda}: {rule}{supports}"
    text = f"driver {driver} can run code built with CUDA {cuda}: {rule}"
    if result["via_minor_compat"]:
        text += ("; minor-version compatibility does not cover PTX built by the newer toolkit "
                 "(cudaErrorUnsupportedPtxVersion) or features new in that release")
    return text


def newest_cuda_for_driver(driver_version: Any) -> Optional[str]:
    """Newest CUDA "MAJOR.MINOR" of Table 3 whose code this driver runs, by the same test as
    :func:`check_driver_for_cuda` (minor-version compatibility applied): "470.82.01" -> "11.8",
    although nvidia-smi reports 11.4. None when no release qualifies or the driver is unreadable."""
    driver = parse_version(driver_version)
    return _newest_cuda(driver) if driver is not None else None


@lru_cache(maxsize=256)
def _newest_cuda(driver: Version) -> Optional[str]:
    best: Optional[Version] = None
    for version, row in _toolkit_rows():
        need = min_driver_for_cuda(row["cuda"], minor_compat=True)
        if not _is_prerelease(row) and need is not None and _at_least(driver, need):
            best = version
    return f"{best.release[0]}.{best.release[1]}" if best is not None else None


def _runs_up_to(driver: str) -> str:
    """"; driver 470.82.01 runs CUDA <= 11.8 (11.x through minor-version compatibility; it reports 11.4)"."""
    newest, reported = newest_cuda_for_driver(driver), driver_max_cuda(driver)
    if not newest:
        return f"; driver {driver} supports CUDA <= {reported}" if reported else ""
    text = f"; driver {driver} runs CUDA <= {newest}"
    if reported and cuda_major_minor(reported) != cuda_major_minor(newest):
        text += f" ({newest.split('.')[0]}.x through minor-version compatibility; it reports {reported})"
    return text


def driver_runs_cuda(driver_version: Any, cuda: Any) -> Tuple[bool, str]:
    """(can run, reason citing the minimum). Unknown input gives (False, why)."""
    verdict = check_driver_for_cuda(driver_version, cuda)
    return verdict["ok"] is True, verdict["reason"]


def minor_compat_floor(cuda_major: Any) -> Optional[str]:
    """Linux driver floor of minor-version compatibility for a CUDA major (None before 11)."""
    try:
        row = _minor_compat_row(int(cuda_major))
    except (TypeError, ValueError):
        return None
    return row["linux_floor"] if row else None
