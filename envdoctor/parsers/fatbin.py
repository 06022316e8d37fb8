"""Which GPU architectures a binary carries device code for, read from its ``.nv_fatbin`` section.

nvcc embeds one or more fat binaries in a CUDA library; each holds entries of
SASS (an ELF cubin for one ``sm_XY``) or PTX (``compute_XY``, JIT-compiled by the
driver for the same or newer GPUs). Only the 16-byte fatbin headers and the entry
headers are read, never the payloads, so a 1 GB ``libtorch_cuda.so`` costs a few
thousand small reads.

Layout (little endian), as written by nvcc 11-13 and checked on binaries built here:
fatbin header ``<IHHQ``: magic 0xBA55ED50, version, header size, size of the entries;
entry header ``<HHIQ`` + words: kind (1 PTX, 2 ELF), version, header size, payload
size; the architecture number (86) at byte 28; flags at byte 40, where 0x100000 marks
an arch-specific target (``sm_90a``) and 0x200000 a family target (``sm_100f``).
"""
from __future__ import annotations

import struct
from typing import Any, Dict, List

from envdoctor.parsers import elf

FATBIN_MAGIC = 0xBA55ED50
KIND_PTX, KIND_ELF = 1, 2
FLAG_ARCH_SPECIFIC = 0x100000
FLAG_FAMILY = 0x200000
MAX_ENTRIES = 100000  # a corrupt size field must not loop forever


def _arch_name(kind: int, arch: int, flags: int) -> str:
    suffix = "a" if flags & FLAG_ARCH_SPECIFIC else ("f" if flags & FLAG_FAMILY else "")
    return f"{'compute' if kind == KIND_PTX else 'sm'}_{arch}{suffix}"


def device_archs(path: str) -> Dict[str, Any]:
    """``{"archs": ["compute_90", "sm_80", "sm_90a"], "has_device_code": bool, "error": str|None}``."""
    result: Dict[str, Any] = {"archs": [], "has_device_code": False, "error": None}
    try:
        sections = [s for s in elf.section_headers(path) if s["name"] == ".nv_fatbin"]
        archs = set()
        with open(path, "rb") as fh:
            for section in sections:
                archs.update(_section_archs(fh, section["offset"], section["size"]))
    except OSError as exc:
        result["error"] = f"cannot read: {exc.strerror or exc}"
        return result
    except (struct.error, ValueError) as exc:
        result["error"] = f"not a readable ELF file ({exc})"
        return result
    result["archs"] = sorted(archs)
    result["has_device_code"] = bool(archs)
    return result


def _section_archs(fh, offset: int, size: int) -> List[str]:
    archs: List[str] = []
    pos, end, entries = offset, offset + size, 0
    while pos + 16 <= end:
        fh.seek(pos)
        magic, _version, header_size, fat_size = struct.unpack("<IHHQ", fh.read(16))
        if magic != FATBIN_MAGIC:
            pos += 8  # fat binaries are 8-byte aligned inside the section; skip padding
            continue
        entry, stop = pos + header_size, min(pos + header_size + fat_size, end)
        while entry + 48 <= stop and entries < MAX_ENTRIES:
            fh.seek(entry)
            head = fh.read(48)
            kind, _v, entry_header, payload = struct.unpack_from("<HHIQ", head, 0)
            arch, = struct.unpack_from("<I", head, 28)
            flags, = struct.unpack_from("<I", head, 40)
            if entry_header < 48:
                raise ValueError(f"fatbin entry header of {entry_header} bytes")
            if kind in (KIND_PTX, KIND_ELF) and arch:
                archs.append(_arch_name(kind, arch, flags))
            entry += entry_header + payload
            entries += 1
        pos = pos + header_size + fat_size
    return archs
