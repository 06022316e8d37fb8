"""The NVIDIA driver: is one loaded, its version, and the newest CUDA it supports.

``driver.cuda_max`` is the driver's MAXIMUM CUDA version (what ``nvidia-smi``
prints as "CUDA Version"), not an installed toolkit. It is read from
``cuDriverGetVersion`` in ``libcuda.so.1`` when that library can be loaded (in
a subprocess, because loading a broken libcuda can hang or crash the caller),
else from the ``nvidia-smi`` header. The fact's source says which.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from envdoctor.model import Fact
from envdoctor.parsers import nvidia_smi
from envdoctor.probes.base import Probe, ProbeContext, read_text
from envdoctor.runner import CommandResult, Runner

KEYS = ("driver.present", "driver.smi", "driver.version", "driver.cuda_max", "driver.kernel_module_version")
SMI_TIMEOUT = 5.0  # nvidia-smi can hang on a wedged GPU; the check must not
LIBCUDA_TIMEOUT = 5.0
PROC_VERSION = "/proc/driver/nvidia/version"

# Runs in a child interpreter (-I -S: no site, no user env) so that a libcuda
# that hangs or segfaults costs a timeout, not the whole check.
_LIBCUDA_SCRIPT = (
    "import ctypes,sys\n"
    "try:\n lib=ctypes.CDLL('libcuda.so.1')\n"
    "except OSError as e:\n print('dlopen failed:', e); sys.exit(3)\n"
    "v=ctypes.c_int(0)\nr=lib.cuDriverGetVersion(ctypes.byref(v))\nprint(r, v.value)\n"
)


def smi_timeout(ctx: ProbeContext) -> float:
    return min(ctx.timeout, SMI_TIMEOUT)


def smi_status(result: CommandResult, path: str) -> dict:
    """``driver.smi`` value for a finished nvidia-smi run."""
    if result.error and result.error.startswith("timed out"):
        return {"status": "timeout", "message": f"nvidia-smi {result.error}", "path": path}
    if result.ok:
        return {"status": "ok", "message": "", "path": path}
    if result.error:
        return {"status": "error", "message": f"nvidia-smi: {result.error}", "path": path}
    failure = nvidia_smi.classify_failure(result.output)
    message = failure["message"] or result.describe_failure()
    return {"status": failure["status"], "message": message, "path": path}


def _kernel_module(ctx: ProbeContext) -> Tuple[Fact, bool]:
    path = ctx.path(PROC_VERSION)
    text = read_text(path, 4096)
    if text is None:
        return Fact.unavailable("driver.kernel_module_version", f"{PROC_VERSION} not found: the NVIDIA kernel "
                                "module is not loaded (or this is not Linux)", source=PROC_VERSION), False
    parsed = nvidia_smi.parse_proc_version(text)
    if not parsed:
        return Fact.unavailable("driver.kernel_module_version", f"could not read a version from {PROC_VERSION}",
                                source=PROC_VERSION, raw=text), True
    return Fact("driver.kernel_module_version", parsed["version"], source=PROC_VERSION, raw=text), True


def _driver_version(query: CommandResult, header: Optional[dict]) -> Tuple[Optional[str], str]:
    if query.ok:
        for line in query.stdout.splitlines():
            value = line.strip()
            if re.fullmatch(r"\d+\.\d+(\.\d+)*", value):
                return value, "nvidia-smi --query-gpu=driver_version"
    if header and header.get("driver_version"):
        return header["driver_version"], "nvidia-smi header"
    return None, ""


def _is_script(path: Optional[str]) -> bool:
    try:
        with open(path or "", "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def _libcuda_allowed(ctx: ProbeContext, smi_path: Optional[str], smi_ok: bool, module_loaded: bool) -> bool:
    # Only on the real machine: with a test root, recorded outputs or a scripted
    # stand-in for nvidia-smi (the real one is a binary), the real libcuda would
    # contradict the scenario being diagnosed.
    real_machine = ctx.root in ("", "/") and isinstance(ctx.runner, Runner) and not _is_script(smi_path)
    return real_machine and (smi_ok or module_loaded)


def libcuda_cuda_version(ctx: ProbeContext) -> Tuple[Optional[str], str]:
    """(``"12.0"``, raw) from cuDriverGetVersion, or (None, why)."""
    result = ctx.runner.run([ctx.python, "-I", "-S", "-c", _LIBCUDA_SCRIPT], timeout=LIBCUDA_TIMEOUT)
    match = re.match(r"^\s*(-?\d+)\s+(\d+)\s*$", result.stdout or "")
    if not result.ok or not match:
        return None, result.output or result.describe_failure()
    code, value = int(match.group(1)), int(match.group(2))
    if code != 0 or value <= 0:
        return None, f"cuDriverGetVersion returned {code}"
    return f"{value // 1000}.{(value % 1000) // 10}", result.stdout.strip()


def _cuda_max(ctx: ProbeContext, smi_path: Optional[str], header: Optional[dict], banner_raw: Optional[str],
              smi_ok: bool, module_loaded: bool) -> Fact:
    if _libcuda_allowed(ctx, smi_path, smi_ok, module_loaded):
        version, raw = libcuda_cuda_version(ctx)
        if version:
            return Fact("driver.cuda_max", version, source="cuDriverGetVersion (libcuda.so.1); the driver's "
                        "maximum CUDA, not an installed toolkit", raw=raw)
    if header and header.get("cuda_version"):
        label = header.get("cuda_label") or "CUDA Version"
        return Fact("driver.cuda_max", header["cuda_version"], source=f"nvidia-smi header ({label}); the "
                    "driver's maximum CUDA, not an installed toolkit", raw=banner_raw)
    if header:
        return Fact.unavailable("driver.cuda_max", "the nvidia-smi header has no CUDA Version (drivers older "
                                "than 410 do not print it)", source="nvidia-smi header", raw=banner_raw)
    return Fact.unavailable("driver.cuda_max", "no working nvidia-smi or libcuda to ask", source="nvidia-smi")


def probe(ctx: ProbeContext) -> List[Fact]:
    kernel_fact, module_loaded = _kernel_module(ctx)
    facts: List[Fact] = [kernel_fact]
    smi_path = ctx.which("nvidia-smi")
    if smi_path is None:
        smi = {"status": "not_found", "message": "nvidia-smi is not on PATH", "path": None}
        facts.append(Fact("driver.smi", smi, source="PATH lookup"))
        facts.append(Fact.unavailable("driver.version", "nvidia-smi is not on PATH", source="nvidia-smi"))
        facts.append(_cuda_max(ctx, None, None, None, False, module_loaded))
        facts.append(Fact("driver.present", module_loaded, source=PROC_VERSION))
        return facts

    query = ctx.runner.run([smi_path, "--query-gpu=driver_version", "--format=csv,noheader"],
                           timeout=smi_timeout(ctx))
    smi = smi_status(query, smi_path)
    banner_raw: Optional[str] = None
    header = None
    # Only ask for the banner (for the CUDA version) when the query worked: a
    # failed or hung nvidia-smi would fail or hang again.
    if smi["status"] == "ok":
        banner = ctx.runner.run([smi_path], timeout=smi_timeout(ctx))
        banner_raw = banner.output
        header = nvidia_smi.parse_header(banner.output)
    # raw: the familiar table when it ran (reports show it), else what the query said.
    facts.append(Fact("driver.smi", smi, source=f"{smi_path} --query-gpu=driver_version",
                      raw=banner_raw or query.output or query.error))
    version, source = _driver_version(query, header)
    if version:
        facts.append(Fact("driver.version", version, source=source, raw=query.stdout or banner_raw))
    else:
        facts.append(Fact.unavailable("driver.version", smi["message"] or "nvidia-smi printed no driver version",
                                      source="nvidia-smi", raw=query.output))
    facts.append(_cuda_max(ctx, smi_path, header, banner_raw, smi["status"] == "ok", module_loaded))
    # A library mismatch means a driver is installed, just not consistently.
    present = smi["status"] in ("ok", "library_mismatch") or module_loaded
    facts.append(Fact("driver.present", present, source=f"{PROC_VERSION} and nvidia-smi"))
    return facts


PROBE = Probe(name="driver", fn=probe, keys=KEYS)
