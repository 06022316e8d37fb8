"""The environment builds and imports run in: relevant variables, PATH and
LD_LIBRARY_PATH, the Python, ninja, CPU/RAM/disk, container or not.

Only the variables listed in ``RELEVANT_VARS`` are recorded: the environment
holds credentials, and reports are pasted into public issues.
"""
from __future__ import annotations

import os
import platform
import re
import sys
from typing import List, Optional

from envdoctor.model import Fact
from envdoctor.parsers.versions import parse_ninja_version
from envdoctor.probes._inproc import same_executable
from envdoctor.probes.base import Probe, ProbeContext, read_text as _read

KEYS = ("host.platform", "host.in_container", "env.vars", "env.path", "env.ld_library_path", "env.python",
        "env.ninja", "env.resources")
RELEVANT_VARS = (
    "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS",
    "FORCE_CUDA", "CC", "CXX", "NVCC_CCBIN", "NVCC_PREPEND_FLAGS", "NVCC_APPEND_FLAGS", "LIBRARY_PATH",
    "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "PYTORCH_NVCC", "CPATH", "CPLUS_INCLUDE_PATH",
)
_CONTAINER_CGROUP = re.compile(r"docker|kubepods|containerd|libpod|lxc|podman", re.I)
MIB = 1024 * 1024


def in_container(ctx: ProbeContext) -> Fact:
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if os.path.exists(ctx.path(marker)):
            return Fact("host.in_container", True, source=marker)
    cgroup = _read(ctx.path("/proc/1/cgroup")) or ""
    if _CONTAINER_CGROUP.search(cgroup):
        return Fact("host.in_container", True, source="/proc/1/cgroup", raw=cgroup[:2000])
    return Fact("host.in_container", False, source="/.dockerenv, /run/.containerenv, /proc/1/cgroup")


def split_list(value: Optional[str]) -> List[str]:
    """PATH-like value -> entries in order; empty entries kept as "" (they mean
    the current directory to the loader and to PATH lookup)."""
    return [] if value is None else value.split(os.pathsep)


def _python(ctx: ProbeContext) -> Fact:
    record = {"executable": ctx.python, "version": None, "prefix": None,
              "conda_prefix": ctx.env.get("CONDA_PREFIX"), "conda_env": ctx.env.get("CONDA_DEFAULT_ENV"),
              "venv": None}
    if same_executable(ctx.python):  # not a venv's python symlinked to this one: its prefix differs
        record["version"] = platform.python_version()
        record["prefix"] = sys.prefix
        # The diagnosed interpreter's own venv: VIRTUAL_ENV may name another one (an activated
        # venv while another Python is diagnosed), or be unset (a venv's python run directly).
        record["venv"] = sys.prefix if sys.prefix != getattr(sys, "base_prefix", sys.prefix) else None
        return Fact("env.python", record, source="this interpreter")
    script = "import sys;print(sys.version.split()[0]);print(sys.prefix);print(sys.base_prefix)"
    # -I but not -S: a virtualenv's sys.prefix is set by its site module (from pyvenv.cfg).
    result = ctx.runner.run([ctx.python, "-I", "-c", script], timeout=ctx.timeout)
    lines = result.stdout.splitlines() if result.ok else []
    if len(lines) < 3:
        return Fact("env.python", record, source=f"{ctx.python} -c (failed)", error=result.describe_failure(),
                    raw=result.output)
    record["version"], record["prefix"] = lines[0].strip(), lines[1].strip()
    record["venv"] = lines[1].strip() if lines[1].strip() != lines[2].strip() else None
    return Fact("env.python", record, source=f"{ctx.python} -c 'import sys'")


def _ninja_binary(ctx: ProbeContext, found: str) -> str:
    """The binary to ask for the version. A pyenv shim re-resolves through
    ``pyenv exec`` (~0.4 s); the ninja installed beside the diagnosed Python is
    what that shim would run, so ask it directly when it exists."""
    if os.sep + "shims" + os.sep not in found:
        return found
    beside = os.path.join(os.path.dirname(ctx.python), "ninja")
    return beside if os.path.isfile(beside) and os.access(beside, os.X_OK) else found


