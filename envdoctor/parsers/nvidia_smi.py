"""Parse what ``nvidia-smi`` prints: the banner table, the CSV query forms, ``-L``,
its failure messages, and ``/proc/driver/nvidia/version``.

Pure ``str -> value`` functions. They never raise on garbage: users paste
truncated, indented and mangled tables, so every parser returns what it could
read (``None`` or a partial result) instead of failing. Values that the tool
reports as not available (``[Not Supported]``, ``N/A``, ``[N/A]``...) become None.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

# "NVIDIA-SMI 525.60.13   Driver Version: 525.60.13   CUDA Version: 12.0".
# Drivers < 410 print no CUDA Version; drivers >= 610 say "KMD Version" and
# "CUDA UMD Version" (both still the driver's own versions, not a toolkit's).
_HEADER = re.compile(
    r"NVIDIA-SMI\s+(?P<smi>[\w.\-]+)\s+"
    r"(?:Driver|KMD)\s+Version:\s*(?P<driver>[\w.\-/]+)"
    r"(?:\s+CUDA\s+(?P<umd>UMD\s+)?Version:\s*(?P<cuda>[\w.\-/]+))?"
)
_BUS_ID = r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]"
# First line of a GPU block: index, name (maybe truncated "..."), persistence or
# Windows driver model, then the bus id in the next cell.
_GPU_ROW = re.compile(
    r"^\|?\s*(?P<index>\d+)\s+(?P<name>\S.*?)\s+(?P<mode>On|Off|WDDM|TCC|MCDM|N/A)\s*\|\s*(?P<bus>"
    + _BUS_ID + r")"
)
_MEMORY = re.compile(r"(?P<used>\d+)\s*MiB\s*/\s*(?P<total>\d+)\s*MiB")
# Process rows, with or without the MIG "GI CI" columns.
_PROC_ROW = re.compile(
    r"^\|?\s*(?P<gpu>\d+)\s+(?:(?:N/A|\d+)\s+(?:N/A|\d+)\s+)?(?P<pid>\d+)\s+(?P<type>C\+G|[CGM])\s+"
    r"(?P<name>\S.*?)\s+(?P<mem>\d+|N/A)(?:\s*MiB)?\s*\|?\s*$"
)
_NOT_AVAILABLE = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]",
                  "[insufficient permissions]", "[gpu is lost]", "[requires pro]", "none"}

_INT_FIELDS = {"index", "memory.total", "memory.used", "memory.free", "pid", "used_memory",
               "used_gpu_memory", "count", "temperature.gpu", "utilization.gpu"}


def not_available(value: Optional[str]) -> bool:
    return value is None or value.strip().lower() in _NOT_AVAILABLE


def _clean(value: Optional[str]) -> Optional[str]:
    return None if not_available(value) else value.strip()


def parse_header(text: str) -> Optional[Dict[str, Any]]:
    """The banner's first line: ``{"smi_version", "driver_version", "cuda_version",
    "cuda_label"}`` or None when there is no such line."""
    if not isinstance(text, str):
        return None
    match = _HEADER.search(text)
    if not match:
        return None
    cuda = _clean(match.group("cuda"))
    return {
        "smi_version": _clean(match.group("smi")),
        "driver_version": _clean(match.group("driver")),
        "cuda_version": cuda if cuda and re.fullmatch(r"\d+\.\d+(\.\d+)?", cuda) else None,
        "cuda_label": ("CUDA UMD Version" if match.group("umd") else "CUDA Version")
        if match.group("cuda") else None,
    }


def parse_banner(text: str) -> Dict[str, Any]:
    """The whole ``nvidia-smi`` table: header values plus ``gpus`` and ``processes``.

    Always returns a dict; fields that were not in the text are None / empty.
    """
    result: Dict[str, Any] = {"smi_version": None, "driver_version": None, "cuda_version": None,
                              "cuda_label": None, "gpus": [], "processes": []}
    if not isinstance(text, str):
        return result
    header = parse_header(text)
    if header:
        result.update(header)
    in_processes = False
    current: Optional[Dict[str, Any]] = None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if "Processes:" in line:
            in_processes = True
            current = None
            continue
        if in_processes:
            proc = _parse_process_row(line)
            if proc:
                result["processes"].append(proc)
            continue
        row = _GPU_ROW.match(line)
        if row:
            current = _gpu_from_row(row)
            result["gpus"].append(current)
            continue
        memory = _MEMORY.search(line)
        if memory and current is not None and current["memory_total_mib"] is None:
            current["memory_used_mib"] = int(memory.group("used"))
            current["memory_total_mib"] = int(memory.group("total"))
    return result


def _gpu_from_row(row: "re.Match[str]") -> Dict[str, Any]:
    name = row.group("name").strip()
    return {
        "index": int(row.group("index")),
        "name": name,
        "name_truncated": name.endswith("..."),
        "pci_bus_id": row.group("bus"),
        "memory_used_mib": None,
        "memory_total_mib": None,
    }


def _parse_process_row(line: str) -> Optional[Dict[str, Any]]:
    match = _PROC_ROW.match(line)
    if not match:
        return None
    mem = match.group("mem")
    return {
        "gpu": int(match.group("gpu")),
        "pid": int(match.group("pid")),
        "type": match.group("type"),
        "name": match.group("name").strip(),
        "used_memory_mib": int(mem) if mem.isdigit() else None,
    }


def _typed(field: str, value: str) -> Any:
    value = _clean(value)
    if value is None:
        return None
    if field in _INT_FIELDS:
        number = re.match(r"^(\d+)", value)
        return int(number.group(1)) if number else None
    return value


def parse_query_csv(text: str, fields: Sequence[str]) -> Optional[List[Dict[str, Any]]]:
    """``--query-gpu=<fields> --format=csv,noheader[,nounits]`` (or ``--query-compute-apps``).

    One dict per line, keyed by the requested field names. Lines with the wrong
    number of columns are skipped (a stray warning line). None when the output
    is an error message (no line had the right shape).
    """
    if not isinstance(text, str) or not fields:
        return None
    rows: List[Dict[str, Any]] = []
    saw_error = False
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(fields):
            # A GPU name never contains a comma in practice, but a message does.
            saw_error = True
            continue
        if all(c == f or c.startswith(f + " [") for c, f in zip(cells, fields)):
            continue  # a header line (csv without noheader)
        rows.append({field: _typed(field, cell) for field, cell in zip(fields, cells)})
    if not rows and saw_error:
        return None
    return rows


def invalid_field(text: str) -> Optional[str]:
    """The field an old driver rejected: ``Field "compute_cap" is not a valid field to query.``"""
    if not isinstance(text, str):
        return None
    match = re.search(r'Field\s+"([^"]+)"\s+is not a valid field', text)
    return match.group(1) if match else None


def parse_list(text: str) -> List[Dict[str, Any]]:
    """``nvidia-smi -L``: ``GPU 0: NVIDIA GeForce GTX 1650 (UUID: GPU-...)`` lines.
    MIG device lines are attached to their GPU as ``mig`` entries."""
    gpus: List[Dict[str, Any]] = []
    if not isinstance(text, str):
        return gpus
    for line in text.splitlines():
        gpu = re.match(r"^\s*GPU\s+(\d+):\s*(.*?)\s*\(UUID:\s*([^)\s]+)\)", line)
        if gpu:
            gpus.append({"index": int(gpu.group(1)), "name": gpu.group(2) or None,
                         "uuid": gpu.group(3), "mig": []})
            continue
        mig = re.match(r"^\s*MIG\s+(.*?)\s+Device\s+(\d+):\s*\(UUID:\s*([^)\s]+)\)", line)
        if mig and gpus:
            gpus[-1]["mig"].append({"profile": mig.group(1), "index": int(mig.group(2)), "uuid": mig.group(3)})
    return gpus


# (status, regex) checked in order; the message is the matching line.
_FAILURES: Tuple[Tuple[str, "re.Pattern[str]"], ...] = (
    ("not_loaded", re.compile(r"couldn.?t communicate with the NVIDIA driver", re.I)),
    ("library_mismatch", re.compile(r"Driver/library version mismatch", re.I)),
)


def classify_failure(text: str) -> Dict[str, Optional[str]]:
    """Why nvidia-smi failed: ``{"status", "message", "nvml_version"}``.

    status is ``not_loaded`` (kernel module not running), ``library_mismatch``
    (user-space libraries updated, kernel module not reloaded) or ``error``.
    """
    text = text if isinstance(text, str) else ""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    nvml = re.search(r"NVML library version:\s*([\d.]+)", text)
    for status, pattern in _FAILURES:
        for line in lines:
            if pattern.search(line):
                return {"status": status, "message": line, "nvml_version": nvml.group(1) if nvml else None}
    message = next((l for l in lines if not l.lower().startswith("nvidia-smi")), lines[0] if lines else "")
    return {"status": "error", "message": message, "nvml_version": nvml.group(1) if nvml else None}


def parse_proc_version(text: str) -> Optional[Dict[str, Optional[str]]]:
    """``/proc/driver/nvidia/version``: ``{"version", "open", "gcc"}`` of the loaded kernel module."""
    if not isinstance(text, str):
        return None
    match = re.search(r"NVRM version:.*?Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    if not match:
        return None
    gcc = re.search(r"GCC version:.*?gcc version\s+(\d+(?:\.\d+)*)", text)
    return {
        "version": match.group(1),
        "open": "Open Kernel Module" in match.group(0),
        "gcc": gcc.group(1) if gcc else None,
    }
