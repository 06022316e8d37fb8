"""The NVIDIA driver: is one loaded, its version, the newest CUDA it supports, and its state.

Witnesses, each kept in the facts: the driver's own libraries asked through
ctypes in a bounded child (NVML ``libnvidia-ml.so.1`` and ``libcuda.so.1``, see
``_driver_libs``), the kernel module's ``/proc/driver/nvidia/version`` and
``nvidia-smi``. ``driver.state`` names what they add up to: a working driver,
WSL2's, a user-space driver without a kernel module, a driver/library version
mismatch, a container without a GPU, device nodes without driver libraries.

``driver.cuda_max`` is the driver's MAXIMUM CUDA version (what ``nvidia-smi``
prints as "CUDA Version"), not an installed toolkit: from ``cuDriverGetVersion``,
else NVML, else the ``nvidia-smi`` header. The fact's source says which.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Tuple

from envdoctor.model import Fact
from envdoctor.parsers import nvidia_smi
from envdoctor.probes import _driver_libs as libs
from envdoctor.probes.base import Probe, ProbeContext, read_text
from envdoctor.runner import CommandResult

KEYS = ("driver.present", "driver.smi", "driver.version", "driver.cuda_max", "driver.kernel_module_version",
        "driver.libs", "driver.state")
SMI_TIMEOUT = 5.0  # nvidia-smi can hang on a wedged GPU; the check must not
PROC_VERSION = "/proc/driver/nvidia/version"
WSL_SMI = "/usr/lib/wsl/lib/nvidia-smi"
STATES = ("ok", "wsl", "none", "user_space_only", "library_mismatch", "container_no_gpu", "no_user_space",
          "init_failed")
CHILD_SOURCE = "NVML and libcuda through ctypes in a child interpreter"
# NVIDIA_VISIBLE_DEVICES values with which the NVIDIA container runtime exposes no GPU.
_NO_GPU_VISIBLE = ("", "void", "none")


def find_smi(ctx: ProbeContext) -> Optional[str]:
    """nvidia-smi on PATH, else WSL2's (in /usr/lib/wsl/lib, which is rarely on PATH)."""
    found = ctx.which("nvidia-smi")
    if found is None:
        wsl = ctx.path(WSL_SMI)
        if os.path.isfile(wsl) and os.access(wsl, os.X_OK):
            found = wsl
    return found


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
                                "module is not loaded (or this is not Linux, or WSL2)", source=PROC_VERSION), False
    parsed = nvidia_smi.parse_proc_version(text)
    if not parsed:
        return Fact.unavailable("driver.kernel_module_version", f"could not read a version from {PROC_VERSION}",
                                source=PROC_VERSION, raw=text), True
    return Fact("driver.kernel_module_version", parsed["version"], source=PROC_VERSION, raw=text), True


def _smi_driver_version(query: CommandResult, header: Optional[dict]) -> Tuple[Optional[str], str]:
    if query.ok:
        for line in query.stdout.splitlines():
            value = line.strip()
            if re.fullmatch(r"\d+\.\d+(\.\d+)*", value):
                return value, "nvidia-smi --query-gpu=driver_version"
    if header and header.get("driver_version"):
        return header["driver_version"], "nvidia-smi header"
    return None, ""


# ---------------------------------------------------------------- the libraries' answers

