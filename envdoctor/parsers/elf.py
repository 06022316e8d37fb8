"""Read what a shared library needs (DT_NEEDED, RPATH/RUNPATH, SONAME) from its ELF file.

Pure Python, no ``readelf``/``ldd``: ``ldd`` may execute code, and neither tool is
guaranteed to exist. Only the section headers, the dynamic section and its
string table are read. Anything malformed yields an ``error``, never an exception.
"""
from __future__ import annotations

import re
import struct
from typing import Any, Dict, List, Optional

SHT_DYNAMIC = 6
DT_NULL, DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 14, 15, 29
MAX_SIZE = 2 ** 31  # a section table pointing past this is corruption, not a library


def read_dynamic(path: str) -> Dict[str, Any]:
    """``{"needed": [...], "rpath": [...], "soname": str|None, "sections": [...], "error": str|None}``."""
    result: Dict[str, Any] = {"needed": [], "rpath": [], "soname": None, "sections": [], "error": None}
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        result["error"] = f"cannot read: {exc.strerror or exc}"
        return result
    try:
        _parse(data, result)
    except (struct.error, IndexError, ValueError) as exc:
        result["error"] = f"not a valid ELF shared library ({exc})"
    return result


def _parse(data: bytes, result: Dict[str, Any]) -> None:
    if data[:4] != b"\x7fELF":
        raise ValueError("invalid ELF header")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
    if shoff == 0 or shoff + shentsize * shnum > len(data):
        raise ValueError("section headers missing or truncated")
    sections = [_section(data, shoff + i * shentsize, is64, end) for i in range(shnum)]
    names = sections[shstrndx] if shstrndx < len(sections) else None
    for sec in sections:
        sec["name"] = _cstr(data, names["offset"] + sec["name_off"]) if names else ""
    result["sections"] = [s["name"] for s in sections if s["name"]]
    for sec in sections:
        if sec["type"] == SHT_DYNAMIC:
            _read_dynamic_entries(data, sec, sections[sec["link"]], is64, end, result)


def section_headers(path: str) -> List[Dict[str, Any]]:
    """``[{"name", "type", "offset", "size"}]`` of an ELF file, reading only its headers (the
    file may be a 1 GB libtorch_cuda.so). Raises OSError, or ValueError when it is not ELF."""
    with open(path, "rb") as fh:
        ident = fh.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF":
            raise ValueError("invalid ELF header")
        is64 = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if is64:
            shoff, = struct.unpack_from(end + "Q", ident, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", ident, 0x3A)
        else:
            shoff, = struct.unpack_from(end + "I", ident, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", ident, 0x2E)
        if shoff == 0 or shoff > MAX_SIZE or shnum == 0:
            raise ValueError("section headers missing")
        fh.seek(shoff)
        table = fh.read(shentsize * shnum)
        if len(table) < shentsize * shnum:
            raise ValueError("section headers truncated")
        sections = [_section(table, i * shentsize, is64, end) for i in range(shnum)]
        names = b""
        if shstrndx < len(sections):
            fh.seek(sections[shstrndx]["offset"])
            names = fh.read(min(sections[shstrndx]["size"], 1 << 20))
    result = []
    for sec in sections:
        stop = names.find(b"\x00", sec["name_off"])
        name = names[sec["name_off"]:stop if stop >= 0 else len(names)].decode("utf-8", "replace")
        result.append({"name": name, "type": sec["type"], "offset": sec["offset"], "size": sec["size"]})
    return result


def _section(data: bytes, off: int, is64: bool, end: str) -> Dict[str, int]:
    if is64:
        name, typ, _flags, _addr, offset, size, link, _info, _align, entsize = struct.unpack_from(
            end + "IIQQQQIIQQ", data, off)
    else:
        name, typ, _flags, _addr, offset, size, link, _info, _align, entsize = struct.unpack_from(
            end + "IIIIIIIIII", data, off)
    if offset > MAX_SIZE or size > MAX_SIZE:
        raise ValueError("section out of range")
    return {"name_off": name, "type": typ, "offset": offset, "size": size, "link": link, "entsize": entsize}


def _read_dynamic_entries(data: bytes, dyn: Dict[str, int], strtab: Dict[str, int], is64: bool, end: str,
                          result: Dict[str, Any]) -> None:
    fmt, step = (end + "qQ", 16) if is64 else (end + "iI", 8)
    for off in range(dyn["offset"], dyn["offset"] + dyn["size"] - step + 1, step):
        tag, value = struct.unpack_from(fmt, data, off)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            result["needed"].append(_cstr(data, strtab["offset"] + value))
        elif tag == DT_SONAME:
            result["soname"] = _cstr(data, strtab["offset"] + value)
        elif tag in (DT_RPATH, DT_RUNPATH):
            result["rpath"].extend(p for p in _cstr(data, strtab["offset"] + value).split(":") if p)


def _cstr(data: bytes, off: int) -> str:
    endpos = data.index(b"\x00", off)
    return data[off:endpos].decode("utf-8", errors="replace")


def cuda_from_needed(needed: List[str]) -> Dict[str, Optional[object]]:
    """What the needed libraries say: a CUDA build? which CUDA runtime major (or major.minor)?

    ``libcudart.so.11.0`` -> "11" (11.x runtimes share the soname), ``libcudart.so.10.1`` -> "10.1"
    (before 11 each minor had its own), ``libcudart.so.12`` -> "12".
    """
    cuda: Optional[str] = None
    for name in needed:
        match = re.match(r"^libcudart\.so\.(\d+)(?:\.(\d+))?", name)
        if match:
            major = int(match.group(1))
            cuda = str(major) if major >= 11 or match.group(2) is None else f"{major}.{match.group(2)}"
    is_cuda = cuda is not None or any(n.startswith(("libc10_cuda", "libtorch_cuda", "libcuda.so")) for n in needed)
    return {"cuda": cuda, "is_cuda": is_cuda,
            "links_torch": any(n.startswith(("libc10", "libtorch")) for n in needed)}
