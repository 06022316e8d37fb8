"""Device code of a compiled extension, as the rebuild proof and the detectron2 probe need it:
the cubin and PTX architecture numbers (``{"sm": [90], "ptx": [120]}``), read from the library's
``.nv_fatbin`` by :mod:`envdoctor.parsers.fatbin` (no GPU, no ``cuobjdump``)."""
from __future__ import annotations

import re
from typing import Any, Dict, List

from envdoctor.parsers import fatbin


def _numbers(archs: List[str], prefix: str) -> List[int]:
    found = {int(m.group(1)) for a in archs for m in [re.match(prefix + r"_(\d+)", a)] if m}
    return sorted(found)


def device_code(path: str) -> Dict[str, Any]:
    """``{"sm": [90], "ptx": [120], "archs": ["compute_120", "sm_90"], "error": str|None}``."""
    read = fatbin.device_archs(path)
    return {"sm": _numbers(read["archs"], "sm"), "ptx": _numbers(read["archs"], "compute"),
            "archs": read["archs"], "error": read["error"]}


def covers(code: Dict[str, Any], arch: str) -> bool:
    """Whether device code runs on compute capability ``arch`` ("8.6", "9.0"): a cubin of the same
    major with a minor not above it, or PTX for an architecture not above it (the driver compiles it)."""
    try:
        major, minor = (int(x) for x in arch.split(".")[:2])
    except ValueError:
        return False
    want = major * 10 + minor
    return any(sm // 10 == major and sm <= want for sm in code.get("sm") or []) or \
        any(ptx <= want for ptx in code.get("ptx") or [])
