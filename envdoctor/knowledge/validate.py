"""Check the knowledge data files after an edit: ``python -m envdoctor.knowledge.validate``.

Every table must cite a source and the date it was read, say whether its
bounds are inclusive, name its row key, have unique keys, and hold values that
parse; ranges must be ordered. Prints one line per problem; exit status 1 when
there is any. The unit tests run the same checks on the packaged data and on
deliberately broken copies.
"""
from __future__ import annotations

import datetime
import re
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional

from packaging.version import InvalidVersion, Version

from . import _data

_SM = re.compile(r"^sm_[0-9]{2,3}[af]?$")
_ARCH_ENTRY = re.compile(r"^(sm|compute)_[0-9]{2,3}$")


def _version(value: Any) -> Optional[Version]:
    if not isinstance(value, str):
        return None
    try:
        return Version(value)
    except InvalidVersion:
        return None


def _check_meta(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    sources = tbl.get("source")
    sources = sources if isinstance(sources, list) else [sources]
    if not sources or not all(isinstance(s, str) and s.strip() for s in sources):
        yield f"{name}: 'source' must be a non-empty string or list of strings"
    try:
        datetime.date.fromisoformat(str(tbl.get("date_read")))
    except ValueError:
        yield f"{name}: 'date_read' must be a YYYY-MM-DD date, got {tbl.get('date_read')!r}"
    for field in ("bounds", "description", "key"):
        if not isinstance(tbl.get(field), str) or not tbl[field].strip():
            yield f"{name}: missing '{field}'"
    if not isinstance(tbl.get("rows"), list) or not tbl["rows"]:
        yield f"{name}: 'rows' must be a non-empty list"


def _check_rows(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    key, seen = tbl.get("key"), set()
    for i, row in enumerate(tbl.get("rows") or []):
        if not isinstance(row, dict) or key not in row:
            yield f"{name}: row {i} has no key field {key!r}"
            continue
        folded = str(row[key]).casefold()
        if folded in seen:
            yield f"{name}: duplicate key {row[key]!r}"
        seen.add(folded)
        if "unverified" in row and row["unverified"] is not True:
            yield f"{name}: {row[key]!r}: write \"unverified\": true or leave it out"
        # Tables with a 'sources' map cite by id; a typo would silently lose the citation.
        sources = tbl.get("sources", {})
        for src in row.get("source", []) if isinstance(row.get("source"), list) else [row.get("source")]:
            if src is not None and sources and src not in sources:
                yield f"{name}: {row[key]!r}: unknown source id {src!r}"


def _need_versions(name: str, row: Dict[str, Any], key: str, fields: Iterable[str],
                   nullable: bool = False) -> Iterable[str]:
    for field in fields:
        value = row.get(field)
        if value is None and nullable:
            continue
        if _version(value) is None:
            yield f"{name}: {row.get(key)!r}: {field} {value!r} is not a version string"


def _ordered(name: str, label: str, low: Any, high: Any) -> Iterable[str]:
    lo, hi = _version(low), _version(high)
    if lo is not None and hi is not None and lo > hi:
        yield f"{name}: {label}: range {low} > {high}"


def _toolkit_driver(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    previous_cuda, previous_driver = None, None
    for row in tbl["rows"]:
        yield from _need_versions(name, row, "cuda", ["cuda"])
        yield from _need_versions(name, row, "cuda", ["linux_min_driver", "windows_min_driver"], nullable=True)
        cuda, driver = _version(row.get("cuda")), _version(row.get("linux_min_driver"))
        if cuda and previous_cuda and cuda <= previous_cuda:
            yield f"{name}: rows must be sorted by CUDA version ({row['cuda']})"
        if driver and previous_driver and driver < previous_driver:
            yield f"{name}: {row['cuda']}: Linux driver {row['linux_min_driver']} lower than an older release's"
        previous_cuda = cuda or previous_cuda
        previous_driver = driver or previous_driver


def _minor_compat(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        yield from _need_versions(name, row, "cuda_major", ["cuda_major", "branch_floor", "linux_floor"])
        yield from _need_versions(name, row, "cuda_major", ["windows_floor", "branch_upper_exclusive"], nullable=True)


def _smi_branch(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        yield from _need_versions(name, row, "branch", ["reported_cuda"])
        if not row.get("branches") or not all(str(b).isdigit() for b in row["branches"]):
            yield f"{name}: {row.get('branch')!r}: 'branches' must list driver major numbers"


def _host_compiler(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        yield from _need_versions(name, row, "cuda", ["release", "clang_min"])
        low, high = row.get("gcc_min_major"), row.get("gcc_max_major")
        if not isinstance(high, int) or (low is not None and not isinstance(low, int)):
            yield f"{name}: {row.get('cuda')!r}: gcc bounds must be integers"
        elif low is not None and low > high:
            yield f"{name}: {row.get('cuda')!r}: gcc range {low} > {high}"
        updates = row.get("updates")
        if updates is not None and not (len(updates) == 2 and updates[0] <= updates[1]):
            yield f"{name}: {row.get('cuda')!r}: 'updates' must be [first, last]"


def _nvcc_arch(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        if not _SM.match(str(row.get("arch"))):
            yield f"{name}: arch {row.get('arch')!r} must look like sm_86"
        yield from _need_versions(name, row, "arch", ["first_cuda"])
        yield from _need_versions(name, row, "arch", ["last_cuda", "removed_in"], nullable=True)
        yield from _ordered(name, str(row.get("arch")), row.get("first_cuda"), row.get("last_cuda"))


def _gpu_cc(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        cc, arch = str(row.get("cc")), str(row.get("arch"))
        if not re.match(r"^[0-9]{1,2}\.[0-9]$", cc) or arch != "sm_" + cc.replace(".", ""):
            yield f"{name}: {row.get('name')!r}: cc {cc!r} / arch {arch!r} malformed or inconsistent"


def _torch_release(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        label = row.get("torch")
        yield from _need_versions(name, row, "torch", ["torch", "torchvision", "python_min", "python_max"])
        yield from _ordered(name, f"{label} python", row.get("python_min"), row.get("python_max"))
        for cuda in row.get("cuda", []):
            if _version(cuda) is None:
                yield f"{name}: {label!r}: CUDA {cuda!r} is not a version string"
        if not set(row.get("cuda_experimental", [])) <= set(row.get("cuda", [])):
            yield f"{name}: {label!r}: experimental CUDA not among published builds"
        if row.get("pip_style") not in tbl.get("pip_styles", {}):
            yield f"{name}: {label!r}: unknown pip_style {row.get('pip_style')!r}"


def _torch_ranges(name: str, tbl: Dict[str, Any]) -> Iterable[str]:
    for row in tbl["rows"]:
        yield from _need_versions(name, row, "id", ["cuda", "torch_min", "torch_max"])
        yield from _ordered(name, str(row.get("id")), row.get("torch_min"), row.get("torch_max"))
        for arch in row.get("arch_list", []):
            if not _ARCH_ENTRY.match(str(arch)):
                yield f"{name}: {row.get('id')!r}: arch entry {arch!r} must look like sm_86 or compute_86"


_TABLE_CHECKS: Dict[str, Callable[[str, Dict[str, Any]], Iterable[str]]] = {
    "toolkit_driver": _toolkit_driver,
    "minor_compat": _minor_compat,
    "smi_branch": _smi_branch,
    "cuda_host_compiler": _host_compiler,
    "nvcc_arch": _nvcc_arch,
    "gpu_cc": _gpu_cc,
    "torch_release": _torch_release,
    "torch_arch_list": _torch_ranges,
    "cudnn_pins": _torch_ranges,
}


def problems(files: Optional[Dict[str, Dict[str, Any]]] = None) -> List[str]:
    """Problems found in the data files (file name -> parsed JSON; default: the packaged ones)."""
    if files is None:
        files = {name: _data.load_file(name) for name in _data.DATA_FILES}
    found: List[str] = []
    seen_tables: Dict[str, str] = {}
    for file_name, content in files.items():
        if content.get("schema_version") != 1:
            found.append(f"{file_name}.json: schema_version must be 1")
        for name, tbl in (content.get("tables") or {}).items():
            if name in seen_tables:
                found.append(f"{name}: defined in both {seen_tables[name]}.json and {file_name}.json")
            seen_tables[name] = file_name
            meta = list(_check_meta(name, tbl))
            found.extend(meta)
            if meta:
                continue  # row checks would only repeat the same breakage
            found.extend(_check_rows(name, tbl))
            if name in _TABLE_CHECKS:
                found.extend(_TABLE_CHECKS[name](name, tbl))
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if not found:
        print(f"knowledge data OK ({len(_data.DATA_FILES)} files)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