def _ninja(ctx: ProbeContext) -> Fact:
    found = ctx.which("ninja")
    if found is None:
        return Fact.unavailable("env.ninja", "ninja is not on PATH (torch extension builds fall back to slow, "
                                "serial distutils builds or fail)", source="PATH")
    binary = _ninja_binary(ctx, found)
    result = ctx.runner.run([binary, "--version"], timeout=min(ctx.timeout, 5.0))
    version = parse_ninja_version(result.stdout) if result.ok else None
    if version is None:
        return Fact.unavailable("env.ninja", f"ninja at {found} does not run: {result.describe_failure()}",
                                source=f"{binary} --version", raw=result.output)
    return Fact("env.ninja", {"path": found, "version": version}, source=f"{binary} --version",
                raw=result.output)


def cgroup_cpu_limit(text: Optional[str]) -> Optional[int]:
    """CPUs allowed by a cgroup v2 ``cpu.max`` ("200000 100000" -> 2); None if unlimited."""
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return max(1, -(-quota // period)) if quota > 0 and period > 0 else None


def _cpu_count(ctx: ProbeContext) -> Optional[int]:
    count = os.cpu_count()
    if ctx.root in ("", "/") and hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))  # taskset / container CPU sets
    limit = cgroup_cpu_limit(_read(ctx.path("/sys/fs/cgroup/cpu.max")))
    if limit is not None and count is not None:
        count = min(count, limit)
    return count


def meminfo_mib(text: Optional[str]) -> Optional[dict]:
    """(total, available, swap total) in MiB from /proc/meminfo, as psutil computes them
    (MemTotal, MemAvailable, SwapTotal); None when a field is missing or MemAvailable is 0
    (then psutil estimates it: let it)."""
    fields = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    if not fields.get("MemAvailable") or "MemTotal" not in fields or "SwapTotal" not in fields:
        return None
    return {"ram_total_mib": fields["MemTotal"] // MIB, "ram_available_mib": fields["MemAvailable"] // MIB,
            "swap_total_mib": fields["SwapTotal"] // MIB}


def _resources(ctx: ProbeContext) -> Fact:
    record = {"cpu_count": _cpu_count(ctx), "ram_total_mib": None, "ram_available_mib": None,
              "swap_total_mib": None, "disk_free_mib": None}
    # psutil costs a fifth of the quick check's start-up; on Linux its answers are these files.
    memory = meminfo_mib(_read("/proc/meminfo")) if sys.platform.startswith("linux") else None
    if memory is not None:
        record.update(memory)
        try:
            usage = os.statvfs(os.getcwd())
            record["disk_free_mib"] = usage.f_bavail * usage.f_frsize // MIB  # psutil.disk_usage().free
        except OSError:
            pass
        return Fact("env.resources", record, source="/proc/meminfo, statvfs, os.sched_getaffinity, cgroup cpu.max")
    return _resources_psutil(record)


def _resources_psutil(record: dict) -> Fact:
    try:
        import psutil
    except ImportError:
        return Fact("env.resources", record, source="os", error="psutil is not installed")
    memory = psutil.virtual_memory()
    record["ram_total_mib"] = memory.total // MIB
    record["ram_available_mib"] = memory.available // MIB
    try:
        record["swap_total_mib"] = psutil.swap_memory().total // MIB
    except Exception:  # psutil raises on some container kernels without swap accounting
        pass
    try:
        record["disk_free_mib"] = psutil.disk_usage(os.getcwd()).free // MIB
    except OSError:
        pass
    return Fact("env.resources", record, source="psutil, os.sched_getaffinity, cgroup cpu.max")


def probe(ctx: ProbeContext) -> List[Fact]:
    variables = {name: ctx.env[name] for name in RELEVANT_VARS if name in ctx.env}
    return [
        Fact("host.platform", sys.platform, source="sys.platform"),
        in_container(ctx),
        Fact("env.vars", variables, source="environment (listed variables only)"),
        Fact("env.path", split_list(ctx.env.get("PATH")), source="PATH"),
        Fact("env.ld_library_path", split_list(ctx.env.get("LD_LIBRARY_PATH")), source="LD_LIBRARY_PATH"),
        _python(ctx),
        _ninja(ctx),
        _resources(ctx),
    ]


PROBE = Probe(name="environment", fn=probe, keys=KEYS)