def library_summary(report: Dict[str, Any]) -> Dict[str, Any]:
    """``driver.libs``: what NVML and libcuda said, in plain fields."""
    nvml = report.get("nvml") or {}
    cuda = report.get("libcuda") or {}
    init = nvml.get("init") or {}
    cu_init = cuda.get("cu_init") or {}
    nvml_code = init.get("code")
    return {
        "nvml_path": nvml.get("path"),
        "nvml_init": None if nvml_code is None else {
            "code": nvml_code, "name": libs.NVML_ERRORS.get(nvml_code, "NVML_SUCCESS" if nvml_code == 0 else None),
            "message": init.get("message")},
        "nvml_driver_version": nvml.get("driver_version"),
        "nvml_cuda_version": libs.cuda_text(nvml.get("cuda_driver_version")),
        "nvml_devices": nvml.get("devices"),
        "libcuda_path": cuda.get("path"),
        "cu_init": cu_init or None,
        "libcuda_cuda_version": libs.cuda_text(cuda.get("cuda_driver_version"))
        if cuda.get("driver_version_code") == 0 else None,
        "libcuda_cuda_version_raw": cuda.get("cuda_driver_version"),
        "libcuda_devices": cuda.get("devices"),
        "user_space_version": libs.version_in_name(cuda.get("path")) or libs.version_in_name(nvml.get("path")),
        "load_errors": [t.get("error") for key in ("nvml", "libcuda") for t in (report.get(key) or {}).get("tried", [])]
        + [e for e in ((report.get("nvml") or {}).get("error"), cuda.get("error")) if e],
        "child_error": report.get("child_error"),
        "requested": report.get("request"),
    }


def _libs_fact(report: Dict[str, Any]) -> Fact:
    requested = report.get("request") or {}
    if not any(requested.values()):
        return Fact.unavailable("driver.libs", f"no {libs.LIBCUDA} or {libs.NVML} found (LD_LIBRARY_PATH, "
                                "ld.so.conf and the standard library directories)", source="library search")
    raw = report.get("raw")
    return Fact("driver.libs", library_summary(report), source=CHILD_SOURCE, raw=raw)


def _cu_init_text(cu_init: Optional[Dict[str, Any]]) -> str:
    if not cu_init:
        return ""
    name = cu_init.get("name")
    return f"{name} ({cu_init.get('code')})" if name else f"error {cu_init.get('code')}"


# ---------------------------------------------------------------- the state

def classify_state(summary: Optional[Dict[str, Any]], kernel_version: Optional[str], module_loaded: bool,
                   smi: Dict[str, Any], wsl: bool, container: Optional[str], nodes: List[str],
                   visible: Optional[str]) -> Dict[str, Any]:
    """Name what the witnesses add up to (one of ``STATES``), with the details a message needs."""
    summary = summary or {}
    nvml_init = summary.get("nvml_init") or {}
    cu_init = summary.get("cu_init") or {}
    nvml_ok, cuda_ok = nvml_init.get("code") == 0, cu_init.get("code") == 0
    smi_status_ = smi.get("status")
    user = summary.get("nvml_driver_version") or summary.get("user_space_version")
    libs_found = bool(summary.get("libcuda_path") or summary.get("nvml_path"))
    answered = nvml_ok or cuda_ok or smi_status_ == "ok"
    state: Dict[str, Any] = {
        "state": "none", "user_space_version": user, "kernel_module_version": kernel_version,
        "kernel_module_loaded": module_loaded,
        "cuda_max": summary.get("libcuda_cuda_version") or summary.get("nvml_cuda_version"),
        "libcuda": summary.get("libcuda_path"), "nvml": summary.get("nvml_path"),
        "cu_init": _cu_init_text(cu_init) or None, "nvml_init": nvml_init.get("name") or nvml_init.get("message"),
        "smi": smi_status_, "wsl": wsl, "container": container, "device_nodes": list(nodes),
        "nvidia_visible_devices": visible, "child_error": summary.get("child_error"),
    }
    # Versions that differ count only when nothing answers: a forward-compatibility libcuda
    # (cuda-compat) is newer than the kernel module by design, and works.
    mismatch = (nvml_init.get("code") == libs.NVML_LIB_RM_VERSION_MISMATCH or smi_status_ == "library_mismatch"
                or bool(kernel_version and user and kernel_version != user and not wsl and not answered))
    if mismatch:
        state["state"] = "library_mismatch"
    elif wsl:  # no /proc/driver/nvidia on WSL2 is normal: the kernel driver is the Windows host's
        state["state"] = "wsl" if answered else ("init_failed" if libs_found else "none")
    elif answered:
        state["state"] = "ok"
    elif summary.get("child_error") and any((summary.get("requested") or {}).values()) and not libs_found:
        state["state"] = "init_failed"  # the files are there; loading them hung or crashed
    elif libs_found and not module_loaded:
        state["state"] = "user_space_only"
    elif libs_found:
        state["state"] = "init_failed"
    elif module_loaded or any(re.fullmatch(r"/dev/nvidia\d+", node) for node in nodes):
        state["state"] = "no_user_space" if smi_status_ in ("not_found", None) else "init_failed"
    elif container and (visible is None or visible.strip().lower() in _NO_GPU_VISIBLE):
        state["state"] = "container_no_gpu"
    return state


