"""Tolerant parsing of the version strings envdoctor meets.

Tools print versions in many shapes ("V12.0.76", "release 11.8, V11.8.89",
"2.14.1+cu130", "cu118", 8902 from cuDNN). Every function here returns None
for input it cannot read and never raises: a probe's odd output must become
"not available", not a crash.
"""
from __future__ import annotations

import re
from typing import Any, Optional, Tuple

from packaging.version import InvalidVersion, Version

# ASCII only: Python's \d also matches other scripts' digits, which int() would
# happily convert, turning garbage into a plausible version.
_DOTTED = re.compile(r"[0-9]+(?:\.[0-9]+)+", re.ASCII)
_CU_TAG = re.compile(r"(?:^|[+\s_-])cu([0-9]{2,3})(?![0-9.])", re.ASCII | re.IGNORECASE)
_ARCH = re.compile(r"^(?:sm_?|compute_?)?([0-9]{2,3})([af]?)$", re.ASCII)
_ARCH_DOTTED = re.compile(r"^([0-9]{1,2})\.([0-9])([af]?)$", re.ASCII)
_MAX_LEN = 200  # longer strings are not versions; also bounds regex work


def parse_version(s: Any) -> Optional[Version]:
    """Parse a version leniently; the local part ("+cu130") is dropped.

    "12.0" / "V12.0.76" / "11.1.74" / "525.60.13" / "2.14.1+cu130" all parse.
    Text around a dotted number ("release 11.8, V11.8.89") yields its first
    dotted number. Returns None when nothing version-like is found.
    """
    if isinstance(s, bool) or s is None:
        return None
    if isinstance(s, int):
        s = str(s)
    if not isinstance(s, str):
        return None
    text = s.strip()
    if not text or len(text) > _MAX_LEN:
        return None
    head = text.split("+", 1)[0]
    if head[:1] in ("v", "V"):
        head = head[1:]
    version = _strict(head)
    if version is not None:
        return version
    match = _DOTTED.search(text)
    return _strict(match.group(0)) if match else None


def _strict(text: str) -> Optional[Version]:
    if not text.isascii():
        return None
    try:
        return Version(Version(text).public)
    except (InvalidVersion, ValueError, TypeError):
        return None


def cuda_major_minor(s: Any) -> Optional[Tuple[int, int]]:
    """(major, minor) of a CUDA version: "11.1.74" -> (11, 1), "cu118" -> (11, 8).

    A "+cuXYZ" wheel tag wins over the version in front of it, so
    "2.14.1+cu130" -> (13, 0), while "2.14.1+cpu" is None. A bare "12" is None
    (which 12.x is unknown).
    """
    if isinstance(s, tuple) and len(s) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in s):
        return (s[0], s[1]) if 1 <= s[0] <= 99 and 0 <= s[1] <= 99 else None
    if not isinstance(s, str) or len(s) > _MAX_LEN:
        return None
    tag = _CU_TAG.search(s.strip())
    if tag:
        digits = tag.group(1)
        return int(digits[:-1]), int(digits[-1])
    if "+" in s:
        # A local label that is not a cu tag ("2.14.1+cpu", "+rocm6.0") marks a
        # package version: the number in front of it is not a CUDA version.
        return None
    version = parse_version(s)
    if version is None or len(version.release) < 2:
        return None
    major, minor = version.release[0], version.release[1]
    if not (1 <= major <= 99 and 0 <= minor <= 99):
        return None
    return major, minor


def cuda_str(s: Any) -> Optional[str]:
    """"MAJOR.MINOR" of a CUDA version in any accepted form, e.g. "cu121" -> "12.1"."""
    mm = cuda_major_minor(s)
    return f"{mm[0]}.{mm[1]}" if mm else None


def cuda_tag(s: Any) -> Optional[str]:
    """PyTorch wheel tag of a CUDA version: "12.1" -> "cu121"."""
    mm = cuda_major_minor(s)
    return f"cu{mm[0]}{mm[1]}" if mm else None


def version_patch(s: Any) -> Optional[int]:
    """Third release component ("12.4.1" -> 1), None when absent or for "cuXYZ" tags."""
    if not isinstance(s, str) or _CU_TAG.search(s.strip()):
        return None
    version = parse_version(s)
    if version is None or len(version.release) < 3:
        return None
    return version.release[2]


def cudnn_version(raw: Any) -> Optional[str]:
    """Decode torch.backends.cudnn.version(): 8902 -> "8.9.2", 90100 -> "9.1.0".

    cuDNN >= 9 encodes major*10000 + minor*100 + patch; cuDNN <= 8 encodes
    major*1000 + minor*100 + patch. The two ranges do not overlap (<= 8999 vs
    >= 90000), so the encoding is decided by magnitude. A dotted string
    ("8.9.2.26") is returned as MAJOR.MINOR.PATCH.
    """
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if text.isascii() and text.isdigit() and len(text) <= 9:
            raw = int(text)
        else:
            version = parse_version(text)
            if version is None or len(version.release) < 2:
                return None
            parts = (list(version.release) + [0])[:3]
            return ".".join(str(p) for p in parts)
    if not isinstance(raw, int) or raw <= 0:
        return None
    if raw >= 90000:
        major, rest = divmod(raw, 10000)
    elif 1000 <= raw <= 8999:
        major, rest = divmod(raw, 1000)
    else:
        return None
    minor, patch = divmod(rest, 100)
    if major > 99:
        return None
    return f"{major}.{minor}.{patch}"


def normalize_arch(arch: Any) -> Optional[str]:
    """"8.6" / "86" / "sm_86" / "compute_86" / "8.6+PTX" -> "sm_86"; "9.0a" -> "sm_90a"."""
    if not isinstance(arch, str) or len(arch) > 32:
        return None
    text = arch.strip().lower()
    if text.endswith("+ptx"):
        text = text[: -len("+ptx")]
    dotted = _ARCH_DOTTED.match(text)
    if dotted:
        return f"sm_{int(dotted.group(1))}{dotted.group(2)}{dotted.group(3)}"
    plain = _ARCH.match(text)
    if plain:
        return f"sm_{int(plain.group(1))}{plain.group(2)}"
    return None


def arch_cc(arch: Any) -> Optional[str]:
    """Compute capability of an arch: "sm_86" -> "8.6", "sm_100a" -> "10.0a"."""
    norm = normalize_arch(arch)
    if norm is None:
        return None
    body = norm[3:]
    suffix = body[-1] if body[-1] in "af" else ""
    digits = body[: len(body) - len(suffix)]
    return f"{digits[:-1]}.{digits[-1]}{suffix}"


def arch_sort_key(arch: str) -> Tuple[int, str]:
    """Sort "sm_90" before "sm_90a" before "sm_100" (numeric, then variant)."""
    norm = normalize_arch(arch) or arch
    body = norm[3:] if norm.startswith("sm_") else norm
    suffix = body[-1] if body and body[-1] in "af" else ""
    digits = body[: len(body) - len(suffix)]
    return (int(digits) if digits.isdigit() else 10**6, suffix)


def mm_of(version: str) -> Tuple[int, int]:
    """(major, minor) of a table's own "X.Y[.Z]" string (trusted data)."""
    parts = version.split(".")
    return int(parts[0]), int(parts[1])
