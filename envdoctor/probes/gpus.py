"""The GPUs the driver sees: index, name, UUID, PCI bus id, memory, compute
capability and the processes using each.

Asks ``nvidia-smi --query-gpu ... --format=csv``. Drivers older than ~510 do not
know the ``compute_cap`` field; then the capability comes from the knowledge
table by GPU name. When the query form fails entirely (very old drivers), the
banner table is parsed instead. Without a working nvidia-smi (a container
without it, WSL2 with it off PATH) the GPUs come from the driver's own libraries:
NVML, else libcuda (``_driver_libs``; the same child the driver probe uses).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from envdoctor.model import Fact
from envdoctor.parsers import nvidia_smi
from envdoctor.probes.base import Probe, ProbeContext
from envdoctor.probes import _driver_libs
from envdoctor.probes.driver import find_smi, library_summary, smi_status, smi_timeout

FIELDS = ("index", "name", "uuid", "pci.bus_id", "memory.total", "memory.used", "compute_cap")
APP_FIELDS = ("gpu_uuid", "pid", "process_name", "used_memory")


def _query(ctx: ProbeContext, smi: str, fields: Tuple[str, ...]):
    argv = [smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    result = ctx.runner.run(argv, timeout=smi_timeout(ctx))
    rows = nvidia_smi.parse_query_csv(result.stdout, fields) if result.ok else None
    return result, rows


def table_capability(name: Optional[str]) -> Optional[str]:
    """Capability from the knowledge table; None when unknown or the table is unavailable."""
    if not name:
        return None
    try:
        from envdoctor import knowledge  # lazy: the table loads only when needed
        value = knowledge.compute_capability(name)
    except Exception:  # a missing or broken table must not break GPU discovery
        return None
    return value if isinstance(value, str) and value else None


def _gpu_record(row: Dict[str, Any]) -> Dict[str, Any]:
    cap = row.get("compute_cap")
    source = "nvidia-smi" if cap else None
    if not cap:
        cap = table_capability(row.get("name"))
        source = "table" if cap else None
    return {
        "index": row.get("index"),
        "name": row.get("name"),
        "uuid": row.get("uuid"),
        "pci_bus_id": row.get("pci.bus_id", row.get("pci_bus_id")),
        "memory_total_mib": row.get("memory.total", row.get("memory_total_mib")),
        "memory_used_mib": row.get("memory.used", row.get("memory_used_mib")),
        "compute_cap": cap,
        "compute_cap_source": source,
        "processes": [],
    }


def _attach_processes(ctx: ProbeContext, smi: str, gpus: List[Dict[str, Any]]) -> str:
    argv = [smi, f"--query-compute-apps={','.join(APP_FIELDS)}", "--format=csv,noheader,nounits"]
    result = ctx.runner.run(argv, timeout=smi_timeout(ctx))
    rows = nvidia_smi.parse_query_csv(result.stdout, APP_FIELDS) if result.ok else None
    by_uuid = {g["uuid"]: g for g in gpus if g.get("uuid")}
    for row in rows or []:
        gpu = by_uuid.get(row.get("gpu_uuid"))
        if gpu is not None:
            gpu["processes"].append({"pid": row.get("pid"), "name": row.get("process_name"),
                                     "used_memory_mib": row.get("used_memory")})
    return result.output


def _from_banner(ctx: ProbeContext, smi: str) -> Tuple[Optional[List[Dict[str, Any]]], str]:
    result = ctx.runner.run([smi], timeout=smi_timeout(ctx))
    if not result.ok:
        return None, result.output
    parsed = nvidia_smi.parse_banner(result.stdout)
    if not parsed["gpus"]:
        return None, result.output
    gpus = [_gpu_record(dict(g, compute_cap=None)) for g in parsed["gpus"]]
    by_index = {g["index"]: g for g in gpus}
    for proc in parsed["processes"]:
        gpu = by_index.get(proc["gpu"])
        if gpu is not None:
            gpu["processes"].append({"pid": proc["pid"], "name": proc["name"],
                                     "used_memory_mib": proc["used_memory_mib"]})
    return gpus, result.output


def _from_libraries(ctx: ProbeContext) -> Optional[Fact]:
    """The GPUs NVML (else libcuda) lists, or None when neither lists any."""
    summary = library_summary(_driver_libs.observe(ctx))
    for key, origin, path in (("nvml_devices", "nvml", summary.get("nvml_path")),
                              ("libcuda_devices", "libcuda", summary.get("libcuda_path"))):
        devices = summary.get(key)
        if not devices:
            continue
        gpus = []
        for device in devices:
            record = _gpu_record({k: device.get(k) for k in ("index", "name", "uuid", "memory_total_mib",
                                                             "memory_used_mib", "compute_cap")})
            if device.get("compute_cap"):
                record["compute_cap_source"] = origin
            gpus.append(record)
        what = "NVML" if origin == "nvml" else "libcuda (indices as CUDA_VISIBLE_DEVICES shows them)"
        return Fact("gpus", gpus, source=f"{what}: {path}")
    return None


def probe(ctx: ProbeContext) -> List[Fact]:
    smi = find_smi(ctx)
    if smi is None:
        return [_from_libraries(ctx) or Fact.unavailable("gpus", "nvidia-smi is not on PATH", source="PATH lookup")]
    fields = FIELDS
    result, rows = _query(ctx, smi, fields)
    raw = [result.output]
    if rows is None and not result.error and nvidia_smi.invalid_field(result.output) == "compute_cap":
        fields = tuple(f for f in FIELDS if f != "compute_cap")
        result, rows = _query(ctx, smi, fields)
        raw.append(result.output)
    source = f"nvidia-smi --query-gpu={','.join(fields)}"
    if rows is None:
        status = smi_status(result, smi)
        if status["status"] == "timeout":
            return [Fact.unavailable("gpus", status["message"], source=source, raw="\n".join(raw))]
        gpus, banner_raw = _from_banner(ctx, smi)
        if gpus is None:
            return [_from_libraries(ctx) or Fact.unavailable(
                "gpus", status["message"] or "nvidia-smi listed no GPUs", source=source,
                raw="\n".join(raw + [banner_raw]))]
        return [Fact("gpus", gpus, source="nvidia-smi table", raw=banner_raw)]
    gpus = [_gpu_record(row) for row in rows]
    if gpus:
        raw.append(_attach_processes(ctx, smi, gpus))
    return [Fact("gpus", gpus, source=source, raw="\n".join(r for r in raw if r))]


PROBE = Probe(name="gpus", fn=probe, keys=("gpus",))