def state_summary(state: Dict[str, Any]) -> str:
    """One line for the report's driver line and the fact's value."""
    name = state["state"]
    user = state.get("user_space_version")
    cuda = f" (CUDA {state['cuda_max']})" if state.get("cuda_max") else ""
    if name == "user_space_only":
        return (f"user-space driver {user or '(version unknown)'}{cuda} installed, kernel module not loaded"
                + (f" (cuInit: {state['cu_init']})" if state.get("cu_init") else ""))
    if name == "library_mismatch":
        return (f"driver/library version mismatch: kernel module {state.get('kernel_module_version') or 'unknown'}, "
                f"libraries {user or 'unknown'}")
    if name == "wsl":
        return f"{user or 'version unknown'}{cuda}, WSL2: the Windows host's driver, libraries in /usr/lib/wsl/lib"
    if name == "container_no_gpu":
        visible = state.get("nvidia_visible_devices")
        shown = "NVIDIA_VISIBLE_DEVICES unset" if visible is None else f"NVIDIA_VISIBLE_DEVICES={visible!r}"
        return f"{state.get('container')} container with no GPU exposed ({shown}, no /dev/nvidia*)"
    if name == "no_user_space":
        seen = ", ".join(state.get("device_nodes") or []) or "kernel module loaded"
        return f"NVIDIA device nodes or kernel module present ({seen}) but no libcuda.so.1 and no nvidia-smi"
    if name == "init_failed":
        why = state.get("nvml_init") or state.get("cu_init") or state.get("child_error") or state.get("smi") \
            or "unknown"
        return f"driver libraries found but the driver does not answer ({why})"
    if name == "ok":
        version = user or state.get("kernel_module_version")
        return f"driver {version} answers" if version else "the driver answers"
    return "no NVIDIA driver found"


# ---------------------------------------------------------------- facts

def _driver_version_fact(smi_version: Tuple[Optional[str], str], raw: Optional[str], summary: Dict[str, Any],
                         kernel_version: Optional[str], state: Dict[str, Any], smi: Dict[str, Any]) -> Fact:
    version, source = smi_version
    if version:
        return Fact("driver.version", version, source=source, raw=raw)
    if state["state"] == "user_space_only":
        return Fact.unavailable("driver.version", state_summary(state), source=CHILD_SOURCE)
    if summary.get("nvml_driver_version"):
        return Fact("driver.version", summary["nvml_driver_version"], source="nvmlSystemGetDriverVersion")
    if kernel_version:
        return Fact("driver.version", kernel_version, source=PROC_VERSION)
    if summary.get("user_space_version") and state["state"] in ("ok", "wsl"):
        return Fact("driver.version", summary["user_space_version"], source=f"file name of {summary['libcuda_path']}")
    why = smi.get("message") or "nvidia-smi printed no driver version"
    return Fact.unavailable("driver.version", why, source="nvidia-smi")


def _cuda_max_fact(summary: Dict[str, Any], header: Optional[dict], banner_raw: Optional[str],
                   state: Dict[str, Any]) -> Fact:
    if state["state"] == "user_space_only":
        return Fact.unavailable("driver.cuda_max", state_summary(state), source=CHILD_SOURCE)
    if summary.get("libcuda_cuda_version"):
        return Fact("driver.cuda_max", summary["libcuda_cuda_version"], source=f"cuDriverGetVersion "
                    f"({summary.get('libcuda_path')}); the driver's maximum CUDA, not an installed toolkit",
                    raw=str(summary.get("libcuda_cuda_version_raw")))
    if summary.get("nvml_cuda_version"):
        return Fact("driver.cuda_max", summary["nvml_cuda_version"], source="nvmlSystemGetCudaDriverVersion_v2; "
                    "the driver's maximum CUDA, not an installed toolkit")
    if header and header.get("cuda_version"):
        label = header.get("cuda_label") or "CUDA Version"
        return Fact("driver.cuda_max", header["cuda_version"], source=f"nvidia-smi header ({label}); the "
                    "driver's maximum CUDA, not an installed toolkit", raw=banner_raw)
    if header:
        return Fact.unavailable("driver.cuda_max", "the nvidia-smi header has no CUDA Version (drivers older "
                                "than 410 do not print it)", source="nvidia-smi header", raw=banner_raw)
    return Fact.unavailable("driver.cuda_max", "no working nvidia-smi or libcuda to ask", source="nvidia-smi")


def _run_smi(ctx: ProbeContext, smi_path: Optional[str]):
    """(driver.smi value, query result, parsed header, banner text)."""
    if smi_path is None:
        return {"status": "not_found", "message": "nvidia-smi is not on PATH", "path": None}, None, None, None
    query = ctx.runner.run([smi_path, "--query-gpu=driver_version", "--format=csv,noheader"],
                           timeout=smi_timeout(ctx))
    smi = smi_status(query, smi_path)
    banner_raw, header = None, None
    # Only ask for the banner (for the CUDA version) when the query worked: a
    # failed or hung nvidia-smi would fail or hang again.
    if smi["status"] == "ok":
        banner = ctx.runner.run([smi_path], timeout=smi_timeout(ctx))
        banner_raw = banner.output
        header = nvidia_smi.parse_header(banner.output)
    return smi, query, header, banner_raw


def probe(ctx: ProbeContext) -> List[Fact]:
    kernel_fact, module_loaded = _kernel_module(ctx)
    facts: List[Fact] = [kernel_fact]
    report = libs.observe(ctx)
    libs_fact = _libs_fact(report)
    summary = libs_fact.value or {}
    smi_path = find_smi(ctx)
    smi, query, header, banner_raw = _run_smi(ctx, smi_path)
    if query is None:
        facts.append(Fact("driver.smi", smi, source="PATH lookup"))
    else:
        # raw: the familiar table when it ran (reports show it), else what the query said.
        facts.append(Fact("driver.smi", smi, source=f"{smi_path} --query-gpu=driver_version",
                          raw=banner_raw or query.output or query.error))
    kernel_version = kernel_fact.value if kernel_fact.available else None
    state = classify_state(summary, kernel_version, module_loaded, smi, libs.is_wsl(ctx), libs.container(ctx),
                           report.get("device_nodes", []), ctx.env.get("NVIDIA_VISIBLE_DEVICES"))
    state["summary"] = state_summary(state)
    smi_version = _smi_driver_version(query, header) if query is not None else (None, "")
    facts.append(_driver_version_fact(smi_version, (query.stdout if query else None) or banner_raw, summary,
                                      kernel_version, state, smi))
    facts.append(_cuda_max_fact(summary, header, banner_raw, state))
    facts.append(libs_fact)
    facts.append(Fact("driver.state", state, source=f"{PROC_VERSION}, nvidia-smi, {CHILD_SOURCE}, /dev/nvidia*, "
                      "/proc/version, container markers"))
    # A library mismatch means a driver is installed, just not consistently.
    present = module_loaded or state["state"] in ("ok", "wsl", "library_mismatch")
    facts.append(Fact("driver.present", present, source=f"{PROC_VERSION}, nvidia-smi and the driver libraries"))
    return facts


PROBE = Probe(name="driver", fn=probe, keys=KEYS)
